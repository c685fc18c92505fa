// TLS certificate from an ACME CA (acme-client 5.4) through DNS-01, as a dynamic resource.
//
// - create: new account key (secret, kept in state), order for `names`, TXT records through the DNS API, wait
//   until the zone's name servers serve them, let the CA validate, remove the records, store cert + key.
// - diff: a change only when the names or the CA changed, or fewer than `renewBeforeDays` days are left.
// - update: the same order again with the same account (renewal).
// - delete: revoke the certificate (reason cessationOfOperation): a destroyed stack leaves no valid cert behind.
//
// Credentials (the DNS API token) arrive as a secret input, never through captured variables, because the
// provider itself is serialised into state. Every method imports what it needs for the same reason.
import * as pulumi from '@pulumi/pulumi';
import { knownFailures } from './unknowns.ts';
import type { DnsApiSettings, DnsChallengeApiFactory, PropagationSettings } from './dns-challenge.ts';
import { waitForTxt } from './dns-challenge.ts';
import { cloudflareChallengeApi } from './cloudflare-dns.ts';

export const LETS_ENCRYPT_PRODUCTION = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETS_ENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';

export interface AcmeCertificateInputs {
  directoryUrl: string;
  /** Extra CA (PEM) to trust for the directory's HTTPS, for private CAs. */
  directoryCaPem?: string;
  email: string;
  /** The first name is the certificate's subject; all are SANs. */
  names: string[];
  renewBeforeDays: number;
  /** Interpreted by the DNS API factory (Cloudflare: apiToken, zoneId); secret. */
  dns: DnsApiSettings;
  propagation: PropagationSettings;
}

export interface AcmeCertificateOutputs {
  directoryUrl: string;
  names: string[];
  /** Secret. */
  accountKeyPem: string;
  accountUrl: string;
  /** Leaf first, then the chain. */
  certificatePem: string;
  /** Secret. */
  privateKeyPem: string;
  notBefore: string;
  notAfter: string;
  serial: string;
}

export function checkAcmeInputs(news: Partial<AcmeCertificateInputs>): pulumi.dynamic.CheckFailure[] {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const hostname = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;
  if (typeof news.directoryUrl !== 'string' || !/^https:\/\/[^\s]+$/.test(news.directoryUrl)) {
    failures.push({ property: 'directoryUrl', reason: `found ${JSON.stringify(news.directoryUrl)}; expected an https:// ACME directory URL` });
  }
  if (typeof news.email !== 'string' || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(news.email)) {
    failures.push({ property: 'email', reason: `found ${JSON.stringify(news.email)}; expected a contact e-mail address for the ACME account` });
  }
  if (!Array.isArray(news.names) || news.names.length === 0 || news.names.length > 100) {
    failures.push({ property: 'names', reason: 'expected 1 to 100 host names' });
  } else {
    for (const n of news.names) {
      if (typeof n !== 'string' || !hostname.test(n)) failures.push({ property: 'names', reason: `found ${JSON.stringify(n)}; expected a lower-case A-label host name` });
    }
  }
  if (typeof news.renewBeforeDays !== 'number' || !(news.renewBeforeDays >= 1 && news.renewBeforeDays <= 60)) {
    failures.push({ property: 'renewBeforeDays', reason: `found ${JSON.stringify(news.renewBeforeDays)}; expected 1 to 60` });
  }
  const p = news.propagation;
  if (!p || typeof p.zoneName !== 'string' || !hostname.test(p.zoneName) || typeof p.timeoutSeconds !== 'number' || p.timeoutSeconds < 1) {
    failures.push({ property: 'propagation', reason: 'expected { zoneName, timeoutSeconds >= 1, nameServers? }' });
  }
  if (!news.dns || typeof news.dns !== 'object') failures.push({ property: 'dns', reason: 'expected the DNS API settings' });
  return failures;
}

/** Days from `now` until `notAfter`. */
export function daysLeft(notAfter: string, now: number): number {
  return (Date.parse(notAfter) - now) / 86_400_000;
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Runs one ACME order; reuses the account key when given (renewal on the same CA). */
export async function issueCertificate(
  inputs: AcmeCertificateInputs, makeDnsApi: DnsChallengeApiFactory, accountKeyPem?: string,
): Promise<AcmeCertificateOutputs> {
  const acme = (await import('acme-client')).default;
  if (inputs.directoryCaPem) {
    const https = await import('node:https');
    const tls = await import('node:tls');
    acme.axios.defaults.httpsAgent = new https.Agent({ ca: [...tls.rootCertificates, inputs.directoryCaPem] });
  }
  const dns = await makeDnsApi(inputs.dns);
  const accountKey = accountKeyPem ?? (await acme.crypto.createPrivateKey()).toString();
  const client = new acme.Client({ directoryUrl: inputs.directoryUrl, accountKey });
  const [key, csr] = await acme.crypto.createCsr({ commonName: inputs.names[0], altNames: inputs.names });
  const published = new Map<string, string>();
  let pem: string;
  try {
    pem = await client.auto({
      csr, email: inputs.email, termsOfServiceAgreed: true, challengePriority: ['dns-01'],
      // Verified below against the zone's own name servers, which is what the CA asks too.
      skipChallengeVerification: true,
      async challengeCreateFn(authz, challenge, keyAuthorization) {
        if (challenge.type !== 'dns-01') throw new Error(`CA offered only ${challenge.type}; Postern issues through dns-01`);
        const fqdn = `_acme-challenge.${authz.identifier.value.replace(/^\*\./, '')}`;
        await dns.setTxt(fqdn, keyAuthorization);
        published.set(`${fqdn} ${keyAuthorization}`, fqdn);
        await waitForTxt(fqdn, keyAuthorization, inputs.propagation);
      },
      async challengeRemoveFn(authz, _challenge, keyAuthorization) {
        const fqdn = `_acme-challenge.${authz.identifier.value.replace(/^\*\./, '')}`;
        await dns.clearTxt(fqdn, keyAuthorization);
        published.delete(`${fqdn} ${keyAuthorization}`);
      },
    });
  } catch (err) {
    throw new Error(`ACME order for ${inputs.names.join(', ')} at ${inputs.directoryUrl} failed: ${(err as Error).message}`);
  } finally {
    // acme-client skips challengeRemoveFn when an order fails midway: never leave challenge records behind.
    for (const [k, fqdn] of published) await dns.clearTxt(fqdn, k.slice(fqdn.length + 1)).catch(() => undefined);
  }
  const info = acme.crypto.readCertificateInfo(pem);
  const { X509Certificate } = await import('node:crypto');
  const leaf = new X509Certificate(acme.crypto.splitPemChain(pem)[0] ?? pem);
  return {
    directoryUrl: inputs.directoryUrl, names: [...inputs.names],
    accountKeyPem: accountKey, accountUrl: client.getAccountUrl(),
    certificatePem: pem, privateKeyPem: key.toString(),
    notBefore: info.notBefore.toISOString(), notAfter: info.notAfter.toISOString(), serial: leaf.serialNumber.toLowerCase(),
  };
}

/** The provider, with the DNS API injected (Cloudflare in production, pebble-challtestsrv in tests). */
export function createAcmeProvider(makeDnsApi: DnsChallengeApiFactory): pulumi.dynamic.ResourceProvider<AcmeCertificateInputs, AcmeCertificateOutputs> {
  return {
    async check(_olds, news) {
      const failures = knownFailures(news, checkAcmeInputs(news));
      return failures.length ? { failures } : { inputs: news };
    },
    async diff(_id, olds, news) {
      const renew = daysLeft(olds.notAfter, Date.now()) < news.renewBeforeDays;
      const changed = renew || olds.directoryUrl !== news.directoryUrl || !sameNames(olds.names, news.names);
      return { changes: changed };
    },
    async create(inputs) {
      const outs = await issueCertificate(inputs, makeDnsApi);
      return { id: `${outs.serial}`, outs };
    },
    async update(_id, olds, news) {
      // A new CA needs a new account; the same CA keeps the account (and its rate limits).
      const key = olds.directoryUrl === news.directoryUrl ? olds.accountKeyPem : undefined;
      return { outs: await issueCertificate(news, makeDnsApi, key) };
    },
    async delete(_id, props) {
      const acme = (await import('acme-client')).default;
      const client = new acme.Client({ directoryUrl: props.directoryUrl, accountKey: props.accountKeyPem, accountUrl: props.accountUrl });
      try {
        await client.revokeCertificate(props.certificatePem, { reason: 5 });
      } catch (err) {
        const message = (err as Error).message;
        // Already revoked or expired: nothing left to clean up.
        if (/alreadyRevoked|already revoked|expired/i.test(message)) return;
        throw new Error(`revoking the certificate for ${props.names.join(', ')} failed: ${message}`);
      }
    },
  };
}

export const acmeProvider = createAcmeProvider(cloudflareChallengeApi);

export interface AcmeCertificateArgs {
  directoryUrl: pulumi.Input<string>;
  directoryCaPem?: pulumi.Input<string>;
  email: pulumi.Input<string>;
  names: pulumi.Input<pulumi.Input<string>[]>;
  renewBeforeDays: pulumi.Input<number>;
  dns: pulumi.Input<DnsApiSettings>;
  propagation: pulumi.Input<PropagationSettings>;
}

/** A certificate; `privateKeyPem` and `accountKeyPem` are secret, `dns` is made secret here whatever the caller passed. */
export class AcmeCertificate extends pulumi.dynamic.Resource {
  declare readonly names: pulumi.Output<string[]>;
  declare readonly certificatePem: pulumi.Output<string>;
  declare readonly privateKeyPem: pulumi.Output<string>;
  declare readonly accountKeyPem: pulumi.Output<string>;
  declare readonly notAfter: pulumi.Output<string>;
  declare readonly serial: pulumi.Output<string>;

  constructor(name: string, args: AcmeCertificateArgs, opts?: pulumi.CustomResourceOptions,
    provider: pulumi.dynamic.ResourceProvider = acmeProvider) {
    super(provider, name, {
      ...args, dns: pulumi.secret(args.dns),
      accountKeyPem: undefined, accountUrl: undefined, certificatePem: undefined, privateKeyPem: undefined,
      notBefore: undefined, notAfter: undefined, serial: undefined,
    }, { ...opts, additionalSecretOutputs: ['accountKeyPem', 'privateKeyPem', 'dns'] }, 'postern', 'AcmeCertificate');
  }
}

// DKIM signing keys as a dynamic resource: made with node:crypto, private key kept as a secret output.
//
// Rotation: changing the selector (or the algorithm) updates the resource in place with fresh key material
// and moves the previous selector's public record to `retired`. The DNS plan publishes both the current and
// the retired record, so mail signed with the old key shortly before the switch (still queued or in transit)
// keeps verifying. The retired record disappears on the next rotation, never in the same `up` that made the
// new key — no window where signatures fail.
//
// Dynamic providers are serialised and run in Pulumi's provider host: every method imports what it needs.
import * as pulumi from '@pulumi/pulumi';
import { knownFailures } from './unknowns.ts';

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

export interface DkimKeyInputs {
  selector: string;
  algorithm: DkimAlgorithm;
  /** RSA modulus length; ignored for Ed25519. Default 2048. */
  rsaBits?: 2048 | 3072 | 4096;
}

export interface DkimPublicRecord {
  selector: string;
  algorithm: DkimAlgorithm;
  /** TXT value for `<selector>._domainkey.<domain>`, unsplit. */
  dnsValue: string;
}

export interface DkimKeyOutputs extends DkimKeyInputs {
  /** PKCS#8 PEM; secret. */
  privateKeyPem: string;
  /** The `p=` value: base64 SubjectPublicKeyInfo (RSA) or the raw 32-byte key (Ed25519, RFC 8463). */
  publicKey: string;
  dnsValue: string;
  /** The previous selector's record, kept published until the next rotation. */
  retired: DkimPublicRecord | null;
}

/** Input problems, as Pulumi check failures (empty when fine). */
export function checkDkimInputs(news: Partial<DkimKeyInputs>): pulumi.dynamic.CheckFailure[] {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  if (typeof news.selector !== 'string' || !/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(news.selector)) {
    failures.push({ property: 'selector', reason: `found ${JSON.stringify(news.selector)}; expected a DNS label of a-z, 0-9 and '-' (1-63 characters)` });
  }
  if (news.algorithm !== 'rsa-sha256' && news.algorithm !== 'ed25519-sha256') {
    failures.push({ property: 'algorithm', reason: `found ${JSON.stringify(news.algorithm)}; expected rsa-sha256 or ed25519-sha256` });
  }
  if (news.rsaBits !== undefined && news.rsaBits !== 2048 && news.rsaBits !== 3072 && news.rsaBits !== 4096) {
    failures.push({ property: 'rsaBits', reason: `found ${JSON.stringify(news.rsaBits)}; expected 2048, 3072 or 4096` });
  }
  return failures;
}

/** Generates a key pair and its DNS record value. */
export async function makeDkimKey(inputs: DkimKeyInputs): Promise<Omit<DkimKeyOutputs, 'retired'>> {
  const crypto = await import('node:crypto');
  if (inputs.algorithm === 'rsa-sha256') {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: inputs.rsaBits ?? 2048 });
    const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    return {
      selector: inputs.selector, algorithm: inputs.algorithm, rsaBits: inputs.rsaBits ?? 2048,
      privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      publicKey: p, dnsValue: `v=DKIM1; k=rsa; p=${p}`,
    };
  }
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  // The SPKI DER of an Ed25519 key is a fixed 12-byte prefix followed by the 32 raw key bytes.
  const p = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');
  return {
    selector: inputs.selector, algorithm: inputs.algorithm,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: p, dnsValue: `v=DKIM1; k=ed25519; p=${p}`,
  };
}

export const dkimKeyProvider: pulumi.dynamic.ResourceProvider<DkimKeyInputs, DkimKeyOutputs> = {
  async check(_olds, news) {
    const failures = knownFailures(news, checkDkimInputs(news));
    return failures.length ? { failures }
      : { inputs: { selector: news.selector, algorithm: news.algorithm, ...(news.algorithm === 'rsa-sha256' ? { rsaBits: news.rsaBits ?? 2048 } : {}) } };
  },
  async diff(_id, olds, news) {
    const changed = olds.selector !== news.selector || olds.algorithm !== news.algorithm
      || (news.algorithm === 'rsa-sha256' && (olds.rsaBits ?? 2048) !== (news.rsaBits ?? 2048));
    return { changes: changed };
  },
  async create(inputs) {
    const crypto = await import('node:crypto');
    const key = await makeDkimKey(inputs);
    return { id: `dkim-${crypto.randomUUID()}`, outs: { ...key, retired: null } };
  },
  async update(_id, olds, news) {
    const key = await makeDkimKey(news);
    const retired: DkimPublicRecord = { selector: olds.selector, algorithm: olds.algorithm, dnsValue: olds.dnsValue };
    // Re-using the old selector for new key material would publish two keys under one name: refuse the retire.
    return { outs: { ...key, retired: retired.selector === news.selector ? null : retired } };
  },
  async delete() {
    // Keys live only in Pulumi state; nothing outside to remove.
  },
};

export interface DkimKeyArgs {
  selector: pulumi.Input<string>;
  algorithm: pulumi.Input<DkimAlgorithm>;
  rsaBits?: pulumi.Input<2048 | 3072 | 4096>;
}

/** One DKIM key pair; `privateKeyPem` is secret. */
export class DkimKey extends pulumi.dynamic.Resource {
  declare readonly selector: pulumi.Output<string>;
  declare readonly algorithm: pulumi.Output<DkimAlgorithm>;
  declare readonly privateKeyPem: pulumi.Output<string>;
  declare readonly publicKey: pulumi.Output<string>;
  declare readonly dnsValue: pulumi.Output<string>;
  declare readonly retired: pulumi.Output<DkimPublicRecord | null>;

  constructor(name: string, args: DkimKeyArgs, opts?: pulumi.CustomResourceOptions) {
    super(dkimKeyProvider, name,
      { ...args, privateKeyPem: undefined, publicKey: undefined, dnsValue: undefined, retired: undefined },
      { ...opts, additionalSecretOutputs: ['privateKeyPem'] }, 'postern', 'DkimKey');
  }
}

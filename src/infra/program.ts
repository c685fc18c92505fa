// The Postern Pulumi program as a function of its (already read) configuration: validates the stack with the
// plan, builds the components and returns the stack outputs. index.ts reads pulumi.Config and calls it; tests
// call it under pulumi.runtime.setMocks.
import * as pulumi from '@pulumi/pulumi';
import * as digitalocean from '@pulumi/digitalocean';
import * as cloudflare from '@pulumi/cloudflare';
import { parseStackConfig, type StackConfig } from '../plan/stack-config.ts';
import { planDns } from '../plan/dns-plan.ts';
import { mtaStsPolicyId, renderMtaStsPolicy } from '../plan/client-config.ts';
import { MailHost } from './components/mail-host.ts';
import { MailDns } from './components/mail-dns.ts';
import { Certificate } from './components/certificate.ts';
import { DkimKeys } from './components/dkim-keys.ts';
import { Deployment } from './components/deployment.ts';
import { SshKeyPair } from './providers/ssh-keys.ts';
import type { HostPaths } from './providers/deploy.ts';

export const HOST_PATHS: HostPaths = {
  root: '/opt/postern',
  stateDir: '/var/lib/postern',
  unitPath: '/etc/systemd/system/postern.service',
  authorizedKeysPath: '/root/.ssh/authorized_keys',
};
export const SERVICE_USER = 'postern';

export interface ProgramInput {
  /** The `postern:` keys without their prefix, values as the config holds them (objects parsed). */
  config: Record<string, unknown>;
  digitaloceanToken: pulumi.Output<string>;
  cloudflareApiToken: pulumi.Output<string>;
  /** `npm run build` output. */
  bundleDir: string;
  /** The pinned Node binary shipped to the host. */
  nodeBinary: string;
}

/** A configuration the plan refuses: the message lists every problem, one per line. */
export class StackConfigError extends Error {
  readonly errors: string[];
  constructor(errors: string[]) {
    super(`the stack configuration has ${errors.length} problem${errors.length === 1 ? '' : 's'}:\n${errors.map((e) => `  - ${e}`).join('\n')}`);
    this.name = 'StackConfigError';
    this.errors = errors;
  }
}

export function validateStack(config: Record<string, unknown>): StackConfig {
  const parsed = parseStackConfig(config);
  if (!parsed.ok) throw new StackConfigError(parsed.errors);
  return parsed.value;
}

function nextSteps(stack: StackConfig, outbound: string, ipv4: string): string[] {
  const steps = [
    `Check everything from outside: npx postern doctor --stack <stack> (DNS, PTR ${stack.hostname} → ${ipv4}, TLS, ports, blacklists).`,
    `Reverse DNS: the droplet is named ${stack.hostname}, so DigitalOcean publishes that PTR. Do not send mail from a reserved IP: it has no PTR.`,
  ];
  if (outbound === 'open') steps.push('Outbound port 25 works from the droplet: mail goes straight to recipients\' MX hosts.');
  else if (outbound === 'blocked') {
    steps.push(stack.relay
      ? `Outbound port 25 is blocked from the droplet; mail leaves through the relay ${stack.relay.host}:${stack.relay.port}, so nothing to do.`
      : 'Outbound port 25 is BLOCKED from the droplet (DigitalOcean blocks it on new accounts): mail to other domains will queue. '
        + 'Either ask DigitalOcean support to lift the SMTP block, or send through a relay: set postern:relay (host, port 587, username, spfInclude) '
        + "and `pulumi config set --secret --path 'postern:relay.password' <password>`, then run `pulumi up` again.");
  } else steps.push('Outbound port 25 was not checked; test it with: ssh root@<ipv4> "timeout 10 bash -c \'</dev/tcp/gmail-smtp-in.l.google.com/25\' && echo open || echo blocked"');
  steps.push(`Set up your mail client with the clientSettings output, or let it discover them (autoconfig.${stack.domain}).`);
  if (stack.mtaSts.mode === 'testing') steps.push('MTA-STS is in testing mode: once TLS reports look clean, set postern:mtaSts.mode to enforce.');
  return steps;
}

/** Pulumi hands the program decrypted config; an encrypted value here means it was never decrypted. */
function relayPassword(p: NonNullable<NonNullable<StackConfig['relay']>['password']>): string {
  if ('plaintext' in p) return p.plaintext;
  throw new Error('postern:relay.password reached the program still encrypted; set it with `pulumi config set --secret --path \'postern:relay.password\' <password>`');
}

export function postern(input: ProgramInput) {
  const stack = validateStack(input.config);
  const doProvider = new digitalocean.Provider('digitalocean', { token: pulumi.secret(input.digitaloceanToken) });
  const cfProvider = new cloudflare.Provider('cloudflare', { apiToken: pulumi.secret(input.cloudflareApiToken) });
  const zoneId: pulumi.Output<string> = stack.zoneId !== undefined ? pulumi.output(stack.zoneId)
    : cloudflare.getZoneOutput({ filter: { name: stack.domain } }, { provider: cfProvider }).id;

  const deployKey = new SshKeyPair('deploy-key', { comment: `postern-deploy@${stack.hostname}` });
  const host = new MailHost('mail-host', {
    stack, deployPublicKey: deployKey.publicKey, paths: HOST_PATHS, serviceUser: SERVICE_USER,
  }, { providers: { digitalocean: doProvider } });
  const dkim = new DkimKeys('dkim', { stack });
  const policyId = mtaStsPolicyId(renderMtaStsPolicy(stack));
  const dns = new MailDns('mail-dns', {
    stack, zoneId, ipv4: host.ipv4, ipv6: host.ipv6, dkim: dkim.publicKeys, mtaStsPolicyId: policyId, retiredDkim: dkim.retired,
  }, { providers: { cloudflare: cfProvider } });
  const certificate = new Certificate('certificate', { stack, zoneId, cloudflareApiToken: input.cloudflareApiToken });
  const deployment = new Deployment('deployment', {
    stack, host: host.ipv4, hostKeyFingerprint: host.hostKeyFingerprint,
    deployPrivateKey: deployKey.privateKey, authorizedKeys: [stack.sshPublicKey, deployKey.publicKey],
    certificatePem: certificate.certificatePem, certificateKeyPem: certificate.privateKeyPem,
    dkimKeys: dkim.keys.map((k) => ({ selector: k.selector, algorithm: k.algorithm, privateKeyPem: k.key.privateKeyPem })),
    ...(stack.relay?.password !== undefined ? { relayPassword: pulumi.secret(relayPassword(stack.relay.password)) } : {}),
    bundleDir: input.bundleDir, nodeBinary: input.nodeBinary, paths: HOST_PATHS, serviceUser: SERVICE_USER,
  }, { dependsOn: [host] });

  const expectedPtr = pulumi.all([host.ipv4, host.ipv6, dkim.publicKeys]).apply(([ipv4, ipv6, keys]) =>
    planDns(stack, { ipv4, ...(stack.ipv6 && ipv6 ? { ipv6 } : {}), dkim: keys, mtaStsPolicyId: policyId }).ptr);

  return {
    addresses: { hostname: stack.hostname, ipv4: host.ipv4, ipv6: stack.ipv6 ? host.ipv6 : pulumi.output('') },
    hostKeyFingerprint: host.hostKeyFingerprint,
    expectedPtr,
    dnsRecords: dns.table,
    certificate: { names: certificate.names, notAfter: certificate.notAfter },
    releaseId: deployment.releaseId,
    outboundSmtp: deployment.outboundSmtp,
    clientSettings: {
      email: stack.users.map((u) => u.address),
      imap: { host: stack.hostname, port: 993, security: 'SSL/TLS' },
      pop3: { host: stack.hostname, port: 995, security: 'SSL/TLS' },
      smtp: { host: stack.hostname, port: 465, security: 'SSL/TLS', alternative: 'port 587 with STARTTLS', authentication: 'normal password, user name = full address' },
      webmail: `https://${stack.hostname}/`,
      autoconfig: `https://autoconfig.${stack.domain}/mail/config-v1.1.xml`,
    },
    nextSteps: pulumi.all([deployment.outboundSmtp, host.ipv4]).apply(([outbound, ipv4]) => nextSteps(stack, outbound, ipv4)),
    /** For tests: the components, so their outputs can be inspected. */
    components: { host, dns, certificate, dkim, deployment, deployKey },
  };
}

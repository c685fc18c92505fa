// Certificate: the TLS certificate for the mail host and the names that serve policies and client settings,
// from the stack's ACME CA through DNS-01 on the Cloudflare zone.
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from '../../plan/stack-config.ts';
import { certificateNames } from '../../plan/dns-plan.ts';
import { AcmeCertificate } from '../providers/acme.ts';

export interface CertificateArgs {
  stack: StackConfig;
  zoneId: pulumi.Input<string>;
  cloudflareApiToken: pulumi.Input<string>;
}

/** Renew at the first `up` with fewer days left than this. */
export const RENEW_BEFORE_DAYS = 30;

export class Certificate extends pulumi.ComponentResource {
  readonly names: string[];
  readonly certificatePem: pulumi.Output<string>;
  readonly privateKeyPem: pulumi.Output<string>;
  readonly notAfter: pulumi.Output<string>;

  constructor(name: string, args: CertificateArgs, opts?: pulumi.ComponentResourceOptions) {
    super('postern:infra:Certificate', name, {}, opts);
    this.names = certificateNames(args.stack);
    const cert = new AcmeCertificate(`${name}-acme`, {
      directoryUrl: args.stack.acme.directoryUrl,
      email: args.stack.acme.email,
      names: this.names,
      renewBeforeDays: RENEW_BEFORE_DAYS,
      // The token reaches the provider as a secret input, never through the serialised provider code.
      dns: pulumi.secret(pulumi.all([args.cloudflareApiToken, args.zoneId]).apply(([apiToken, zoneId]) => ({ apiToken, zoneId }))),
      propagation: { zoneName: args.stack.domain, timeoutSeconds: 300 },
    }, { parent: this });
    this.certificatePem = cert.certificatePem;
    this.privateKeyPem = cert.privateKeyPem;
    this.notAfter = cert.notAfter;
    this.registerOutputs({ names: this.names, notAfter: this.notAfter });
  }
}

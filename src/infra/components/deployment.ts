// Deployment: renders the server config for the host, packs it with the bundle, certificate, DKIM keys and
// the systemd unit into a release, and pushes it over SSH (providers/deploy.ts).
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from '../../plan/stack-config.ts';
import { renderServerConfig, type ServerFacts } from '../../plan/server-render.ts';
import type { DkimAlgorithm } from '../../plan/dkim.ts';
import { assembleRelease, type ReleaseFile } from '../release.ts';
import { renderUnit } from '../host-templates.ts';
import { Deployment as DeploymentResource, SYSTEMD_COMMANDS, type HostPaths } from '../providers/deploy.ts';

export interface DeploymentArgs {
  stack: StackConfig;
  host: pulumi.Input<string>;
  hostKeyFingerprint: pulumi.Input<string>;
  deployPrivateKey: pulumi.Input<string>;
  authorizedKeys: pulumi.Input<string>[];
  certificatePem: pulumi.Input<string>;
  certificateKeyPem: pulumi.Input<string>;
  dkimKeys: { selector: string; algorithm: DkimAlgorithm; privateKeyPem: pulumi.Input<string> }[];
  /** The relay password in clear (from the decrypted stack config), when the stack has one. */
  relayPassword?: pulumi.Input<string>;
  bundleDir: string;
  nodeBinary: string;
  paths: HostPaths;
  serviceUser: string;
}

/**
 * Builds the release's files; paths inside the config are absolute paths under `<root>/current`. `listeners`
 * overrides ports and address (tests run the real bundle on loopback high ports).
 */
export function releaseFiles(stack: StackConfig, paths: HostPaths, serviceUser: string, secrets: {
  certificatePem: string; certificateKeyPem: string; dkim: { selector: string; algorithm: DkimAlgorithm; privateKeyPem: string }[]; relayPassword?: string;
}, listeners: Pick<ServerFacts, 'ports' | 'listenAddress'> = {}): ReleaseFile[] {
  const current = `${paths.root}/current`;
  const config = renderServerConfig(stack, {
    ...listeners,
    stateDir: paths.stateDir,
    certFile: `${current}/tls/cert.pem`,
    keyFile: `${current}/tls/key.pem`,
    dkimKeyFiles: secrets.dkim.map((k) => ({ selector: k.selector, algorithm: k.algorithm, privateKeyFile: `${current}/dkim/${k.selector}.pem` })),
    ...(secrets.relayPassword !== undefined ? { relayPasswordFile: `${current}/secrets/relay-password` } : {}),
  });
  return [
    // The config holds password hashes: readable by the service user only.
    { path: 'config/server.json', content: JSON.stringify(config, null, 2) + '\n', secret: true },
    { path: 'tls/cert.pem', content: secrets.certificatePem, secret: false },
    { path: 'tls/key.pem', content: secrets.certificateKeyPem, secret: true },
    ...secrets.dkim.map((k) => ({ path: `dkim/${k.selector}.pem`, content: k.privateKeyPem, secret: true })),
    ...(secrets.relayPassword !== undefined ? [{ path: 'secrets/relay-password', content: secrets.relayPassword, secret: true }] : []),
    { path: 'postern.service', content: renderUnit({ root: paths.root, stateDir: paths.stateDir, user: serviceUser }), secret: false },
  ];
}

export class Deployment extends pulumi.ComponentResource {
  readonly releaseId: pulumi.Output<string>;
  readonly outboundSmtp: pulumi.Output<'open' | 'blocked' | 'unchecked'>;

  constructor(name: string, args: DeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    super('postern:infra:Deployment', name, {}, opts);
    const release = pulumi.secret(pulumi.all([
      args.certificatePem, args.certificateKeyPem, pulumi.all(args.dkimKeys.map((k) => k.privateKeyPem)), args.relayPassword,
    ]).apply(([certificatePem, certificateKeyPem, dkimPems, relayPassword]) => ({
      bundleDir: args.bundleDir, nodeBinary: args.nodeBinary,
      files: releaseFiles(args.stack, args.paths, args.serviceUser, {
        certificatePem, certificateKeyPem,
        dkim: args.dkimKeys.map((k, i) => ({ selector: k.selector, algorithm: k.algorithm, privateKeyPem: dkimPems[i]! })),
        ...(relayPassword !== undefined ? { relayPassword } : {}),
      }),
    })));
    // The id is a hash of the contents, not a secret; computing it here lets an unchanged release show no diff.
    const releaseId = pulumi.unsecret(release.apply(async (r) => (await assembleRelease(r)).id));
    const deployment = new DeploymentResource(`${name}-release`, {
      host: args.host, hostKeyFingerprint: args.hostKeyFingerprint, privateKey: args.deployPrivateKey,
      release, releaseId, paths: args.paths, serviceUser: args.serviceUser, commands: SYSTEMD_COMMANDS,
      authorizedKeys: args.authorizedKeys,
    }, { parent: this });
    this.releaseId = deployment.releaseId;
    this.outboundSmtp = deployment.outboundSmtp;
    this.registerOutputs({ releaseId: this.releaseId, outboundSmtp: this.outboundSmtp });
  }
}

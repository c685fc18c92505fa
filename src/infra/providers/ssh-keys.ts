// An Ed25519 SSH key pair kept in Pulumi state: the droplet's host key (installed by cloud-init, so the first
// connection is already verified against a pinned fingerprint) and the deploy key Pulumi logs in with.
// Made once; stays the same on every later `up` (a changed key would replace the droplet through user_data).
import * as pulumi from '@pulumi/pulumi';
import { containsUnknown } from './unknowns.ts';

export interface SshKeyPairInputs {
  /** Comment on the public key line, e.g. `postern-host@mail.example.com`. */
  comment: string;
}

export interface SshKeyPairOutputs extends SshKeyPairInputs {
  /** OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`); secret. */
  privateKey: string;
  /** `ssh-ed25519 AAAA… comment` */
  publicKey: string;
  /** `SHA256:…` as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

/** `SHA256:<base64 without padding>` of the key blob in an OpenSSH public key line. */
export async function sshFingerprint(publicKeyLine: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  const blob = publicKeyLine.trim().split(/\s+/)[1];
  if (!blob) throw new Error(`not an OpenSSH public key line: ${JSON.stringify(publicKeyLine.slice(0, 40))}`);
  return 'SHA256:' + createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '');
}

export const sshKeyPairProvider: pulumi.dynamic.ResourceProvider<SshKeyPairInputs, SshKeyPairOutputs> = {
  async check(_olds, news) {
    if (!containsUnknown(news.comment) && (typeof news.comment !== 'string' || !/^[\x21-\x7e]{1,100}$/.test(news.comment))) {
      return { failures: [{ property: 'comment', reason: `found ${JSON.stringify(news.comment)}; expected 1-100 printable characters without spaces` }] };
    }
    return { inputs: { comment: news.comment } };
  },
  async diff(_id, olds, news) {
    // The comment is cosmetic: it is only in the public key line, so no new key for it.
    return { changes: olds.comment !== news.comment };
  },
  async create(inputs) {
    const ssh2 = (await import('ssh2')).default;
    const crypto = await import('node:crypto');
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: inputs.comment });
    const publicKey = pair.public.trim();
    return {
      id: `sshkey-${crypto.randomUUID()}`,
      outs: { comment: inputs.comment, privateKey: pair.private, publicKey, fingerprint: await sshFingerprint(publicKey) },
    };
  },
  async update(_id, olds, news) {
    const [type, blob] = olds.publicKey.split(/\s+/);
    return { outs: { ...olds, comment: news.comment, publicKey: `${type} ${blob} ${news.comment}` } };
  },
};

/** An Ed25519 key pair; `privateKey` is secret. */
export class SshKeyPair extends pulumi.dynamic.Resource {
  declare readonly privateKey: pulumi.Output<string>;
  declare readonly publicKey: pulumi.Output<string>;
  declare readonly fingerprint: pulumi.Output<string>;

  constructor(name: string, args: { comment: pulumi.Input<string> }, opts?: pulumi.CustomResourceOptions) {
    super(sshKeyPairProvider, name, { ...args, privateKey: undefined, publicKey: undefined, fingerprint: undefined },
      { ...opts, additionalSecretOutputs: ['privateKey'] }, 'postern', 'SshKeyPair');
  }
}

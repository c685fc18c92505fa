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

/**
 * An Ed25519 key pair in OpenSSH's own formats (PROTOCOL.key), made with node:crypto. ssh2's generator was not
 * used: about one key in two hundred it writes is refused by OpenSSH ("error in libcrypto"), which would leave a
 * droplet without its host key. `crypto` is passed in because dynamic providers import inside their methods.
 */
export function openSshEd25519KeyPair(crypto: typeof import('node:crypto'), comment: string): { privateKey: string; publicKey: string } {
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d!, 'base64url');
  const pub = Buffer.from(jwk.x!, 'base64url');
  if (seed.length !== 32 || pub.length !== 32) throw new Error('node:crypto returned an Ed25519 key of unexpected size');
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
  const str = (v: Buffer | string) => { const b = Buffer.from(v); return Buffer.concat([u32(b.length), b]); };
  const blob = Buffer.concat([str('ssh-ed25519'), str(pub)]);
  const check = crypto.randomBytes(4);
  let secret = Buffer.concat([check, check, str('ssh-ed25519'), str(pub), str(Buffer.concat([seed, pub])), str(comment)]);
  const pad = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), str('none'), str('none'), str(''), u32(1), str(blob), str(secret)]);
  const lines = body.toString('base64').match(/.{1,70}/g)!.join('\n');
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${blob.toString('base64')} ${comment}`,
  };
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
    const crypto = await import('node:crypto');
    const pair = openSshEd25519KeyPair(crypto, inputs.comment);
    return {
      id: `sshkey-${crypto.randomUUID()}`,
      outs: { comment: inputs.comment, privateKey: pair.privateKey, publicKey: pair.publicKey, fingerprint: await sshFingerprint(pair.publicKey) },
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

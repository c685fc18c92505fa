// The zod schema of the `postern:` keys, key by key, with the wording of every per-key error. Defaults that depend
// on other keys, and checks across keys, are in stack-config.ts. Pure.
import { z } from 'zod';
import { parseAddress, parseCidr, toALabel } from './names.ts';
import { parseByteSize, parseDurationSeconds } from './sizes.ts';

const custom = (ctx: { addIssue: (i: { code: 'custom'; message: string; input: unknown }) => void }, value: unknown, message: string): never => {
  ctx.addIssue({ code: 'custom', message, input: value });
  return z.NEVER;
};

const domainName = (what: string, allowServiceLabels = false) => z.string({ error: `expected ${what}` }).transform((s, ctx) =>
  toALabel(s, allowServiceLabels) ?? custom(ctx, s, `expected ${what}`));

const address = (what = 'an email address like name@example.com') => z.string({ error: `expected ${what}` })
  .transform((s, ctx) => parseAddress(s)?.address ?? custom(ctx, s, `expected ${what}`));

const bool = (what: string) => z.boolean({ error: `expected true or false (${what})` });

const policy = z.enum(['none', 'quarantine', 'reject']);

const PHC_ARGON2ID = /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$/;
const SSH_PUBLIC_KEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/]+={0,2}( [^\r\n]*)?$/;

/** The key blob starts with its own type name: a truncated or mangled paste does not. */
function keyBlobMatchesType(line: string): boolean {
  const [type, b64] = line.split(' ') as [string, string];
  const blob = Buffer.from(b64, 'base64');
  if (blob.length < 4) return false;
  const len = blob.readUInt32BE(0);
  return len === type.length && blob.subarray(4, 4 + len).toString('latin1') === type;
}

const secret = z.union([
  z.string().min(1),
  z.strictObject({ secure: z.string().min(1) }),
], { error: 'expected a secret: set it with `pulumi config set --secret` (a {secure: ...} value) or a non-empty string' });

export const stackConfigSchema = z.strictObject({
  domain: domainName('a domain name like example.com'),
  hostname: domainName('a host name like mail.example.com').optional(),
  region: z.string({ error: 'expected a DigitalOcean region slug like fra1 or nyc3' })
    .regex(/^[a-z]{3}[0-9]$/, 'expected a DigitalOcean region slug like fra1 or nyc3'),
  size: z.string({ error: 'expected a DigitalOcean droplet size slug like s-1vcpu-1gb' })
    .regex(/^[a-z0-9]+(-[a-z0-9]+)+$/, 'expected a DigitalOcean droplet size slug like s-1vcpu-1gb').default('s-1vcpu-1gb'),
  ipv6: bool('publish and listen on IPv6').default(true),
  backups: bool('DigitalOcean weekly droplet backups').default(false),
  monitoring: bool('DigitalOcean monitoring agent').default(true),
  zoneId: z.string({ error: 'expected a Cloudflare zone id (32 hex digits)' })
    .regex(/^[0-9a-f]{32}$/, 'expected a Cloudflare zone id (32 hex digits)').optional(),
  dnsTtl: z.number({ error: 'expected a TTL in seconds from 60 to 86400' }).int('expected a TTL in seconds from 60 to 86400')
    .min(60, 'expected a TTL in seconds from 60 to 86400').max(86400, 'expected a TTL in seconds from 60 to 86400').default(3600),
  adminCidrs: z.array(z.string({ error: 'expected a CIDR block like 203.0.113.0/24' }).transform((s, ctx) => {
    const r = parseCidr(s);
    return r.ok ? r.cidr : custom(ctx, s, r.reason);
  }), { error: 'expected a list of CIDR blocks allowed to reach SSH, like ["203.0.113.7/32"]' })
    .min(1, 'expected at least one CIDR block allowed to reach SSH, like ["203.0.113.7/32"]')
    .max(100, 'expected at most 100 CIDR blocks (DigitalOcean firewalls hold few sources per rule)'),
  allowSshFromAnywhere: bool('allow SSH from 0.0.0.0/0 and ::/0').default(false),
  sshPublicKey: z.string({ error: 'expected an OpenSSH public key line like "ssh-ed25519 AAAA... you@laptop"' })
    .transform((s) => s.trim())
    .refine((s) => SSH_PUBLIC_KEY.test(s) && keyBlobMatchesType(s), 'expected an OpenSSH public key line like "ssh-ed25519 AAAA... you@laptop"'),
  users: z.array(z.strictObject({
    address: address(),
    name: z.string({ error: 'expected a display name' }).max(200, 'expected a display name of at most 200 characters').default(''),
    passwordHash: z.string({ error: 'expected an argon2id PHC string like $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>' })
      .regex(PHC_ARGON2ID, 'expected an argon2id PHC string like $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>'),
    quota: z.union([z.number(), z.string()], { error: 'expected a size like "2GB", "500MiB" or a number of bytes (0 = unlimited)' })
      .transform((v, ctx) => parseByteSize(v) ?? custom(ctx, v, 'expected a size like "2GB", "500MiB" or a number of bytes (0 = unlimited)'))
      .default(0),
  }), { error: 'expected a list of users' }).min(1, 'expected at least one user').max(10000, 'expected at most 10000 users'),
  aliases: z.record(
    z.string(),
    z.union([z.string(), z.array(z.string()).min(1, 'expected at least one target address')], { error: 'expected a target address or a list of target addresses' }),
    { error: 'expected a map from an address (or "@domain" for a catch-all) to one or more target addresses' },
  ).default({}),
  dkim: z.strictObject({
    selectorPrefix: z.string({ error: 'expected a DNS label like "postern" or "s2026"' })
      .regex(/^[a-z0-9](?:[a-z0-9-]{0,40}[a-z0-9])?$/, 'expected a DNS label like "postern" or "s2026" (lower-case letters, digits, hyphens; at most 42 characters)')
      .default('postern'),
    rsa: bool('an RSA key, which every verifier understands').default(true),
    rsaBits: z.union([z.literal(2048), z.literal(3072), z.literal(4096)], { error: 'expected 2048, 3072 or 4096' }).default(2048),
    ed25519: bool('an Ed25519 key (RFC 8463)').default(true),
  }, { error: 'expected a map with selectorPrefix, rsa, rsaBits, ed25519' }).prefault({}),
  dmarc: z.strictObject({
    policy: policy.default('quarantine'),
    subdomainPolicy: policy.optional(),
    reportAddress: address().optional(),
    inboundRejectAction: z.enum(['reject', 'junk']).default('reject'),
  }, { error: 'expected a map with policy, subdomainPolicy, reportAddress, inboundRejectAction' }).prefault({}),
  mtaSts: z.strictObject({
    mode: z.enum(['none', 'testing', 'enforce']).default('testing'),
    maxAge: z.union([z.number(), z.string()], { error: 'expected a duration like "7d" or seconds' })
      .transform((v, ctx) => {
        const s = parseDurationSeconds(v);
        return s !== undefined && s >= 86400 && s <= 31557600 ? s
          : custom(ctx, v, 'expected a duration from 1 day to 1 year, like "7d" or 604800 (seconds)');
      }).default(604800),
  }, { error: 'expected a map with mode, maxAge' }).prefault({}),
  tlsRpt: z.strictObject({ reportAddress: address().optional() }, { error: 'expected a map with reportAddress' }).prefault({}),
  relay: z.strictObject({
    host: domainName('the relay\'s host name like smtp.relay.example'),
    port: z.number({ error: 'expected a port number (587 or 465 usually)' }).int('expected a port number (587 or 465 usually)')
      .min(1, 'expected a port number (587 or 465 usually)').max(65535, 'expected a port number (587 or 465 usually)').default(587),
    username: z.string({ error: 'expected a user name' }).min(1, 'expected a non-empty user name').optional(),
    password: secret.optional(),
    spfInclude: domainName('a domain to include in SPF, like _spf.relay.example', true).optional(),
  }, { error: 'expected a map with host, port, username, password, spfInclude' }).optional(),
  acme: z.strictObject({
    ca: z.string({ error: 'expected "production", "staging" or an https:// ACME directory URL' }).optional(),
    email: address().optional(),
    caaIdentity: domainName('the CA\'s CAA issuer domain like letsencrypt.org').optional(),
  }, { error: 'expected a map with ca, email, caaIdentity' }).prefault({}),
  ephemeral: bool('a test stack: no deletion protection, staging CA by default').default(false),
  plaintextPorts: bool('offer IMAP 143 and POP3 110 with STARTTLS').default(false),
  maxMessageSize: z.union([z.number(), z.string()], { error: 'expected a size like "50MB"' })
    .transform((v, ctx) => {
      const n = parseByteSize(v);
      return n !== undefined && n >= 1024 * 1024 && n <= 1024 * 1024 * 1024 ? n : custom(ctx, v, 'expected a size from 1MiB to 1GiB, like "50MB"');
    }).default(50 * 1024 * 1024),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
}, { error: 'expected a map of postern:* keys' });

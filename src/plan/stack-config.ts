// The schema of a domain's stack: the `postern:` keys of `stacks/Pulumi.<stack>.yaml`. Validation collects every
// problem at once and names each by its key path as the user writes it (`postern:users[1].address`).
// Pure: no I/O. Reference for every key: docs/stack-config.md.
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { formatIssues, formatPath, showValue, type ParseResult } from './server-config.ts';
import { isWithin, parseAddress, parseCidr, toALabel } from './names.ts';
import { didYouMean } from './did-you-mean.ts';
import { stackConfigSchema } from './stack-schema.ts';

export { stackConfigSchema };

export const STACK_NAMESPACE = 'postern';
const PREFIX = `${STACK_NAMESPACE}:`;

export const LETS_ENCRYPT_DIRECTORIES = {
  production: 'https://acme-v02.api.letsencrypt.org/directory',
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
} as const;

/** A secret as Pulumi stores it in a stack file (`{secure: <ciphertext>}`) or as the program receives it (plain). */
export type SecretValue = { readonly secure: string } | { readonly plaintext: string };

export interface StackUser { address: string; name: string; passwordHash: string; quotaBytes: number }
export interface StackAlias { from: string; to: string[] }

export interface StackConfig {
  domain: string;
  hostname: string;
  region: string;
  size: string;
  ipv6: boolean;
  backups: boolean;
  monitoring: boolean;
  zoneId?: string;
  dnsTtl: number;
  adminCidrs: string[];
  allowSshFromAnywhere: boolean;
  sshPublicKey: string;
  users: StackUser[];
  aliases: StackAlias[];
  dkim: { selectorPrefix: string; rsa: boolean; rsaBits: 2048 | 3072 | 4096; ed25519: boolean };
  dmarc: {
    policy: 'none' | 'quarantine' | 'reject';
    subdomainPolicy?: 'none' | 'quarantine' | 'reject';
    reportAddress: string;
    /** Inbound mail failing DMARC of a sender whose policy is reject: refuse it in SMTP, or file it in Junk. */
    inboundRejectAction: 'reject' | 'junk';
  };
  mtaSts: { mode: 'none' | 'testing' | 'enforce'; maxAge: number };
  tlsRpt: { reportAddress: string };
  relay?: { host: string; port: number; username?: string; password?: SecretValue; spfInclude?: string };
  acme: { ca: string; directoryUrl: string; email: string; caaIdentity: string };
  ephemeral: boolean;
  plaintextPorts: boolean;
  maxMessageBytes: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
}

type Parsed = z.output<typeof stackConfigSchema>;

/** Checks that span several keys (they need the domain); each problem is a ready-made error line. */
function crossCheck(v: Parsed, raw: Record<string, unknown>, errors: string[]): StackConfig {
  const domain = v.domain;
  const at = (path: readonly PropertyKey[]): string => formatPath(path, PREFIX);
  const hostname = v.hostname ?? `mail.${domain}`;
  if (v.hostname !== undefined && (!isWithin(v.hostname, domain) || v.hostname === domain)) {
    errors.push(`${at(['hostname'])}: found ${showValue(raw.hostname)}; expected a host name below ${domain} (Postern publishes its address in that zone), like mail.${domain}`);
  }
  const servicesHosts = ['mta-sts', 'autoconfig', 'autodiscover'].map((h) => `${h}.${domain}`);
  if (servicesHosts.includes(hostname)) {
    errors.push(`${at(['hostname'])}: found ${showValue(raw.hostname)}; expected a name other than ${servicesHosts.join(', ')} (Postern publishes those itself), like mail.${domain}`);
  }
  if (!v.allowSshFromAnywhere) {
    v.adminCidrs.forEach((c, i) => { // '' marks an entry already reported as unreadable
      if (c === '0.0.0.0/0' || c === '::/0') {
        errors.push(`${at(['adminCidrs', i])}: found ${showValue(c)}; expected your own address block: SSH from anywhere is refused unless postern:allowSshFromAnywhere is true`);
      }
    });
  }
  const userAddresses = new Set<string>();
  v.users.forEach((u, i) => {
    if (u.address === '') return; // an entry already reported as unreadable
    if (!u.address.endsWith(`@${domain}`)) {
      errors.push(`${at(['users', i, 'address'])}: found ${showValue((raw.users as Record<string, unknown>[])[i]?.address)}; expected an address @${domain}`);
    }
    const key = u.address.toLowerCase();
    if (userAddresses.has(key)) errors.push(`${at(['users', i, 'address'])}: found ${showValue(u.address)}; expected each user once (duplicate address)`);
    userAddresses.add(key);
  });
  const aliases: StackAlias[] = [];
  const aliasFroms = new Set<string>();
  const aliasKeys = new Map<string, string>(); // lower-case address → key as written
  const localTargets: { address: string; path: PropertyKey[] }[] = [];
  for (const [from, targets] of Object.entries(v.aliases)) {
    let fromAddress: string | undefined;
    if (from.startsWith('@')) {
      if (toALabel(from.slice(1)) !== domain) errors.push(`${at(['aliases', from])}: found ${showValue(from)} as alias; expected "@${domain}" for a catch-all`);
      else fromAddress = `@${domain}`;
    } else {
      const a = parseAddress(from);
      if (!a) errors.push(`${at(['aliases', from])}: found ${showValue(from)} as alias; expected an address like postmaster@${domain} or "@${domain}" for a catch-all`);
      else if (a.domain !== domain) errors.push(`${at(['aliases', from])}: found ${showValue(from)} as alias; expected an address @${domain}`);
      else if (userAddresses.has(a.address.toLowerCase())) errors.push(`${at(['aliases', from])}: found ${showValue(from)} as alias; expected an address that is not also a user`);
      else fromAddress = a.address;
    }
    const to: string[] = [];
    (typeof targets === 'string' ? [targets] : targets).forEach((t, i) => {
      const path = typeof targets === 'string' ? ['aliases', from] : ['aliases', from, i];
      const a = parseAddress(t);
      if (!a) errors.push(`${at(path)}: found ${showValue(t)}; expected a target address like name@example.com`);
      else {
        to.push(a.address);
        if (a.domain === domain) localTargets.push({ address: a.address, path });
      }
    });
    if (fromAddress !== undefined) {
      if (aliasFroms.has(fromAddress.toLowerCase())) {
        errors.push(`${at(['aliases', from])}: found ${showValue(from)} as alias; expected each alias once (addresses are case-insensitive)`);
      }
      aliasFroms.add(fromAddress.toLowerCase());
      aliases.push({ from: fromAddress, to });
      aliasKeys.set(fromAddress.toLowerCase(), from);
    }
  }
  // An alias that leads back to itself would pass a message around until a hop limit bounces it.
  const next = new Map(aliases.map((a) => [a.from.toLowerCase(), a.to.map((t) => t.toLowerCase())]));
  const state = new Map<string, 'open' | 'done'>();
  const visit = (node: string, trail: string[]): void => {
    if (state.get(node) === 'done') return;
    if (state.get(node) === 'open') {
      const loop = [...trail.slice(trail.indexOf(node)), node];
      errors.push(`${at(['aliases', aliasKeys.get(node)!])}: found a loop ${loop.join(' → ')}; expected aliases that end at users or outside addresses`);
      return;
    }
    state.set(node, 'open');
    for (const t of next.get(node) ?? []) if (next.has(t)) visit(t, [...trail, node]);
    state.set(node, 'done');
  };
  for (const a of next.keys()) visit(a, []);
  // A local target must exist, or mail to the alias would bounce.
  for (const t of localTargets) {
    const key = t.address.toLowerCase();
    if (!userAddresses.has(key) && !aliasFroms.has(key)) {
      errors.push(`${at(t.path)}: found ${showValue(t.address)}; expected a user or alias of ${domain} (no such mailbox)`);
    }
  }
  // Reports and CA notices sent to a local address nobody receives would be lost. postmaster@ and abuse@ always
  // exist (server-render.ts routes them to the first user unless they are aliases).
  const roles = new Set([`postmaster@${domain}`, `abuse@${domain}`]);
  const notices: [PropertyKey[], string | undefined][] = [
    [['dmarc', 'reportAddress'], v.dmarc.reportAddress], [['tlsRpt', 'reportAddress'], v.tlsRpt.reportAddress], [['acme', 'email'], v.acme.email],
  ];
  for (const [path, addr] of notices) {
    const key = addr?.toLowerCase();
    if (key?.endsWith(`@${domain}`) && !roles.has(key) && !userAddresses.has(key) && !aliasFroms.has(key)) {
      errors.push(`${at(path)}: found ${showValue(addr)}; expected a user or alias of ${domain} (no such mailbox)`);
    }
  }
  if (!v.dkim.rsa && !v.dkim.ed25519) {
    errors.push(`${at(['dkim'])}: found rsa false and ed25519 false; expected at least one DKIM key (rsa is the one every verifier understands)`);
  }
  const ca = v.acme.ca ?? (v.ephemeral ? 'staging' : 'production');
  let directoryUrl = '';
  let caaIdentity = v.acme.caaIdentity ?? '';
  if (ca === 'production' || ca === 'staging') {
    directoryUrl = LETS_ENCRYPT_DIRECTORIES[ca];
    caaIdentity ||= 'letsencrypt.org';
  } else {
    let url: URL | undefined;
    try { url = new URL(ca); } catch { url = undefined; }
    if (!url || url.protocol !== 'https:') {
      const hint = didYouMean(ca, ['production', 'staging']);
      errors.push(`${at(['acme', 'ca'])}: found ${showValue(ca)}; expected "production", "staging" or an https:// ACME directory URL${hint ? ` (did you mean "${hint}"?)` : ''}`);
    } else {
      directoryUrl = url.href;
      if (!caaIdentity) errors.push(`${at(['acme', 'caaIdentity'])}: found nothing; expected the CA's CAA issuer domain (required when postern:acme.ca is a URL)`);
    }
  }
  if (v.relay?.password !== undefined && v.relay.username === undefined) {
    errors.push(`${at(['relay', 'username'])}: found nothing; expected a user name to go with postern:relay.password`);
  }
  const postmaster = `postmaster@${domain}`;
  return {
    domain, hostname, region: v.region, size: v.size, ipv6: v.ipv6, backups: v.backups, monitoring: v.monitoring,
    ...(v.zoneId !== undefined ? { zoneId: v.zoneId } : {}),
    dnsTtl: v.dnsTtl, adminCidrs: v.adminCidrs, allowSshFromAnywhere: v.allowSshFromAnywhere, sshPublicKey: v.sshPublicKey,
    users: v.users.map((u) => ({ address: u.address, name: u.name, passwordHash: u.passwordHash, quotaBytes: u.quota })),
    aliases,
    dkim: v.dkim,
    dmarc: {
      policy: v.dmarc.policy,
      ...(v.dmarc.subdomainPolicy !== undefined ? { subdomainPolicy: v.dmarc.subdomainPolicy } : {}),
      reportAddress: v.dmarc.reportAddress ?? postmaster,
      inboundRejectAction: v.dmarc.inboundRejectAction,
    },
    mtaSts: v.mtaSts,
    tlsRpt: { reportAddress: v.tlsRpt.reportAddress ?? postmaster },
    ...(v.relay ? {
      relay: {
        host: v.relay.host, port: v.relay.port,
        ...(v.relay.username !== undefined ? { username: v.relay.username } : {}),
        ...(v.relay.password !== undefined
          ? { password: typeof v.relay.password === 'string' ? { plaintext: v.relay.password } : { secure: v.relay.password.secure } }
          : {}),
        ...(v.relay.spfInclude !== undefined ? { spfInclude: v.relay.spfInclude } : {}),
      },
    } : {}),
    acme: { ca, directoryUrl, email: v.acme.email ?? postmaster, caaIdentity },
    ephemeral: v.ephemeral, plaintextPorts: v.plaintextPorts, maxMessageBytes: v.maxMessageSize, logLevel: v.logLevel,
  };
}

/**
 * Validates the `postern:` keys (given without their `postern:` prefix, as Pulumi's Config hands them over) and
 * fills defaults that depend on other keys. Every problem is reported, each as `postern:<path>: found X; expected Y`.
 */
export function parseStackConfig(input: unknown): ParseResult<StackConfig> {
  const r = stackConfigSchema.safeParse(input);
  const errors = r.success ? [] : formatIssues(r.error.issues, input, PREFIX, stackConfigSchema);
  if (r.success) {
    const value = crossCheck(r.data, input as Record<string, unknown>, errors);
    return errors.length ? { ok: false, errors } : { ok: true, value };
  }
  // Cross-key checks still run on what did parse, so one pass reports everything it can.
  const partial = partialParse(input);
  if (partial) crossCheck(partial, input as Record<string, unknown>, errors);
  return { ok: false, errors };
}

/** Parses each key on its own, substituting a neutral value for broken ones, so cross-key checks can still run. */
function partialParse(input: unknown): Parsed | undefined {
  if (!input || typeof input !== 'object' || Array.isArray(input)) return undefined;
  const raw = input as Record<string, unknown>;
  const shape = stackConfigSchema.shape;
  const domain = shape.domain.safeParse(raw.domain);
  if (!domain.success) return undefined;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(shape) as (keyof typeof shape)[]) {
    const r = (shape[key] as z.ZodType).safeParse(raw[key]);
    out[key] = r.success ? r.data : neutral(key);
  }
  // Users: keep only entries that parse, at their positions, so error paths stay right.
  if (Array.isArray(raw.users)) {
    const userSchema = shape.users.element;
    out.users = raw.users.map((u) => {
      const r = userSchema.safeParse(u);
      return r.success ? r.data : { address: '', name: '', passwordHash: '', quota: 0 };
    });
  }
  if (Array.isArray(raw.adminCidrs)) {
    out.adminCidrs = raw.adminCidrs.map((c) => (typeof c === 'string' && parseCidr(c).ok ? (parseCidr(c) as { cidr: string }).cidr : ''));
  }
  return out as Parsed;
}

function neutral(key: string): unknown {
  const neutrals: Record<string, unknown> = {
    adminCidrs: [], users: [], aliases: {}, allowSshFromAnywhere: true, ephemeral: false,
    dkim: { selectorPrefix: 'postern', rsa: true, rsaBits: 2048, ed25519: true }, dmarc: { policy: 'quarantine', inboundRejectAction: 'reject' },
    mtaSts: { mode: 'testing', maxAge: 604800 }, tlsRpt: {}, acme: { caaIdentity: 'invalid.invalid' },
  };
  return neutrals[key];
}

const isSecure = (v: unknown): boolean => !!v && typeof v === 'object' && !Array.isArray(v) &&
  Object.keys(v).length === 1 && typeof (v as Record<string, unknown>).secure === 'string';

/** Encrypted values where Postern expects plain ones (only relay.password is a secret). */
function misplacedSecrets(config: Record<string, unknown>): string[] {
  const found: string[] = [];
  const walk = (v: unknown, path: PropertyKey[], depth: number): void => {
    if (depth > 8 || !v || typeof v !== 'object') return;
    if (isSecure(v)) {
      if (!(path.length === 2 && path[0] === 'relay' && path[1] === 'password')) {
        found.push(`${formatPath(path, PREFIX)}: found an encrypted value; expected a plain value (only postern:relay.password is a secret: set this key without --secret)`);
      }
      return;
    }
    for (const [k, child] of Object.entries(v)) walk(child, [...path, Array.isArray(v) ? Number(k) : k], depth + 1);
  };
  walk(config, [], 0);
  return found;
}

/**
 * Reads a Pulumi stack file (`stacks/Pulumi.<stack>.yaml`) and validates its `postern:` keys. Keys of other
 * namespaces (`digitalocean:token`, `cloudflare:apiToken`, …) belong to providers and are left alone.
 */
export function parseStackFile(yamlText: string): ParseResult<StackConfig> {
  let doc: unknown;
  try {
    doc = parseYaml(yamlText, { maxAliasCount: 100, uniqueKeys: true });
  } catch (e) {
    return { ok: false, errors: [`stack file: not valid YAML: ${(e as Error).message.split('\n')[0]}`] };
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return { ok: false, errors: ['stack file: found no map; expected a Pulumi stack file with a `config:` map'] };
  const config = (doc as Record<string, unknown>).config;
  if (!config || typeof config !== 'object' || Array.isArray(config)) {
    return { ok: false, errors: [`config: found ${showValue(config)}; expected a map of postern:* keys`] };
  }
  const mine: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (key.startsWith(PREFIX)) mine[key.slice(PREFIX.length)] = value;
    else if (!key.includes(':')) errors.push(`${key}: unknown key (Pulumi config keys are namespaced: did you mean "${PREFIX}${key}"?)`);
  }
  const secrets = misplacedSecrets(mine);
  errors.push(...secrets);
  const r = parseStackConfig(mine);
  if (r.ok && errors.length === 0) return r;
  // The schema's own complaint about such a value says less than the line above: keep one line per problem.
  const said = secrets.map((e) => `${e.slice(0, e.indexOf(': found '))}: found {"secure":`);
  return { ok: false, errors: [...errors, ...(r.ok ? [] : r.errors.filter((e) => !said.some((p) => e.startsWith(p))))] };
}

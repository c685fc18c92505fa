// The server's runtime configuration: the file that `plan/` renders from a stack config, `infra/` pushes to the
// host, and `server/main.ts` reads once at start. `postern serve --dev` builds one in memory.
// Pure: a schema and a parser, no I/O.
import { z } from 'zod';
import { didYouMean } from './did-you-mean.ts';

const port = z.number().int().min(0).max(65535); // 0 = listener off
/** A host name a public CA issues for: lower-case A-labels, at least two labels. */
const ACME_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;

export const serverConfigSchema = z.strictObject({
  /** The mail domain (A-label). */
  domain: z.string().min(1),
  /** FQDN of the mail host (A-label); names the host in SMTP greetings and certificates. */
  hostname: z.string().min(1),
  /** Folder for mail, queue, index, keys; created if missing. */
  stateDir: z.string().min(1),
  /** Address every listener binds. */
  listenAddress: z.string().default('0.0.0.0'),
  ports: z.strictObject({
    smtp: port.default(25),
    submission: port.default(587),
    submissions: port.default(465),
    imap: port.default(143),
    imaps: port.default(993),
    pop3: port.default(110),
    pop3s: port.default(995),
    https: port.default(443),
    http: port.default(80),
  }).prefault({}),
  tls: z.strictObject({ certFile: z.string().min(1), keyFile: z.string().min(1) }),
  users: z.array(z.strictObject({
    address: z.string().min(3),
    name: z.string().default(''),
    /** argon2id PHC string. */
    passwordHash: z.string().startsWith('$argon2id$'),
    /** Bytes; 0 = unlimited. */
    quotaBytes: z.number().int().min(0).default(0),
  })).default([]),
  aliases: z.array(z.strictObject({
    /** `name@domain`, or `@domain` for a catch-all. */
    from: z.string().min(2),
    to: z.array(z.string().min(3)).min(1),
  })).default([]),
  dkim: z.array(z.strictObject({
    selector: z.string().min(1),
    algorithm: z.enum(['rsa-sha256', 'ed25519-sha256']),
    privateKeyFile: z.string().min(1),
  })).default([]),
  dmarc: z.strictObject({
    policy: z.enum(['none', 'quarantine', 'reject']).default('quarantine'),
    reportAddress: z.string().optional(),
    /** What to do with inbound mail whose DMARC policy is reject: refuse it in SMTP, or file it in Junk. */
    inboundRejectAction: z.enum(['reject', 'junk']).default('reject'),
  }).prefault({}),
  mtaSts: z.strictObject({
    mode: z.enum(['none', 'testing', 'enforce']).default('testing'),
    maxAgeSeconds: z.number().int().min(0).default(604800),
    /** The MTA-STS policy exactly as served at /.well-known/mta-sts.txt. */
    policy: z.string().default(''),
  }).prefault({}),
  tlsRpt: z.strictObject({ reportAddress: z.string().optional() }).prefault({}),
  relay: z.strictObject({
    host: z.string().min(1),
    port: port.default(587),
    username: z.string().optional(),
    passwordFile: z.string().optional(),
  }).optional(),
  /** Client autoconfiguration documents served over HTTPS, rendered by plan/. */
  clientConfig: z.strictObject({
    autoconfigXml: z.string().default(''),
    autodiscoverXml: z.string().default(''),
    mobileconfig: z.string().default(''),
  }).prefault({}),
  limits: z.strictObject({
    maxMessageBytes: z.number().int().min(1024).default(50 * 1024 * 1024),
    maxRecipients: z.number().int().min(1).default(100),
    maxConnectionsPerIp: z.number().int().min(1).default(20),
    maxLineBytes: z.number().int().min(1000).default(65536),
  }).prefault({}),
  log: z.strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
    pretty: z.boolean().default(false),
  }).prefault({}),
  /**
   * Certificate renewal on the host (HTTP-01 through the port-80 listener): checked at start and twice a day, a
   * new certificate for `names` is ordered when fewer than `renewBeforeDays` days are left.
   */
  acme: z.strictObject({
    enabled: z.boolean().default(true),
    directoryUrl: z.string().regex(/^https:\/\/[^\s]{1,2000}$/, 'expected an https:// ACME directory URL'),
    email: z.string().min(3).max(254),
    names: z.array(z.string().regex(ACME_NAME, 'expected a lower-case A-label host name')).min(1).max(100),
    renewBeforeDays: z.number().int().min(1).max(365).default(30),
    /** Extra CA (PEM file) trusted for the directory's HTTPS, added to the public roots (private or test CAs). */
    directoryCaFile: z.string().min(1).optional(),
  }).optional(),
  /** Development mode: self-signed certificate, no real DNS assumptions. */
  dev: z.boolean().default(false),
});

export type ServerConfig = z.infer<typeof serverConfigSchema>;
export type ServerConfigInput = z.input<typeof serverConfigSchema>;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/** A key path as a user writes it: `users[1].address`, `aliases["@example.com"]`; `prefix` e.g. `postern:`. */
export function formatPath(path: readonly PropertyKey[], prefix = ''): string {
  let out = prefix;
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(String(k))) out += (out === '' || out.endsWith(':') ? '' : '.') + String(k);
    else out += `[${JSON.stringify(String(k))}]`;
  }
  if (path.length === 0 && out.endsWith(':')) return out.slice(0, -1);
  return out || '(root)';
}

/** The keys a (strict) object schema accepts at `path`, for "did you mean" hints; [] when unknown. */
function keysAt(schema: z.ZodType | undefined, path: readonly PropertyKey[]): string[] {
  let s = schema as { _zod: { def: Record<string, unknown> } } | undefined;
  const unwrap = (): void => {
    for (let guard = 0; s && guard < 20; guard++) {
      const def = s._zod.def;
      if (def.innerType) s = def.innerType as typeof s;
      else if (def.type === 'pipe') s = def.in as typeof s;
      else return;
    }
  };
  for (const k of path) {
    unwrap();
    if (!s) return [];
    const def = s._zod.def;
    if (def.type === 'object') s = (def.shape as Record<string, typeof s>)[String(k)];
    else if (def.type === 'array') s = def.element as typeof s;
    else if (def.type === 'record') s = def.valueType as typeof s;
    else if (def.type === 'union') {
      s = (def.options as NonNullable<typeof s>[]).find((o) => o._zod.def.type === 'object');
      if (s) s = (s._zod.def.shape as Record<string, typeof s>)[String(k)];
    } else return [];
  }
  unwrap();
  if (s?._zod.def.type === 'union') s = (s._zod.def.options as NonNullable<typeof s>[]).find((o) => o._zod.def.type === 'object');
  return s?._zod.def.type === 'object' ? Object.keys(s._zod.def.shape as object) : [];
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let found: unknown = input;
  for (const k of path) found = found && typeof found === 'object' ? (found as Record<PropertyKey, unknown>)[k] : undefined;
  return found;
}

/** Shows a found value briefly (long values are cut, secrets never reach here as text). */
export function showValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Formats zod issues as `path: found X; expected Y` lines. Unknown keys get one line each naming the key's own path,
 * with a "did you mean" for near typos when `schema` is given.
 */
export function formatIssues(issues: readonly z.core.$ZodIssue[], input: unknown, prefix = '', schema?: z.ZodType): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = keysAt(schema, issue.path);
      for (const key of issue.keys) {
        const hint = didYouMean(key, known);
        lines.push(`${formatPath([...issue.path, key], prefix)}: unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`);
      }
      continue;
    }
    const found = valueAt(input, issue.path);
    let message = issue.message;
    // zod's default wording, rephrased to the `expected …` form of every other line.
    if (issue.code === 'invalid_type' && message.startsWith('Invalid input')) message = `expected ${issue.expected}`;
    if (issue.code === 'invalid_format' && message.startsWith('Invalid string')) {
      const i = issue as z.core.$ZodIssueInvalidStringFormat & { prefix?: string; suffix?: string; pattern?: string };
      message = i.format === 'starts_with' ? `expected a string starting with ${JSON.stringify(i.prefix)}`
        : i.format === 'ends_with' ? `expected a string ending with ${JSON.stringify(i.suffix)}`
        : i.format === 'regex' ? `expected a string matching ${i.pattern}` : `expected a valid ${i.format}`;
    }
    if ((issue.code === 'too_small' || issue.code === 'too_big') && /^Too (small|big): /.test(message)) message = message.replace(/^Too (small|big): /, '');
    if (issue.code === 'invalid_value' && message.startsWith('Invalid option')) {
      const options = issue.values.map((v) => JSON.stringify(v));
      const hint = typeof found === 'string' ? didYouMean(found, issue.values.map(String)) : undefined;
      message = `expected one of ${options.join(', ')}${hint ? ` (did you mean "${hint}"?)` : ''}`;
    }
    lines.push(`${formatPath(issue.path, prefix)}: found ${showValue(found)}; ${message}`);
  }
  return lines;
}

export function parseServerConfig(input: unknown): ParseResult<ServerConfig> {
  const r = serverConfigSchema.safeParse(input);
  return r.success ? { ok: true, value: r.data } : { ok: false, errors: formatIssues(r.error.issues, input, '', serverConfigSchema) };
}

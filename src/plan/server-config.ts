// The server's runtime configuration: the file that `plan/` renders from a stack config, `infra/` pushes to the
// host, and `server/main.ts` reads once at start. `postern serve --dev` builds one in memory.
// Pure: a schema and a parser, no I/O.
import { z } from 'zod';

const port = z.number().int().min(0).max(65535); // 0 = listener off

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
  /** Development mode: self-signed certificate, no real DNS assumptions. */
  dev: z.boolean().default(false),
});

export type ServerConfig = z.infer<typeof serverConfigSchema>;
export type ServerConfigInput = z.input<typeof serverConfigSchema>;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/** Formats zod issues as `path: found X, expected Y` lines. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], input: unknown, prefix = ''): string[] {
  return issues.map((issue) => {
    const path = [prefix, ...issue.path.map(String)].filter(Boolean).join('.') || '(root)';
    let found: unknown = input;
    for (const k of issue.path) found = found && typeof found === 'object' ? (found as Record<PropertyKey, unknown>)[k] : undefined;
    const shown = found === undefined ? 'nothing' : JSON.stringify(found);
    return `${path}: found ${shown}; ${issue.message}`;
  });
}

export function parseServerConfig(input: unknown): ParseResult<ServerConfig> {
  const r = serverConfigSchema.safeParse(input);
  return r.success ? { ok: true, value: r.data } : { ok: false, errors: formatIssues(r.error.issues, input) };
}

// Starts Postern's SMTP module for a test: temp state folder, a self-signed certificate made by openssl, the
// queue's FileSpool, the trace, a file-backed store, and listeners on free ports of 127.0.0.1.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { DNSResolver } from 'mailauth';
import type { TlsSource } from '../../src/server/service.ts';
import { FileSpool } from '../../src/server/queue/spool.ts';
import { createQueue } from '../../src/server/queue/service.ts';
import type { QueueDeps } from '../../src/server/queue/service.ts';
import { openTrace } from '../../src/server/trace/sqlite-trace.ts';
import type { Trace } from '../../src/server/trace/api.ts';
import { createSmtpModule } from '../../src/server/smtp/service.ts';
import type { SmtpModule, SmtpModuleOptions } from '../../src/server/smtp/service.ts';
import type { DkimKey } from '../../src/server/pipeline/dkim-signer.ts';
import type { MessageCheck } from '../../src/server/pipeline/checks.ts';
import { FileTestStore } from './smtp-test-store.ts';
import type { TestAlias, TestUser } from './smtp-test-store.ts';

export const DOMAIN = 'example.com';
export const HOSTNAME = 'mail.example.com';

export interface TestCert { dir: string; certFile: string; keyFile: string; cert: Buffer; key: Buffer }

export async function makeCert(dir: string, cn = HOSTNAME): Promise<TestCert> {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile,
    '-out', certFile, '-days', '2', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=DNS:${cn},DNS:localhost,IP:127.0.0.1`], { stdio: 'ignore' });
  return { dir, certFile, keyFile, cert: await readFile(certFile), key: await readFile(keyFile) };
}

export function staticTls(cert: TestCert): TlsSource {
  const ctx = createSecureContext({ key: cert.key, cert: cert.cert });
  return { current: () => ctx, pem: () => ({ key: cert.key, cert: cert.cert }), sniCallback: (_n, cb) => cb(null, ctx) };
}

/**
 * A resolver with no records at all, as for a sender domain with nothing published: every name is NXDOMAIN, at
 * once. The error carries no stack trace: a resolver's answer comes from the event loop with a stack a frame or
 * two deep, where one thrown here would walk mailauth's whole await chain (about 5% of the main thread in
 * bench/smtp.ts, spent on nothing a real lookup costs).
 */
export const emptyResolver: DNSResolver = async (name) => {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  } finally {
    Error.stackTraceLimit = limit;
  }
};

export const quietLog = { info() {}, warn() {}, error() {} };

export interface PosternOptions {
  users?: TestUser[];
  aliases?: TestAlias[];
  dkimKeys?: DkimKey[];
  resolver?: DNSResolver;
  checks?: MessageCheck[];
  limits?: Partial<SmtpModuleOptions['config']['limits']>;
  dmarcRejectAction?: 'reject' | 'junk';
  extra?: Partial<SmtpModuleOptions>;
  /** Spool folder (default: `queue` in the temp folder), e.g. on a tiny tmpfs to make the disk fill up. */
  spoolDir?: string;
  /** Replaces the file-backed store (e.g. one whose lookups fail). */
  store?: (dir: string, users: TestUser[], aliases: TestAlias[]) => FileTestStore;
  /**
   * Runs the outbound queue too (scheduler and bouncer, on the listeners' spool): DSNs reach local senders and
   * remote recipients are delivered through `resolver` (the queue's DNS).
   */
  queue?: Pick<QueueDeps, 'resolver' | 'tuning'>;
}

export interface RunningPostern {
  dir: string;
  cert: TestCert;
  store: FileTestStore;
  spool: FileSpool;
  trace: Trace;
  module: SmtpModule;
  ports: { mx: number; submission: number; submissions: number };
  stop(): Promise<void>;
}

export const DEFAULT_USERS: TestUser[] = [
  { address: 'alice@example.com', password: 'alice-secret-1' },
  { address: 'bob@example.com', password: 'bob-secret-2' },
];
export const DEFAULT_ALIASES: TestAlias[] = [
  { from: 'postmaster@example.com', to: ['alice@example.com'] },
  { from: 'team@example.com', to: ['alice@example.com', 'bob@example.com'] },
  { from: 'sales@example.com', to: ['bob@example.com'] },
];

export async function startPostern(o: PosternOptions = {}): Promise<RunningPostern> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-smtp-'));
  const cert = await makeCert(dir);
  const users = o.users ?? DEFAULT_USERS;
  const aliases = o.aliases ?? DEFAULT_ALIASES;
  const store = o.store ? o.store(join(dir, 'mail'), users, aliases) : new FileTestStore(join(dir, 'mail'), users, aliases);
  const limits = { maxMessageBytes: 1024 * 1024, maxRecipients: 20, maxConnectionsPerIp: 20, maxLineBytes: 65536, ...o.limits };
  const trace = openTrace(dir);
  const queue = o.queue ? createQueue({
    config: { hostname: HOSTNAME, relay: undefined, limits }, stateDir: dir, store, trace, warn: () => {},
    stsPolicy: async () => ({ mode: 'none', mx: [] }), ...o.queue,
  }) : undefined;
  const spool = queue?.fileSpool ?? await FileSpool.open({ dir: o.spoolDir ?? join(dir, 'queue'), maxMessageBytes: limits.maxMessageBytes + 256 * 1024 });
  const module = createSmtpModule({
    config: {
      domain: DOMAIN, hostname: HOSTNAME, listenAddress: '127.0.0.1',
      users: users.map((u) => ({ address: u.address, name: '', passwordHash: '$argon2id$unused', quotaBytes: 0 })),
      aliases, limits, dmarc: { policy: 'reject', inboundRejectAction: o.dmarcRejectAction ?? 'reject' },
    },
    ports: { mx: 0, submission: 0, submissions: 0 },
    tls: staticTls(cert), store, spool, trace, log: quietLog,
    dkimKeys: o.dkimKeys ?? [], checks: o.checks, resolver: o.resolver ?? emptyResolver, reverseDns: false,
    ...o.extra,
  });
  await queue?.service.start();
  const listening = await module.service.start();
  const port = (scheme: string) => Number(new URL(listening.find((l) => l.scheme === scheme)!.url.replace(/^\w+:/, 'http:')).port);
  return {
    dir, cert, store, spool, trace, module,
    ports: { mx: port('smtp'), submission: port('submission'), submissions: port('smtps') },
    async stop() {
      await module.service.stop(Date.now() + 1000);
      await queue?.service.stop(Date.now() + 1000);
      await spool.close(); // its folder fd, kept open for fsyncs (a tmpfs under it could not be unmounted)
      trace.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

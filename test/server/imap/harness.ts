// Starts a real store and IMAP service on ephemeral loopback ports with a fresh self-signed certificate, for
// the IMAP tests. IMAP_TEST_LOG=debug shows the server's log.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createSelfSignedCertificate } from '../../../src/server/self-signed.ts';
import { createTlsSource } from '../../../src/server/tls.ts';
import { createStore } from '../../../src/server/store/create-store.ts';
import { hashPassword } from '../../../src/server/store/password.ts';
import type { MailStore } from '../../../src/server/store/types.ts';
import { createImapService } from '../../../src/server/imap/service.ts';
import type { ImapLimits } from '../../../src/server/imap/limits.ts';

export const USER = 'alice@example.test';
export const PASSWORD = 'correct horse battery staple';
export const USER2 = 'bob@example.test';
export const PASSWORD2 = 'another secret';

export interface ImapHarness {
  dir: string;
  host: string;
  imapPort: number;
  imapsPort: number;
  store: MailStore;
  certPem: string;
  certFile: string;
  stop(): Promise<void>;
}

/** Cheap argon2id parameters: the tests log in often. */
export function testHash(password: string): string {
  return hashPassword(password, { memory: 256, passes: 1 });
}

export async function writeCertificate(dir: string): Promise<{ certFile: string; keyFile: string; cert: string }> {
  const pair = await createSelfSignedCertificate({ names: ['localhost', '127.0.0.1'], days: 2 });
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  await writeFile(certFile, pair.cert);
  await writeFile(keyFile, pair.key, { mode: 0o600 });
  return { certFile, keyFile, cert: pair.cert };
}

export async function startImap(opts: { limits?: Partial<ImapLimits>; quotaBytes?: number } = {}): Promise<ImapHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-imap-'));
  const logger = pino({ level: process.env.IMAP_TEST_LOG ?? 'silent' });
  const { certFile, keyFile, cert } = await writeCertificate(dir);
  const tls = createTlsSource({ certFile, keyFile }, logger);
  const store = await createStore({
    stateDir: join(dir, 'state'),
    users: [
      { address: USER, name: 'Alice', passwordHash: testHash(PASSWORD), quotaBytes: opts.quotaBytes ?? 0 },
      { address: USER2, name: 'Bob', passwordHash: testHash(PASSWORD2), quotaBytes: 0 },
    ],
    aliases: [],
    limits: { maxMessageBytes: 10 * 1024 * 1024, maxRecipients: 100, maxConnectionsPerIp: 20, maxLineBytes: 65536 },
  }, logger);
  const service = createImapService({
    store, tls, logger, hostname: 'mail.example.test', host: '127.0.0.1', imapPort: 0, imapsPort: 0,
    limits: { authFailureDelayMs: 50, ...opts.limits },
  });
  const listening = await service.start();
  const port = (scheme: string): number => Number(new URL(listening.find((l) => l.scheme === scheme)!.url).port);
  return {
    dir, host: '127.0.0.1', imapPort: port('imap'), imapsPort: port('imaps'), store, certPem: cert, certFile,
    async stop() {
      await service.stop(Date.now() + 500);
      tls.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

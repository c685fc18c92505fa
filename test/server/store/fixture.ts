// A store in a fresh temp state dir with cheap argon2 hashes, and a TLS source with a self-signed certificate,
// for store, POP3 and benchmark tests.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import pino from 'pino';
import type { Logger } from 'pino';
import { createSelfSignedCertificate } from '../../../src/server/self-signed.ts';
import type { TlsSource } from '../../../src/server/service.ts';
import { createStore } from '../../../src/server/store/create-store.ts';
import { hashPassword } from '../../../src/server/store/password.ts';
import type { AliasConfig, MailStore, UserConfig } from '../../../src/server/store/types.ts';

export const PASSWORD = 'correct horse battery staple';
/** Cheap parameters so tests do not spend seconds hashing; production uses the defaults. */
export const TEST_HASH = hashPassword(PASSWORD, { memory: 1024, passes: 1 });

export function user(address: string, quotaBytes = 0): UserConfig {
  return { address, name: address.split('@')[0]!, passwordHash: TEST_HASH, quotaBytes };
}

export interface StoreFixture {
  stateDir: string;
  store: MailStore;
  logger: Logger;
  config: { stateDir: string; users: UserConfig[]; aliases: AliasConfig[]; limits: { maxMessageBytes: number; maxRecipients: number; maxConnectionsPerIp: number; maxLineBytes: number } };
  reopen(): Promise<MailStore>;
  cleanup(): Promise<void>;
}

export async function storeFixture(users: UserConfig[] = [user('alice@example.com')], aliases: AliasConfig[] = [], maxMessageBytes = 10 * 1024 * 1024): Promise<StoreFixture> {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'postern-store-'));
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const config = { stateDir, users, aliases, limits: { maxMessageBytes, maxRecipients: 100, maxConnectionsPerIp: 20, maxLineBytes: 65536 } };
  const f: StoreFixture = {
    stateDir, logger, config,
    store: await createStore(config, logger),
    async reopen() {
      await f.store.close();
      f.store = await createStore(config, logger);
      return f.store;
    },
    async cleanup() {
      await f.store.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
  return f;
}

export interface TestTls extends TlsSource {
  certPem: string;
}

export async function testTls(): Promise<TestTls> {
  const pair = await createSelfSignedCertificate({ names: ['localhost', '127.0.0.1'], days: 2 });
  const ctx = createSecureContext({ key: pair.key, cert: pair.cert });
  return {
    certPem: pair.cert,
    current: () => ctx,
    pem: () => ({ key: Buffer.from(pair.key), cert: Buffer.from(pair.cert) }),
    sniCallback: (_name, cb) => cb(null, ctx),
  };
}

export function message(subject: string, body: string, extra = ''): Buffer {
  return Buffer.from(`From: Sender <sender@example.org>\r\nTo: alice@example.com\r\nSubject: ${subject}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.org>\r\n${extra}\r\n${body}`);
}

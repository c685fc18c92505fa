// A stand-alone IMAP server process for the crash test: store in argv[2], certificate and key in argv[3..4].
// Prints one JSON line {"imaps": port} once listening, and runs until killed.
import { pino } from 'pino';
import { createTlsSource } from '../../../src/server/tls.ts';
import { createStore } from '../../../src/server/store/create-store.ts';
import { createImapService } from '../../../src/server/imap/service.ts';
import { PASSWORD, USER, testHash } from './harness.ts';

const [stateDir, certFile, keyFile] = process.argv.slice(2);
if (!stateDir || !certFile || !keyFile) throw new Error('usage: serve-imap.ts STATE_DIR CERT KEY');
const logger = pino({ level: process.env.IMAP_TEST_LOG ?? 'silent' });
const store = await createStore({
  stateDir,
  users: [{ address: USER, name: 'Alice', passwordHash: testHash(PASSWORD), quotaBytes: 0 }],
  aliases: [],
  limits: { maxMessageBytes: 10 * 1024 * 1024, maxRecipients: 100, maxConnectionsPerIp: 50, maxLineBytes: 65536 },
}, logger);
const service = createImapService({
  store, tls: createTlsSource({ certFile, keyFile }, logger), logger, hostname: 'mail.example.test', host: '127.0.0.1',
  imapPort: null, imapsPort: 0,
});
const [l] = await service.start();
process.stdout.write(`${JSON.stringify({ imaps: Number(new URL(l!.url).port), missing: store.reconcileReport.missing.length })}\n`);

// The Postern side of bench/imap.ts in its own process (so its resident memory can be read alone): opens the
// store in argv[2] (importing any Maildir files found there), serves IMAPS on an ephemeral loopback port and
// prints `{"port":…,"importMs":…}` once ready. Stops on SIGTERM.
import path from 'node:path';
import pino from 'pino';
import { createImapService } from '../../src/server/imap/service.ts';
import { createStore } from '../../src/server/store/create-store.ts';
import { createTlsSource } from '../../src/server/tls.ts';

const [stateDir, certFile, keyFile, user, passwordHash] = process.argv.slice(2) as [string, string, string, string, string];
const logger = pino({ level: process.env.BENCH_LOG ?? 'silent' }, pino.destination(2)); // stdout carries the ready line
const started = performance.now();
const store = await createStore({
  stateDir, users: [{ address: user, name: 'bench', passwordHash, quotaBytes: 0 }], aliases: [],
  limits: { maxMessageBytes: 50 * 1024 * 1024, maxRecipients: 100, maxConnectionsPerIp: 100, maxLineBytes: 65536 },
}, logger);
const importMs = performance.now() - started;
const tls = createTlsSource({ certFile, keyFile }, logger);
const service = createImapService({ store, tls, logger, hostname: 'bench.example.com', host: '127.0.0.1', imapPort: null, imapsPort: 0, limits: { maxConnectionsPerIp: 100 } });
const [listening] = await service.start();
process.stdout.write(JSON.stringify({ port: Number(new URL(listening!.url).port), importMs, stateDir: path.resolve(stateDir) }) + '\n');
process.on('SIGTERM', () => {
  void service.stop(Date.now()).then(() => store.close()).then(() => { tls.close(); process.exit(0); });
});

// The host checks: listeners probed over TCP, queue size and age read from a real spool folder (FileSpool),
// disk and memory, and the certificate file (valid, expiring, wrong name).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createServer, type Server } from 'node:net';
import { ensureDebianPackages } from '../../support/debian.ts';
import { makeTestCa } from './test-pki.ts';
import { FileSpool } from '../../../src/server/queue/spool.ts';
import { QUEUE_DIR_NAME } from '../../../src/server/queue/service.ts';
import { checkHost, checkCertificateFile } from '../../../src/server/diagnostics/host.ts';
import { spoolQueueStats } from '../../../src/server/diagnostics/queue-stats.ts';

ensureDebianPackages(['openssl']);

const DAY = 86_400_000;
let dir: string;
let listener: Server;
let openPort: number;
let closedPort: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-host-'));
  listener = createServer((s) => s.end());
  openPort = await new Promise((r) => listener.listen(0, '127.0.0.1', () => r((listener.address() as { port: number }).port)));
  const probe = createServer();
  closedPort = await new Promise((r) => probe.listen(0, '127.0.0.1', () => r((probe.address() as { port: number }).port)));
  await new Promise<void>((r) => probe.close(() => r()));
});
after(async () => {
  await new Promise<void>((r) => listener.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

test('listeners, queue age, disk, memory and certificate are each reported', async () => {
  const stateDir = join(dir, 'state');
  const spool = await FileSpool.open({ dir: join(stateDir, QUEUE_DIR_NAME), maxMessageBytes: 1 << 20 });
  const client = { remoteAddress: '127.0.0.1', helo: 'x', tls: true, listener: 'submission' as const };
  const entry = await spool.accept({ from: 'alice@example.test', to: ['bob@remote.example'], client }, Readable.from([Buffer.from('Subject: x\r\n\r\nhi\r\n')]));
  await spool.enqueueRemote(entry.id, ['bob@remote.example']);
  const ca = await makeTestCa(join(dir, 'ca'));
  const cert = await ca.issue('mail', ['mail.example.test'], new Date(Date.now() - DAY), new Date(Date.now() + 60 * DAY));

  const stats = await spoolQueueStats(stateDir)();
  assert.equal(stats.size, 1);
  assert.equal(stats.oldestReceivedAt, entry.receivedAt);

  // Seen three days later: the queued message has waited 72 hours.
  const later = new Date(entry.receivedAt + 3 * DAY);
  const results = await checkHost({
    listening: [{ port: 25, label: 'SMTP MX' }, { port: 993, label: 'IMAPS' }], listenHost: '127.0.0.1',
    portFor: (p) => (p === 25 ? openPort : closedPort), queueStats: spoolQueueStats(stateDir), stateDir, certFile: cert.certFile,
    hostname: 'mail.example.test', now: later,
    memInfo: async () => ({ totalBytes: 1024 * 2 ** 20, availableBytes: 30 * 2 ** 20 }),
  });
  const r = Object.fromEntries(results.map((x) => [x.id, x]));
  assert.equal(r['server.listen.25']?.status, 'ok');
  assert.equal(r['server.listen.993']?.status, 'fail');
  assert.match(r['server.listen.993']!.fix, /systemctl restart postern/);
  assert.equal(r['server.queue']?.status, 'fail');
  assert.match(r['server.queue']!.message, /1 message\(s\) queued, the oldest for 72\.0 hours/);
  assert.ok(r['server.disk'], 'disk reported');
  assert.match(r['server.disk']!.message, /GiB \(\d+%\) free on the disk holding/);
  assert.equal(r['server.memory']?.status, 'fail');
  assert.match(r['server.memory']!.message, /30 MiB of 1024 MiB memory available/);
  assert.equal(r['server.certificate']?.status, 'ok');
  assert.match(r['server.certificate']!.message, /has 5[67] days left/);
});

test('the certificate file check fails when it is nearly expired or for another name', async () => {
  const ca = await makeTestCa(join(dir, 'ca2'));
  const now = new Date();
  const soon = await ca.issue('soon', ['mail.example.test'], new Date(now.getTime() - 80 * DAY), new Date(now.getTime() + 5 * DAY));
  const other = await ca.issue('other', ['www.example.test'], new Date(now.getTime() - DAY), new Date(now.getTime() + 60 * DAY));
  const a = await checkCertificateFile(soon.certFile, 'mail.example.test', now);
  assert.equal(a.status, 'fail');
  assert.match(a.message, /expires in [45] days: renewal \(due at 30 days\) is not working/);
  const b = await checkCertificateFile(other.certFile, 'mail.example.test', now);
  assert.equal(b.status, 'fail');
  assert.match(b.message, /is not valid for mail\.example\.test \(DNS:www\.example\.test\)/);
  const c = await checkCertificateFile(join(dir, 'missing.pem'), 'mail.example.test', now);
  assert.match(c.message, /cannot read certificate/);
});

// Outbound delivery throughput: N queued 10 KB messages (one recipient each) delivered to one remote MX,
// Postern's queue against Postfix's, both draining to the same Postfix `smtp-sink` on a loopback address.
// Each side first queues every message without delivering (Postern: spooled before the scheduler starts;
// Postfix: `defer_transports = smtp`, injected with `smtp-source`), then the clock runs from "go" (scheduler
// start / `postqueue -f`) until the sink has counted all N. Rounds are interleaved; medians are reported.
// Ratio = Postern rate / Postfix rate (>1: Postern faster). BENCH_QUEUE_MESSAGES, BENCH_QUEUE_ROUNDS to change.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureDebianPackages } from '../test/support/debian.ts';
import { makePki, randomLoopbackBase, startPostfix } from '../test/server/queue/support/peers.ts';
import { createQueue } from '../src/server/queue/service.ts';
import type { QueueResolver } from '../src/server/queue/mx.ts';
import type { DeliveryStore } from '../src/server/store/api.ts';
import type { Trace } from '../src/server/trace/api.ts';
import { treeRssKiB } from './support/dovecot.ts';
import { median } from './support/median.ts';

ensureDebianPackages(['postfix']);

const N = Number(process.env.BENCH_QUEUE_MESSAGES ?? 1000);
const ROUNDS = Number(process.env.BENCH_QUEUE_ROUNDS ?? 3);
const SIZE = 10 * 1024;
const root = await mkdtemp(join(tmpdir(), 'postern-bench-queue-'));
chmodSync(root, 0o755);
const base = randomLoopbackBase();
const SINK = `${base}.1`;
const PF = `${base}.2`;

// The sink: counts messages (`-c` prints `mesg=N` after each one); runs as postfix since we are root.
const sink = spawn('smtp-sink', ['-u', 'postfix', '-c', `${SINK}:25`, '1024'], { stdio: ['ignore', 'pipe', 'inherit'] });
let sunk = 0;
sink.stdout.on('data', (d: Buffer) => {
  const all = [...d.toString().matchAll(/mesg=(\d+)/g)];
  if (all.length) sunk = Number(all.at(-1)![1]);
});
async function untilSunk(target: number, what: string): Promise<void> {
  const until = Date.now() + 600_000;
  while (sunk < target) {
    if (Date.now() > until) throw new Error(`${what}: sink saw ${sunk} of ${target}`);
    await sleep(5);
  }
}

const pki = makePki(join(root, 'pki'));
const cert = pki.issue('pf', ['bench-mx.test']);
const postfix = await startPostfix(join(root, 'postfix'), {
  address: PF, hostname: 'bench-mx.test', domain: 'bench.test', certFile: cert.certFile, keyFile: cert.keyFile,
  extraMain: [
    'mynetworks = 127.0.0.0/8',
    `relayhost = [${SINK}]:25`,
    'defer_transports = smtp',
    'smtp_tls_security_level = may',
  ],
});

const noStore: DeliveryStore = {
  resolveRecipient: () => ({ kind: 'unknown' }),
  verifyPassword: async () => null,
  sendableAddresses: () => [],
  deliver: async () => { throw new Error('not used'); },
};
const noTrace: Trace = { record: () => {}, find: () => [], get: () => null, close: () => {} };
const resolver = {
  resolveMx: async () => [{ exchange: 'sink.test', priority: 10 }],
  resolve4: async () => [SINK],
  resolve6: async () => { throw Object.assign(new Error('no AAAA'), { code: 'ENODATA' }); },
  resolveTxt: async () => [],
  resolve: async () => { throw Object.assign(new Error('no record'), { code: 'ENODATA' }); },
} as unknown as QueueResolver;

const body = Buffer.from(`From: <bench@home.test>\r\nTo: <rcpt@sink.test>\r\nSubject: bench\r\n\r\n${'0123456789abcdef'.repeat(SIZE / 16 - 4)}\r\n`);

async function posternRound(round: number, concurrency: number): Promise<{ seconds: number; rssKiB: number }> {
  const stateDir = join(root, `postern-${round}-${concurrency}`);
  const q = createQueue({
    config: { hostname: 'mail.home.test', relay: undefined, limits: { maxMessageBytes: 1 << 20, maxRecipients: 100, maxConnectionsPerIp: 20, maxLineBytes: 65536 } },
    stateDir, store: noStore, trace: noTrace, warn: (m) => console.error(m), resolver,
    stsPolicy: async () => ({ mode: 'none', mx: [] }),
    tuning: { perDestinationConcurrency: concurrency, totalConcurrency: concurrency },
  });
  for (let i = 0; i < N; i++) {
    const e = await q.spool.accept({ from: 'bench@home.test', to: ['rcpt@sink.test'], client: { remoteAddress: '127.0.0.1', helo: 'b', tls: false, listener: 'submission' } }, Readable.from([body]));
    await q.spool.enqueueRemote(e.id, ['rcpt@sink.test']);
  }
  const target = sunk + N;
  let rss = 0;
  const sampler = setInterval(() => { rss = Math.max(rss, process.memoryUsage().rss); }, 50);
  const t0 = performance.now();
  await q.service.start();
  await untilSunk(target, 'postern');
  while ((await q.fileSpool.list()).length) await sleep(5); // every result recorded
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  await q.service.stop(Date.now() + 5000);
  return { seconds, rssKiB: Math.round(rss / 1024) };
}

async function postfixRound(): Promise<{ seconds: number; rssKiB: number }> {
  execFileSync('smtp-source', ['-s', '10', '-m', String(N), '-l', String(SIZE), '-f', 'bench@home.test', '-t', 'rcpt@sink.test', `${PF}:25`], { stdio: 'ignore' });
  while (postfix.queued() < N) await sleep(20);
  await sleep(500); // let qmgr move everything to deferred (defer_transports)
  const target = sunk + N;
  let rss = 0;
  const master = postfix.masterPid();
  const sampler = setInterval(() => { rss = Math.max(rss, treeRssKiB(master)); }, 50);
  const t0 = performance.now();
  execFileSync('postqueue', ['-c', postfix.configDir, '-f']);
  await untilSunk(target, 'postfix');
  while (postfix.queued() > 0) await sleep(5);
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  return { seconds, rssKiB: rss };
}

const results: Record<string, { seconds: number[]; rss: number[] }> = { postfix: { seconds: [], rss: [] }, 'postern c=5': { seconds: [], rss: [] }, 'postern c=20': { seconds: [], rss: [] } };
try {
  for (let r = 0; r < ROUNDS; r++) {
    const pf = await postfixRound();
    results.postfix!.seconds.push(pf.seconds); results.postfix!.rss.push(pf.rssKiB);
    for (const c of [5, 20]) {
      const pt = await posternRound(r, c);
      results[`postern c=${c}`]!.seconds.push(pt.seconds); results[`postern c=${c}`]!.rss.push(pt.rssKiB);
    }
  }
  const pfRate = N / median(results.postfix!.seconds);
  console.log(`outbound delivery of ${N} queued ${SIZE / 1024} KB messages to one MX (smtp-sink), median of ${ROUNDS} interleaved rounds`);
  console.log('side            msgs/s   seconds   peak RSS MiB   rate vs Postfix');
  for (const [name, r] of Object.entries(results)) {
    const rate = N / median(r.seconds);
    console.log(`${name.padEnd(14)} ${rate.toFixed(0).padStart(7)} ${median(r.seconds).toFixed(2).padStart(9)} ${(median(r.rss) / 1024).toFixed(0).padStart(14)} ${(rate / pfRate).toFixed(2).padStart(17)}`);
  }
  console.log('Postfix: default_destination_concurrency_limit 20 (starts at 5); Postern c = per-destination sessions. Postern RSS is this whole bench process.');
} finally {
  sink.kill('SIGTERM');
  await postfix.stop();
  await rm(root, { recursive: true, force: true });
}

// SMTP intake benchmark: Postern's MX against Debian's Postfix as an MX, on this machine, in one run, both fed
// by Postfix's smtp-source (10 KB messages, 1/10/50 parallel sessions, one message per connection and then
// all messages over one connection per session).
//
// What each side does with a message (kept comparable on purpose):
//   Postern — smtp-server session, SMTP-smuggling guard; then at once SPF/DKIM/DMARC/ARC via mailauth (resolver
//             answers NXDOMAIN at once) and one spool entry file (envelope preamble + Received + message) fsynced
//             and renamed (folder fsynced), 250 when both are done; then, asynchronously, delivery with the
//             Authentication-Results header into the real mailbox store (on its delivery thread: Maildir file
//             fsynced + SQLite WAL index + FTS) and spool removal.
//   Postfix — smtpd → cleanup writes the queue file, fsynced before 250 (Postfix default); then, asynchronously,
//             qmgr → virtual(8) delivery into a Maildir (fsynced). No content filters, no SPF/DKIM (Postfix has
//             none built in). Default flow control (in_flow_delay) left on.
// Figures: accepted messages/s = messages / wall time of smtp-source; mean latency per message = sessions /
// throughput (Little's law; smtp-source reports no per-message times); CPU ms/msg = busy CPU time of the whole
// machine (/proc/stat: the server, its clients and the kernel) from the first connection until the side's
// delivery backlog is drained (polled every 10 ms) and the side is idle (its processes under 5 ms of CPU in
// 250 ms: Postern indexes a burst's text for search half a second after it, see store FTS_QUIET_MS), per
// message; peak resident memory = Postern's one process, Postfix's master plus all its children, sampled every
// 100 ms during the run. Each side is drained and idle before the next run (before that wait, Postern's
// indexing ran during Postfix's next run and was charged to it), and the order alternates per run. Each side
// first gets an uncounted warm-up of one session. Peak memory is the first round's. On this benchmark machine
// (ext4 without a journal) creating a file costs from 0.02 to over 1 ms of kernel time depending on the file
// system's recent history, which moves both servers' figures from run to run; a run of either side also slows
// the other side's next one, idle machine or not (10 sessions: by 13 to 20 %, measured both ways), which the
// alternating order shares out. Hence several rounds, medians, and the range of the paired ratios.
// With --steps, each side also gets two more 1-session runs (one message per connection, then reused), captured
// with tcpdump on the loopback interface and not counted above; a second table gives each side's server time per
// SMTP step (bench/support/smtp-steps.ts): where the time of a message goes, which the throughput does not say.
// Usage: node bench/smtp.ts [--quick] [--steps]   (BENCH_SMTP_REPEAT=N rounds, default 3; 1 with --quick)
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebianPackages } from '../test/support/debian.ts';
import { freePort } from '../test/support/ports.ts';
import { makeCert } from '../test/support/smtp-harness.ts';
import { randomLoopbackBase, startPostfix } from '../test/server/queue/support/peers.ts';
import { bundleServer } from './support/bundle.ts';
import { SMTP_STEPS, captureLoopback, smtpStepLatencies } from './support/smtp-steps.ts';
import type { SmtpStep } from './support/smtp-steps.ts';
import { posternEnvironment, posternNodeFlags } from './support/unit-settings.ts';
import { median } from './support/median.ts';

const quick = process.argv.includes('--quick');
const steps = process.argv.includes('--steps');
ensureDebianPackages(['postfix', 'openssl', ...(steps ? ['tcpdump'] : [])]);
// `reuse`: all of a session's messages over one connection (smtp-source -d), which takes the per-connection cost
// out (Postern greets at once: smtp-server's fixed 100 ms pause is replaced, see smtp/session-guard.ts).
const PLAN = (quick ? [[1, 50], [10, 100], [50, 200]] : [[1, 200], [10, 600], [50, 1000]])
  .flatMap(([sessions, messages]) => [false, true].map((reuse) => ({ sessions: sessions!, messages: messages!, reuse })));
const LENGTH = 10 * 1024;
const REPEAT = Number(process.env.BENCH_SMTP_REPEAT ?? (quick ? 1 : 3));
/** Messages each side gets before the measured rounds. */
const WARM_UP_MESSAGES = 200;
/** Messages of each captured run for the step table. */
const STEP_MESSAGES = quick ? 100 : 500;

function rssKb(pid: number): number {
  try { return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0); } catch { return 0; }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch { return []; }
}

function treeRssKb(pid: number): number {
  return rssKb(pid) + childrenOf(pid).reduce((n, c) => n + treeRssKb(c), 0);
}

/** CPU time (ms) of a process and its descendants, those that exited included (their time is in cutime/cstime). */
function treeCpuMs(pid: number): number {
  let f: number[];
  try { f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ').map(Number); } catch { return 0; }
  // Fields 14–17 of stat(5), counted here from field 3: utime, stime, cutime, cstime, in clock ticks.
  return (f[11]! + f[12]! + f[13]! + f[14]!) * 10 + childrenOf(pid).reduce((n, c) => n + treeCpuMs(c), 0);
}

/**
 * Waits until a server has finished the work a run left behind: Postern indexes a burst's text for search after
 * it (store FTS_QUIET_MS), which would otherwise run during the other side's next run and be charged to it.
 * Quiet: under 5 ms of CPU in a 250 ms window.
 */
async function waitQuiet(what: string, cpuMs: () => number): Promise<void> {
  const end = Date.now() + 60_000;
  let before = cpuMs();
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    const now = cpuMs();
    if (now - before < 5) return;
    if (Date.now() > end) throw new Error(`${what} still busy after 60 s`);
    before = now;
  }
}

/** Busy CPU time of the whole machine so far, in ms (user + nice + system + irq + softirq from /proc/stat). */
function machineBusyMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) * 10;
}

/** Server time per SMTP step of one side's run, when it was captured. */
type StepTimes = Map<SmtpStep, number[]>;

/** smtpSource, its traffic captured to `pcap` and read as step times when `pcap` is given. */
async function smtpSourceSteps(host: string, port: number, pcap: string | null, sessions: number, messages: number, reuse: boolean, sampler: () => number): Promise<{ seconds: number; peakRssKb: number; steps?: StepTimes }> {
  const target = `${host}:${port}`;
  if (!pcap) return smtpSource(target, sessions, messages, reuse, sampler);
  const capture = await captureLoopback(pcap, host, port);
  let r;
  try {
    r = await smtpSource(target, sessions, messages, reuse, sampler);
  } catch (err) {
    await capture.stop().catch(() => undefined);
    throw err;
  }
  return { ...r, steps: smtpStepLatencies(await capture.stop(), port) };
}

async function smtpSource(target: string, sessions: number, messages: number, reuse: boolean, sampler: () => number): Promise<{ seconds: number; peakRssKb: number }> {
  let peak = sampler();
  const timer = setInterval(() => { peak = Math.max(peak, sampler()); }, 100);
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const c = spawn('smtp-source', [...(reuse ? ['-d'] : []), '-s', String(sessions), '-m', String(messages), '-l', String(LENGTH), '-M', 'loadgen.bench.test',
      '-f', 'load@loadgen.bench.test', '-t', 'bob@example.com', '-C', '5', target], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    c.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`smtp-source ${target} exited ${code}: ${err}`))));
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(timer);
  return { seconds, peakRssKb: Math.max(peak, sampler()) };
}

async function waitUntil(what: string, fn: () => boolean, ms = 300_000, pollMs = 100): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

function countFiles(d: string): number {
  if (!existsSync(d)) return 0;
  let n = 0;
  for (const e of readdirSync(d, { withFileTypes: true })) n += e.isDirectory() ? countFiles(join(d, e.name)) : 1;
  return n;
}

/** The step table: per step and run, each side's median and mean server time. */
function printSteps(runs: Array<{ reuse: boolean; pair: { postern: { seconds: number; steps?: StepTimes }; postfix: { seconds: number; steps?: StepTimes } } }>): void {
  const head = ['step'];
  for (const r of runs) for (const side of ['postern', 'postfix']) head.push(`${r.reuse ? 'reused' : 'one/msg'} ${side}`);
  const rows = SMTP_STEPS.map((step) => [step, ...runs.flatMap(({ pair }) => [pair.postern, pair.postfix].map((side) => {
    const v = side.steps?.get(step) ?? [];
    return v.length ? `${median(v).toFixed(2)} / ${(v.reduce((a, b) => a + b, 0) / v.length).toFixed(2)}` : '-';
  }))]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\nServer time per SMTP step at 1 session, ms, median / mean (${STEP_MESSAGES} messages per run, captured: from the client's last segment of the step to the reply; greeting: from the SYN; message: the bytes after 354; client: from a reply to the client's next segment)`);
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log(line(['msg/s', ...runs.flatMap(({ pair }) => [pair.postern, pair.postfix].map((side) => (STEP_MESSAGES / side.seconds).toFixed(0)))]));
}

const dir = await mkdtemp(join(tmpdir(), 'postern-bench-'));
let postern: ChildProcess | null = null;
let stopPostfix: (() => Promise<void>) | null = null;
try {
  const port = await freePort();
  const posternDir = join(dir, 'postern');
  // UV_THREADPOOL_SIZE: fsyncs run on libuv's pool (4 threads by default), so concurrent sessions queue behind
  // each other's fsyncs; the value can be set with --threadpool N to measure its effect.
  const pool = process.argv.includes('--threadpool') ? process.argv[process.argv.indexOf('--threadpool') + 1] : undefined;
  // Started as the systemd unit starts the server: bundled, with its node flags and Environment= settings.
  const server = await bundleServer(join(import.meta.dirname, 'support', 'postern-mx.ts'), await mkdtemp(join(dir, 'bundle-')));
  postern = spawn(process.execPath, [...posternNodeFlags(), server, posternDir, String(port)],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...posternEnvironment(), ...(pool ? { UV_THREADPOOL_SIZE: pool } : {}) } });
  await new Promise<void>((resolve, reject) => {
    postern!.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
    postern!.once('exit', (code) => reject(new Error(`postern exited ${code}`)));
  });
  const cert = await makeCert(await mkdtemp(join(dir, 'cert-')), 'mail.example.com');
  const pfDir = join(dir, 'postfix');
  const postfix = await startPostfix(pfDir, {
    address: `${randomLoopbackBase()}.1`, hostname: 'mail.example.com', domain: 'example.com', certFile: cert.certFile, keyFile: cert.keyFile,
    extraMain: ['smtpd_client_connection_count_limit = 100', 'default_process_limit = 120'],
  });
  stopPostfix = () => postfix.stop();
  const posternPid = postern.pid!;
  // Entry files only: the spool keeps the files of delivered entries as spare temp files for reuse.
  const spoolLeft = () => readdirSync(join(posternDir, 'queue')).filter((n) => n.endsWith('.msg')).length;
  const posternStored = () => countFiles(join(posternDir, 'mail'));
  // A count of Maildir new/, not the messages read at every poll: reading them was charged to Postfix (at 1 session
  // 8.9 ms/msg, where counting gives 6.2).
  const pfDelivered = () => postfix.deliveredCount();

  type Result = { seconds: number; peakRssKb: number; cpuMs: number; steps?: StepTimes };
  const results: Array<Array<{ postern: Result; postfix: Result }>> = PLAN.map(() => []);
  let expectPostern = 0;
  let expectPostfix = 0;
  /** One smtp-source run against one side, its delivery backlog drained before it returns. */
  const runSide = async (side: 'postern' | 'postfix', sessions: number, messages: number, reuse: boolean, pcap: string | null): Promise<Result> => {
    const cpu0 = machineBusyMs();
    if (side === 'postern') {
      const r = await smtpSourceSteps('127.0.0.1', port, pcap, sessions, messages, reuse, () => rssKb(posternPid));
      expectPostern += messages;
      await waitUntil('postern delivery', () => spoolLeft() === 0, 300_000, 10);
      await waitQuiet('postern', () => treeCpuMs(posternPid));
      return { ...r, cpuMs: machineBusyMs() - cpu0 };
    }
    const r = await smtpSourceSteps(postfix.address, 25, pcap, sessions, messages, reuse, () => treeRssKb(postfix.masterPid()));
    expectPostfix += messages;
    await waitUntil('postfix delivery', () => pfDelivered() >= expectPostfix && postfix.queued() === 0, 300_000, 10);
    await waitQuiet('postfix', () => treeCpuMs(postfix.masterPid()));
    return { ...r, cpuMs: machineBusyMs() - cpu0 };
  };
  // Warm-up, not counted: a server runs for weeks, so what is measured is its steady state, not Postern's first
  // messages through code V8 has not compiled yet, nor Postfix's first smtpd and cleanup starting. One session,
  // so that the first round's peak memory stays that of its own load.
  for (const side of ['postern', 'postfix'] as const) await runSide(side, 1, WARM_UP_MESSAGES, false, null);
  // Rounds of the whole plan, so that a slow stretch of the machine hits every row a little rather than one row
  // a lot; within a row the side that goes first alternates.
  for (let round = 0; round < REPEAT; round++) {
    for (const [i, run] of PLAN.entries()) {
      const pair: Partial<{ postern: Result; postfix: Result }> = {};
      const order = (i + round) % 2 === 0 ? (['postern', 'postfix'] as const) : (['postfix', 'postern'] as const);
      for (const side of order) pair[side] = await runSide(side, run.sessions, run.messages, run.reuse, null);
      results[i]!.push(pair as { postern: Result; postfix: Result });
    }
  }
  // Extra runs for the step table, after the measured rounds: capturing costs CPU the throughput runs must not lose.
  const stepRuns: Array<{ reuse: boolean; pair: { postern: Result; postfix: Result } }> = [];
  for (const reuse of steps ? [false, true] : []) {
    const pair: Partial<{ postern: Result; postfix: Result }> = {};
    for (const side of ['postern', 'postfix'] as const) pair[side] = await runSide(side, 1, STEP_MESSAGES, reuse, join(dir, `${side}-${reuse ? 'reused' : 'one'}.pcap`));
    stepRuns.push({ reuse, pair: pair as { postern: Result; postfix: Result } });
  }
  const rows = PLAN.map((run, i) => {
    const pairs = results[i]!;
    const ra = median(pairs.map((p) => run.messages / p.postern.seconds));
    const rb = median(pairs.map((p) => run.messages / p.postfix.seconds));
    const ratios = pairs.map((p) => p.postfix.seconds / p.postern.seconds);
    // The first round's: later rounds start with the processes the earlier rows left (Postfix keeps idle smtpd
    // processes for 100 s), which is not what this row's load needs.
    const peakA = pairs[0]!.postern.peakRssKb;
    const peakB = pairs[0]!.postfix.peakRssKb;
    return [String(run.sessions), run.reuse ? 'reused' : 'one/msg', String(run.messages), ra.toFixed(1), rb.toFixed(1), median(ratios).toFixed(2),
      `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`,
      (1000 * run.sessions / ra).toFixed(1), (1000 * run.sessions / rb).toFixed(1),
      (median(pairs.map((p) => p.postern.cpuMs)) / run.messages).toFixed(1), (median(pairs.map((p) => p.postfix.cpuMs)) / run.messages).toFixed(1),
      (peakA / 1024).toFixed(0), (peakB / 1024).toFixed(0), (peakA / peakB).toFixed(2)];
  });
  if (posternStored() < expectPostern) throw new Error(`postern stored ${posternStored()} of ${expectPostern} messages`);
  const head = ['sessions', 'connection', 'msgs', 'postern msg/s', 'postfix msg/s', 'ratio', 'ratio range', 'postern ms/msg', 'postfix ms/msg', 'postern cpu ms/msg', 'postfix cpu ms/msg', 'postern RSS MB', 'postfix RSS MB', 'RSS ratio'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padStart(widths[i]!)).join('  ');
  const unit = [...Object.entries(posternEnvironment()).map(([k, v]) => `${k}=${v}`), 'node', ...posternNodeFlags()].join(' ');
  console.log(`SMTP intake, ${LENGTH / 1024} KB messages, fsync on both sides; medians of ${REPEAT} rounds; ratio = Postern / Postfix, paired per round (Postern run as ${unit})`);
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  if (steps) printSteps(stepRuns);
  console.log(`load average during the run: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} on ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores`);
} finally {
  postern?.kill('SIGTERM');
  await stopPostfix?.();
  await rm(dir, { recursive: true, force: true });
}

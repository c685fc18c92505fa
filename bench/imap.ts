// IMAP against Dovecot on the same generated mailboxes (10,000 and 50,000 messages; BENCH_IMAP_SIZES=2000,… to
// change): SELECT, UID FETCH 1:* (FLAGS ENVELOPE), UID SEARCH TEXT <rare word>, APPEND throughput with several
// clients, and resident memory. Both servers get the same Maildir files; each is warmed up (Dovecot builds its
// index and cache on first access, Postern at import) and then measured interleaved; medians are reported.
// Ratios are Dovecot time / Postern time (>1: Postern faster) and Postern rate / Dovecot rate.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ensureDebianPackages } from '../test/support/debian.ts';
import { createSelfSignedCertificate } from '../src/server/self-signed.ts';
import { hashPassword } from '../src/server/store/password.ts';
import { bundleServer } from './support/bundle.ts';
import { RawImap } from './support/imap-client.ts';
import { startDovecot, prepareDovecot, treeRssKiB } from './support/dovecot.ts';
import { posternEnvironment, posternNodeFlags } from './support/unit-settings.ts';
import { median } from './support/median.ts';

ensureDebianPackages(['dovecot-imapd']);

const USER = 'bench@example.com';
const PASSWORD = 'bench-password-1';
const SIZES = (process.env.BENCH_IMAP_SIZES ?? '10000,50000').split(',').map(Number).filter((n) => n > 0);
const REPEAT = Number(process.env.BENCH_IMAP_REPEAT ?? 5);
// SELECT takes under a millisecond, within reach of scheduling noise on a busy machine: more samples for its median.
const SELECT_REPEAT = Number(process.env.BENCH_IMAP_SELECT_REPEAT ?? Math.max(REPEAT, 21));
const APPEND_CLIENTS = 4;
const APPENDS_PER_CLIENT = Number(process.env.BENCH_IMAP_APPENDS ?? 50);
const RARE = 'quillwort';

// Deterministic generator: the same mailbox on every run and for both servers.
let seed = 42;
function rand(): number {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
}
const WORDS = 'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part'.split(' ');
const NAMES = ['Alice Martin', 'Bob Dupont', 'Chloé Lefèvre', 'Dmitri Ivanov', 'Eve Smith', 'Fatima Zahra', 'Günter Groß', 'Hiro Tanaka'];

function sentence(n: number): string {
  return Array.from({ length: n }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' ');
}

function generate(i: number, rare: boolean): Buffer {
  const from = NAMES[i % NAMES.length]!;
  const date = new Date(Date.UTC(2026, 0, 1) + i * 600_000).toUTCString().replace('GMT', '+0000');
  const lines: string[] = [];
  const paragraphs = 2 + Math.floor(rand() * 6);
  for (let p = 0; p < paragraphs; p++) {
    for (let l = 0; l < 3 + Math.floor(rand() * 5); l++) lines.push(sentence(10 + Math.floor(rand() * 6)));
    lines.push('');
  }
  if (rare) lines.splice(Math.floor(lines.length / 2), 0, `a note about the ${RARE} in the pond`);
  const subject = `${sentence(3 + Math.floor(rand() * 4))} #${i}`;
  const headers = [
    `Return-Path: <list${i % 17}@lists.example.org>`,
    `Received: from mx.example.org (mx.example.org [192.0.2.${i % 250}]) by mail.example.com with ESMTPS id ${i.toString(36)}; ${date}`,
    `From: ${/[^\x20-\x7e]/.test(from) ? `=?UTF-8?B?${Buffer.from(from).toString('base64')}?=` : `"${from}"`} <${from.split(' ')[0]!.toLowerCase()}@example.org>`,
    `To: Bench User <${USER}>`,
    ...(i % 3 === 0 ? [`Cc: team${i % 5}@example.org, "Someone Else" <else${i % 7}@example.net>`] : []),
    `Subject: ${subject}`,
    `Date: ${date}`,
    `Message-ID: <${i}.${seed.toString(36)}@example.org>`,
    'MIME-Version: 1.0',
  ];
  if (i % 4 === 0) {
    const b = `b${i}`;
    return Buffer.from([...headers, `Content-Type: multipart/alternative; boundary="${b}"`, '', `--${b}`, 'Content-Type: text/plain; charset=utf-8', '',
      ...lines, `--${b}`, 'Content-Type: text/html; charset=utf-8', '', `<html><body>${lines.map((l) => `<p>${l}</p>`).join('')}</body></html>`, `--${b}--`, ''].join('\r\n'));
  }
  return Buffer.from([...headers, 'Content-Type: text/plain; charset=utf-8', '', ...lines].join('\r\n'));
}

interface Server {
  name: 'postern' | 'dovecot';
  port: number;
  rssKiB(): number;
  stop(): Promise<void>;
}


let serverBundle = '';

async function startPostern(dir: string, certFile: string, keyFile: string): Promise<Server & { importMs: number }> {
  const hash = hashPassword(PASSWORD, { memory: 1024, passes: 1 });
  const flags = posternNodeFlags();
  const child = spawn(process.execPath, [...flags, serverBundle, path.join(dir, 'postern'), certFile, keyFile, USER, hash],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...posternEnvironment() } });
  const rl = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`postern server exited with ${code}`)));
  });
  const info = JSON.parse(first) as { port: number; importMs: number };
  return {
    name: 'postern', port: info.port, importMs: info.importMs,
    rssKiB: () => treeRssKiB(child.pid!),
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function connect(server: Server): Promise<RawImap> {
  const c = await RawImap.connect(server.port);
  await c.login(USER, PASSWORD);
  return c;
}

interface Row { op: string; size: number; postern: number; dovecot: number; unit: 'ms' | 'msg/s' | 'MiB'; note?: string }

async function measure(server: Server, op: (c: RawImap) => Promise<number>): Promise<number> {
  const c = await connect(server);
  try {
    return await op(c);
  } finally {
    await c.close();
  }
}

async function appendRate(server: Server, size: number): Promise<number> {
  const clients = await Promise.all(Array.from({ length: APPEND_CLIENTS }, () => connect(server)));
  const start = performance.now();
  await Promise.all(clients.map(async (c, k) => {
    for (let j = 0; j < APPENDS_PER_CLIENT; j++) await c.append('INBOX', generate(size + k * APPENDS_PER_CLIENT + j, false), '\\Seen');
  }));
  const secs = (performance.now() - start) / 1000;
  await Promise.all(clients.map((c) => c.close()));
  return (APPEND_CLIENTS * APPENDS_PER_CLIENT) / secs;
}

async function benchSize(size: number, rows: Row[]): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), `postern-bench-imap-${size}-`));
  const cert = await createSelfSignedCertificate({ names: ['localhost', '127.0.0.1'], days: 2 });
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  await writeFile(certFile, cert.cert);
  await writeFile(keyFile, cert.key, { mode: 0o600 });
  let postern: (Server & { importMs: number }) | undefined;
  let dovecot: Server | undefined;
  try {
    // The same files for both: Postern's account folder and Dovecot's ~/Maildir.
    const { maildir } = await prepareDovecot(dir, USER);
    const posternCur = path.join(dir, 'postern', 'mail', 'example.com', 'bench', 'cur');
    await mkdir(posternCur, { recursive: true });
    seed = 42;
    let rareCount = 0;
    const genStart = performance.now();
    for (let i = 0; i < size; i++) {
      const rare = i % 997 === 500;
      if (rare) rareCount++;
      const bytes = generate(i, rare);
      const name = `${1_780_000_000 + i}.M${i}P1.bench,S=${bytes.length}:2,${i % 3 ? 'S' : ''}`;
      await writeFile(path.join(maildir, 'cur', name), bytes);
      await writeFile(path.join(posternCur, name), bytes);
    }
    console.error(`[${size}] generated in ${((performance.now() - genStart) / 1000).toFixed(1)} s; ${rareCount} messages contain "${RARE}"`);
    const importer = await startPostern(dir, certFile, keyFile);
    console.error(`[${size}] postern imported in ${(importer.importMs / 1000).toFixed(1)} s`);
    // Import is a one-time migration: serve from a fresh process, as after any restart, so the memory figure
    // is the server's and not the importer's high-water mark.
    await importer.stop();
    postern = await startPostern(dir, certFile, keyFile);
    dovecot = { name: 'dovecot', ...(await startDovecot(dir, USER, PASSWORD, certFile, keyFile)) };
    const servers = [postern, dovecot];
    // Warm-up: Dovecot indexes the Maildir and fills its cache with ENVELOPE on first access.
    const cold: Record<string, number> = {};
    for (const s of servers) {
      cold[s.name] = await measure(s, async (c) => {
        const t = performance.now();
        await c.command('SELECT INBOX');
        await c.command('UID FETCH 1:* (FLAGS ENVELOPE)');
        return performance.now() - t;
      });
    }
    rows.push({ op: 'first SELECT + FETCH (cold)', size, postern: cold.postern!, dovecot: cold.dovecot!, unit: 'ms', note: 'Postern indexed at import' });

    const ops: Array<{ op: string; repeat?: number; run: (c: RawImap) => Promise<number> }> = [
      { op: 'SELECT INBOX', repeat: SELECT_REPEAT, run: async (c) => (await c.command('SELECT INBOX')).ms },
      {
        op: 'UID FETCH 1:* (FLAGS ENVELOPE)',
        run: async (c) => { await c.command('SELECT INBOX'); return (await c.command('UID FETCH 1:* (FLAGS ENVELOPE)')).ms; },
      },
      {
        op: `UID SEARCH TEXT ${RARE}`,
        run: async (c) => { await c.command('SELECT INBOX'); return (await c.command(`UID SEARCH TEXT ${RARE}`)).ms; },
      },
    ];
    // Sanity: both servers see the same messages and find the same rare word.
    const counts: Record<string, string> = {};
    for (const s of servers) {
      const c = await connect(s);
      await c.command('SELECT INBOX');
      const f = await c.command('UID FETCH 1:* (FLAGS)', true);
      const r = await c.command(`UID SEARCH TEXT ${RARE}`, true);
      await c.close();
      const hits = (r.lines.find((l) => l.startsWith('* SEARCH')) ?? '* SEARCH').trim().split(' ').length - 2;
      counts[s.name] = `${f.lines.filter((l) => l.includes(' FETCH ')).length} messages, ${hits} hits`;
    }
    console.error(`[${size}] postern: ${counts.postern}; dovecot: ${counts.dovecot}; expected ${size} messages, ${rareCount} hits`);
    for (const o of ops) {
      const times: Record<string, number[]> = { postern: [], dovecot: [] };
      for (let r = 0; r < (o.repeat ?? REPEAT); r++) {
        const order = r % 2 ? [dovecot, postern] : [postern, dovecot];
        for (const s of order) times[s.name]!.push(await measure(s, o.run));
      }
      rows.push({ op: o.op, size, postern: median(times.postern!), dovecot: median(times.dovecot!), unit: 'ms' });
    }
    // Memory with one client logged in and INBOX selected, after the work above.
    const held = await Promise.all(servers.map(async (s) => { const c = await connect(s); await c.command('SELECT INBOX'); return c; }));
    rows.push({ op: 'resident memory (1 client selected)', size, postern: postern.rssKiB() / 1024, dovecot: dovecot.rssKiB() / 1024, unit: 'MiB', note: 'Postern: one Node process; Dovecot: all its processes' });
    await Promise.all(held.map((c) => c.close()));
    const rates: Record<string, number> = {};
    for (const s of servers) rates[s.name] = await appendRate(s, size);
    rows.push({ op: `APPEND, ${APPEND_CLIENTS} clients x ${APPENDS_PER_CLIENT}`, size, postern: rates.postern!, dovecot: rates.dovecot!, unit: 'msg/s' });
  } finally {
    await postern?.stop();
    await dovecot?.stop();
    if (process.env.BENCH_KEEP) console.error(`kept ${dir}`); else await rm(dir, { recursive: true, force: true });
  }
}

const rows: Row[] = [];
const bundleDir = await mkdtemp(path.join(tmpdir(), 'postern-bench-bundle-'));
try {
  serverBundle = await bundleServer(path.join(import.meta.dirname, 'support/postern-imap-server.ts'), bundleDir);
  for (const size of SIZES) await benchSize(size, rows);
} finally {
  await rm(bundleDir, { recursive: true, force: true });
}

const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const unitEnv = Object.entries(posternEnvironment()).map(([k, v]) => `${k}=${v} `).join('');
const nodeFlags = ` (Postern run as ${unitEnv}node ${posternNodeFlags().join(' ') || 'without flags'})`;
console.log(`\nIMAP: Postern vs Dovecot (same machine, same mailbox, medians of interleaved runs)${nodeFlags}\n`);
console.log(`${'operation'.padEnd(38)} ${'messages'.padStart(8)} ${'Postern'.padStart(10)} ${'Dovecot'.padStart(10)}  unit   ratio (>1 = Postern better)`);
for (const r of rows) {
  // Times and memory: Dovecot / Postern; rates: Postern / Dovecot.
  const ratio = r.unit === 'msg/s' ? r.postern / r.dovecot : r.dovecot / r.postern;
  console.log(`${r.op.padEnd(38)} ${String(r.size).padStart(8)} ${fmt(r.postern).padStart(10)} ${fmt(r.dovecot).padStart(10)}  ${r.unit.padEnd(5)}  ${ratio.toFixed(2)}${r.note ? `  (${r.note})` : ''}`);
}

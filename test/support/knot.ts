// A real authoritative DNS server for tests: Debian's Knot DNS (`knotd`) with its own config, storage and run
// folder in a temp dir, on 127.0.0.1 with a free port, or on port 53 inside a network namespace made for the
// test (with /etc/netns/<name>/resolv.conf pointing at it) for tools that only read /etc/resolv.conf.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resolver } from 'node:dns/promises';
import type { DNSResolver } from 'mailauth';
import { ensureDebianPackages } from './debian.ts';
import { freeUdpTcpPort } from './ports.ts';

export interface Knot {
  port: number;
  /** `127.0.0.1:<port>`, as the CLI's `--server` takes it. */
  server: string;
  /** Set when knotd runs in its own network namespace (port 53 there; /etc/netns/<name>/resolv.conf points at it). */
  netns?: string;
  /** mailauth-style resolver querying this server (from the host: only for servers outside a namespace). */
  resolver: DNSResolver;
  /** What knotd logged (warnings and errors), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

export interface KnotOptions {
  /** Run in a fresh network namespace on port 53 (needs root). */
  netns?: boolean;
}

const LOG_LIMIT = 64 * 1024;
const ORIGIN = /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?$/i;

/** Zone text: records relative to the origin; SOA, NS and the name server's A record are added. */
export function zoneText(origin: string, records: string[], opts: { ttl?: number; ns?: string } = {}): string {
  const ttl = opts.ttl ?? 60;
  const ns = opts.ns ?? 'ns1';
  return [`$ORIGIN ${origin}.`, `$TTL ${ttl}`,
    `@ SOA ${ns}.${origin}. hostmaster.${origin}. 1 3600 600 86400 ${ttl}`, `@ NS ${ns}.${origin}.`, `${ns} A 127.0.0.1`, ...records, ''].join('\n');
}

/** Long TXT values (DKIM keys) split into strings of at most 255 bytes, as DNS requires. */
export function txt(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 200) parts.push(`"${value.slice(i, i + 200)}"`);
  return `( ${parts.join(' ')} )`;
}

function config(dir: string, port: number, origins: string[]): string {
  return [
    'server:',
    `    rundir: "${join(dir, 'run')}"`,
    `    listen: 127.0.0.1@${port}`,
    // Tests share a 2-core machine: one worker of each kind is plenty for a handful of queries.
    '    udp-workers: 1',
    '    tcp-workers: 1',
    '    background-workers: 1',
    'log:',
    '  - target: stderr',
    '    any: warning',
    'database:',
    `    storage: "${join(dir, 'db')}"`,
    'template:',
    '  - id: default',
    `    storage: "${join(dir, 'zones')}"`,
    '    file: "%s.zone"',
    // Serve exactly the zone files the test wrote: never write back, never keep a journal between runs.
    '    zonefile-sync: -1',
    '    zonefile-load: whole',
    '    journal-content: none',
    'zone:',
    ...origins.map((z) => `  - domain: ${z}`),
    '',
  ].join('\n');
}

/** Starts knotd serving `zones` (origin → zone file text) and waits until every zone answers its SOA. */
export async function startKnot(zones: Record<string, string>, opts: KnotOptions = {}): Promise<Knot> {
  ensureDebianPackages(opts.netns ? ['knot', 'knot-dnsutils', 'iproute2'] : ['knot']);
  const origins = Object.keys(zones).map((z) => z.replace(/\.$/, ''));
  if (origins.length === 0) throw new Error('startKnot: no zones given');
  for (const o of origins) if (!ORIGIN.test(o)) throw new Error(`startKnot: bad zone origin ${JSON.stringify(o)}`);
  const dir = await mkdtemp(join(tmpdir(), 'postern-knot-'));
  for (const d of ['zones', 'run', 'db']) await mkdir(join(dir, d));
  for (const [i, text] of Object.values(zones).entries()) await writeFile(join(dir, 'zones', `${origins[i]}.zone`), text);
  const netns = opts.netns ? `postern-dns-${process.pid}-${randomBytes(4).toString('hex')}` : undefined;
  const removeNetns = async () => {
    if (!netns) return;
    try { execFileSync('ip', ['netns', 'del', netns], { stdio: 'pipe' }); } catch { /* already gone */ }
    await rm(`/etc/netns/${netns}`, { recursive: true, force: true });
  };
  if (netns) {
    execFileSync('ip', ['netns', 'add', netns], { stdio: 'pipe' });
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
    await mkdir(`/etc/netns/${netns}`, { recursive: true });
    await writeFile(`/etc/netns/${netns}/resolv.conf`, 'nameserver 127.0.0.1\noptions timeout:2 attempts:2\n');
  }
  let log = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = netns ? 53 : await freeUdpTcpPort();
    const conf = join(dir, 'knot.conf');
    await writeFile(conf, config(dir, port, origins));
    const child: ChildProcess = netns
      ? spawn('ip', ['netns', 'exec', netns, 'knotd', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn('knotd', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    log = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { if (log.length < LOG_LIMIT) log += d; });
    const exited = once(child, 'exit');
    const resolver = new Resolver({ timeout: 500, tries: 1 });
    resolver.setServers([`127.0.0.1:${port}`]);
    const answers = async (origin: string): Promise<boolean> => {
      if (!netns) return resolver.resolveSoa(origin).then(() => true, () => false);
      try {
        const out = execFileSync('ip', ['netns', 'exec', netns, 'kdig', '+short', '+time=1', '+retry=0', '@127.0.0.1', origin, 'SOA'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        return out.trim() !== '';
      } catch { return false; }
    };
    const deadline = Date.now() + 20_000;
    let ready = false;
    while (!ready && Date.now() < deadline && child.exitCode === null) {
      ready = (await Promise.all(origins.map(answers))).every(Boolean);
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    const kill = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    };
    if (ready) {
      return {
        port, server: `127.0.0.1:${port}`, netns, log: () => log,
        resolver: (name, type) => resolver.resolve(name, type) as Promise<string[] | string[][]>,
        async stop() {
          await kill();
          await removeNetns();
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    await kill();
    // A port race with another test: try another port; anything else is a real failure.
    if (netns || !/address already in use/i.test(log)) break;
  }
  await removeNetns();
  await rm(dir, { recursive: true, force: true });
  throw new Error(`knotd did not start:\n${log}`);
}

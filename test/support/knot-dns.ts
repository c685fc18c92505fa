// A real authoritative DNS server for tests: Debian's knotd serving the test's zones on 127.0.0.1 (a free port,
// or port 53 inside a network namespace made for the test, for tools that only read /etc/resolv.conf).
import { spawn, execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { DNSResolver } from 'mailauth';

export interface KnotServer {
  port: number;
  /** Set when knotd runs in its own network namespace (with /etc/netns/<name>/resolv.conf pointing at it). */
  netns?: string;
  /** mailauth-style resolver querying this server (host side only). */
  resolver: DNSResolver;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** Zone text: records relative to the origin; SOA and NS are added. */
export function zoneText(origin: string, records: string[]): string {
  return [`$ORIGIN ${origin}.`, '$TTL 60',
    `@ SOA ns1.${origin}. hostmaster.${origin}. 1 3600 600 86400 60`, `@ NS ns1.${origin}.`, 'ns1 A 127.0.0.1', ...records, ''].join('\n');
}

/** Long TXT values (DKIM keys) split into 255-byte strings, as DNS requires. */
export function txt(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 200) parts.push(`"${value.slice(i, i + 200)}"`);
  return `( ${parts.join(' ')} )`;
}

export async function startKnot(dir: string, zones: Record<string, string>, opts: { netns?: boolean } = {}): Promise<KnotServer> {
  const netns = opts.netns ? `postern-dns-${randomBytes(4).toString('hex')}` : undefined;
  const port = netns ? 53 : await freePort();
  for (const d of ['run', 'db', 'zones']) mkdirSync(join(dir, d), { recursive: true });
  for (const [origin, text] of Object.entries(zones)) writeFileSync(join(dir, 'zones', `${origin}.zone`), text);
  const conf = join(dir, 'knot.conf');
  writeFileSync(conf, `server:
    rundir: "${join(dir, 'run')}"
    listen: 127.0.0.1@${port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "${join(dir, 'db')}"
log:
  - target: stderr
    any: error
template:
  - id: default
    storage: "${join(dir, 'zones')}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
${Object.keys(zones).map((z) => `  - domain: ${z}\n    file: ${z}.zone`).join('\n')}
`);
  let child: ChildProcess;
  if (netns) {
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    mkdirSync(`/etc/netns/${netns}`, { recursive: true });
    writeFileSync(`/etc/netns/${netns}/resolv.conf`, 'nameserver 127.0.0.1\noptions timeout:2 attempts:2\n');
    child = spawn('ip', ['netns', 'exec', netns, 'knotd', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  } else {
    child = spawn('knotd', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const r = new Resolver({ timeout: 1000, tries: 1 });
  r.setServers([`127.0.0.1:${port}`]);
  const first = Object.keys(zones)[0]!;
  const ready = async (): Promise<boolean> => {
    if (netns) {
      try { execFileSync('ip', ['netns', 'exec', netns, 'kdig', '+short', '+time=1', '@127.0.0.1', first, 'SOA'], { stdio: 'pipe' }); return true; } catch { return false; }
    }
    try { await r.resolve(first, 'SOA'); return true; } catch { return false; }
  };
  let ok = false;
  for (let i = 0; i < 100 && !ok && child.exitCode === null; i++) {
    ok = await ready();
    if (!ok) await new Promise((res) => setTimeout(res, 50));
  }
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((res) => child.once('exit', res));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((res) => setTimeout(res, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    if (netns) {
      try { execFileSync('ip', ['netns', 'del', netns]); } catch { /* already gone */ }
      rmSync(`/etc/netns/${netns}`, { recursive: true, force: true });
    }
  };
  if (!ok) {
    await stop();
    throw new Error(`knotd did not start: ${stderr}`);
  }
  return { port, netns, resolver: (name, type) => r.resolve(name, type) as Promise<string[] | string[][]>, stop };
}

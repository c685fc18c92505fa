// A real authoritative DNS server for tests: Debian's Knot DNS (`knotd`) on 127.0.0.1 with a free port and its
// own config, storage and run folder in a temp dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promises as dns } from 'node:dns';
import { ensureDebianPackages } from './debian.ts';

export interface Knot { port: number; server: string; stop(): Promise<void>; log(): string }

/** A port free for both UDP and TCP on 127.0.0.1 (Knot listens on both). */
async function freeUdpTcpPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4');
    await new Promise<void>((res, rej) => { udp.once('error', rej); udp.bind(0, '127.0.0.1', () => res()); });
    const port = udp.address().port;
    const tcp = createServer();
    const ok = await new Promise<boolean>((res) => { tcp.once('error', () => res(false)); tcp.listen(port, '127.0.0.1', () => res(true)); });
    await new Promise<void>((res) => udp.close(() => res()));
    if (ok) { await new Promise<void>((res) => tcp.close(() => res())); return port; }
  }
  throw new Error('no free UDP+TCP port found');
}

/** Starts knotd serving `zones` (origin → zone file text) and waits until every zone answers its SOA. */
export async function startKnot(zones: Record<string, string>): Promise<Knot> {
  ensureDebianPackages(['knot']);
  const dir = await mkdtemp(join(tmpdir(), 'postern-knot-'));
  await mkdir(join(dir, 'zones'));
  await mkdir(join(dir, 'run'));
  await mkdir(join(dir, 'db'));
  for (const [origin, text] of Object.entries(zones)) await writeFile(join(dir, 'zones', `${origin}.zone`), text);
  let child: ChildProcess | undefined;
  let log = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freeUdpTcpPort();
    await writeFile(join(dir, 'knot.conf'), [
      'server:',
      `    rundir: "${join(dir, 'run')}"`,
      `    listen: 127.0.0.1@${port}`,
      'log:',
      '  - target: stderr',
      '    any: info',
      'database:',
      `    storage: "${join(dir, 'db')}"`,
      'template:',
      '  - id: default',
      `    storage: "${join(dir, 'zones')}"`,
      '    file: "%s.zone"',
      '    zonefile-sync: -1',
      '    zonefile-load: whole',
      '    journal-content: none',
      '    semantic-checks: on',
      'zone:',
      ...Object.keys(zones).map((z) => `  - domain: ${z}`),
      '',
    ].join('\n'));
    child = spawn('knotd', ['-c', join(dir, 'knot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { log += d; });
    const exited = once(child, 'exit');
    const resolver = new dns.Resolver({ timeout: 300, tries: 1 });
    resolver.setServers([`127.0.0.1:${port}`]);
    const deadline = Date.now() + 15_000;
    let ready = false;
    while (!ready && Date.now() < deadline && child.exitCode === null) {
      try {
        await Promise.all(Object.keys(zones).map((z) => resolver.resolveSoa(z)));
        ready = true;
      } catch { await new Promise((r) => setTimeout(r, 100)); }
    }
    if (ready) {
      const c = child;
      return {
        port, server: `127.0.0.1:${port}`, log: () => log,
        async stop() {
          if (c.exitCode === null && c.signalCode === null) { c.kill('SIGTERM'); await exited; }
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    if (child.exitCode === null) { child.kill('SIGKILL'); await exited; }
    // A port race with another test: try another port; anything else is a real failure.
    if (!/address already in use/i.test(log)) break;
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`knotd did not start:\n${log}`);
}

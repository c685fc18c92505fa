// Real DNS peers for the diagnostics tests: Unbound (recursive, stub zones pointing at the Knot of
// test/support/knot.ts that serves the test zones) on 127.0.0.1 on a free port, with its config and pid file in a
// temp folder. No root hints are fetched: every queried name lies in a stub zone.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Resolver } from 'node:dns/promises';
import { freeUdpTcpPort } from '../../support/ports.ts';

export interface RunningPeer {
  port: number;
  stop(): Promise<void>;
  /** Everything the process wrote, for failure messages. */
  output(): string;
}

function run(cmd: string, args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const take = (d: Buffer) => { if (out.length < 100_000) out += d.toString(); };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  return { child, output: () => out };
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(); return; }
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.kill('SIGTERM');
  });
}

/** Waits until `name` has an answer of `type` from the server, or fails with the peer's output. */
export async function waitForAnswer(port: number, name: string, type: 'SOA' | 'A' | 'TXT', peer: { output(): string; exited(): boolean }): Promise<void> {
  const r = new Resolver({ timeout: 500, tries: 1 });
  r.setServers([`127.0.0.1:${port}`]);
  const until = Date.now() + 20_000;
  let last = '';
  while (Date.now() < until) {
    if (peer.exited()) throw new Error(`DNS peer on ${port} exited:\n${peer.output()}`);
    try {
      await r.resolve(name, type as 'SOA');
      return;
    } catch (err) {
      last = (err as Error).message;
      await new Promise((res) => setTimeout(res, 150));
    }
  }
  throw new Error(`DNS peer on ${port} never answered ${type} ${name} (${last}):\n${peer.output()}`);
}

export async function startUnbound(dir: string, knotPort: number, stubZones: string[]): Promise<RunningPeer> {
  const port = await freeUdpTcpPort();
  await mkdir(dir, { recursive: true });
  const conf = [
    'server:',
    `    interface: 127.0.0.1@${port}`,
    `    port: ${port}`,
    '    do-ip6: no',
    '    do-not-query-localhost: no',
    '    username: ""',
    '    chroot: ""',
    `    directory: "${dir}"`,
    `    pidfile: "${join(dir, 'unbound.pid')}"`,
    '    use-syslog: no',
    '    logfile: ""',
    '    verbosity: 0',
    '    do-daemonize: no',
    '    module-config: "iterator"',
    '    qname-minimisation: no',
    '    access-control: 127.0.0.0/8 allow',
    '    cache-max-ttl: 0',
    '    cache-max-negative-ttl: 0',
    '    num-threads: 1',
    // Unbound answers test names and documentation reverse zones itself by default (RFC 6761/6303): switch that off.
    ...stubZones.map((z) => `    local-zone: "${z}." nodefault`),
    '    local-zone: "test." nodefault',
    ...stubZones.flatMap((z) => ['stub-zone:', `    name: "${z}."`, `    stub-addr: 127.0.0.1@${knotPort}`]),
    'remote-control:',
    '    control-enable: no',
    '',
  ].join('\n');
  const confFile = join(dir, 'unbound.conf');
  await writeFile(confFile, conf);
  const p = run('unbound', ['-d', '-c', confFile]);
  const peer = { port, stop: stopper(p.child), output: p.output };
  try {
    await waitForAnswer(port, stubZones[0]!, 'SOA', { output: p.output, exited: () => p.child.exitCode !== null });
  } catch (err) {
    await peer.stop();
    throw err;
  }
  return peer;
}

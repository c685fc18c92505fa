// Debian's OpenSSH server on a random loopback port, standing in for a droplet. Runs as root (the tests do),
// with its host key and authorized key given by the test, so host-key pinning is tested for real.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebianPackages } from './debian.ts';
import { freePort } from './ports.ts';

export interface Sshd {
  port: number;
  dir: string;
  logs(): string;
  stop(): Promise<void>;
}

function banner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(1000);
    s.once('data', (b) => { s.destroy(); resolve(b.toString().startsWith('SSH-2.0')); });
    s.once('error', () => resolve(false));
    s.once('timeout', () => { s.destroy(); resolve(false); });
  });
}

export async function startSshd(opts: { hostPrivateKey: string; authorizedKey: string }): Promise<Sshd> {
  // curl: the tests' health checks run it on the "droplet".
  ensureDebianPackages(['openssh-server', 'curl']);
  if (process.getuid?.() !== 0) throw new Error('the OpenSSH droplet stand-in needs root (sshd switches users)');
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(tmpdir(), 'postern-sshd-'));
  const port = await freePort();
  await writeFile(join(dir, 'host_ed25519'), opts.hostPrivateKey, { mode: 0o600 });
  await writeFile(join(dir, 'authorized_keys'), `${opts.authorizedKey}\n`, { mode: 0o600 });
  await writeFile(join(dir, 'sshd_config'), [
    'ListenAddress 127.0.0.1', `Port ${port}`, `HostKey ${join(dir, 'host_ed25519')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password', 'StrictModes no', 'UsePAM no', `PidFile ${join(dir, 'sshd.pid')}`,
    'Subsystem sftp internal-sftp', 'LogLevel VERBOSE', '',
  ].join('\n'));
  const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  const add = (b: Buffer) => { out.push(b.toString()); if (out.length > 500) out.splice(0, 100); };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100 && !(await banner(port)); i++) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!(await banner(port))) {
    await stop();
    throw new Error(`sshd did not start:\n${out.join('')}`);
  }
  return { port, dir, logs: () => out.join(''), stop };
}

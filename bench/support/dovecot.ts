// A throw-away Dovecot for benchmarks: its own config, base/state dirs and log in a temp folder, a passwd-file
// user with a Maildir, IMAPS on a free loopback port, run in the foreground as a child of the benchmark.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

export interface Dovecot {
  port: number;
  maildir: string;
  process: ChildProcess;
  /** Resident memory of the master and every process under it, in KiB. */
  rssKiB(): number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function uidOf(name: string): number {
  return Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
}

/** Prepares the folder layout (the caller fills `maildir/cur` before start). */
export async function prepareDovecot(dir: string, user: string): Promise<{ maildir: string; home: string }> {
  const local = user.split('@')[0]!;
  const home = path.join(dir, 'home', local);
  const maildir = path.join(home, 'Maildir');
  for (const sub of ['cur', 'new', 'tmp']) await mkdir(path.join(maildir, sub), { recursive: true });
  return { maildir, home };
}

export async function startDovecot(dir: string, user: string, password: string, certFile: string, keyFile: string): Promise<Dovecot> {
  const { maildir, home } = await prepareDovecot(dir, user);
  const port = await freePort();
  const uid = uidOf('dovecot');
  const gid = Number(execFileSync('id', ['-g', 'dovecot'], { encoding: 'utf8' }).trim());
  // The mail processes run as the dovecot user: it must reach and own the Maildir.
  await chmod(dir, 0o755);
  execFileSync('chown', ['-R', `${uid}:${gid}`, path.join(dir, 'home')]);
  await chown(home, uid, gid);
  await mkdir(path.join(dir, 'run'), { recursive: true });
  await mkdir(path.join(dir, 'state'), { recursive: true });
  await writeFile(path.join(dir, 'passwd'), `${user}:{PLAIN}${password}::::::\n`);
  const conf = path.join(dir, 'dovecot.conf');
  await writeFile(conf, `
instance_name = postern-bench-${process.pid}-${port}
protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
ssl = required
ssl_cert = <${certFile}
ssl_key = <${keyFile}
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = ${uid}
last_valid_uid = ${uid}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${dir}/home/%n
}
mail_location = maildir:~/Maildir
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = ${port}
    ssl = yes
  }
}
`);
  const child = spawn('dovecot', ['-F', '-c', conf], { stdio: ['ignore', 'inherit', 'inherit'] });
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (i > 100 || child.exitCode !== null) throw new Error(`dovecot did not start (see ${dir}/dovecot.log)`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port, maildir, process: child,
    rssKiB: () => treeRssKiB(child.pid!),
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** VmRSS of a process and all its descendants, from /proc. */
export function treeRssKiB(root: number): number {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    } catch { /* process went away */ }
  }
  let total = 0;
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop()!;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += m ? Number(m[1]) : 0;
    } catch { /* gone */ }
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

// Real peers for the outbound queue tests, each started on its own random loopback address or port:
// a test CA and certificates (openssl) and a Postfix instance as a remote MX (Knot DNS is test/support/knot.ts)
// (smtpd with STARTTLS, virtual delivery into a Maildir the test reads).
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A random 127.x.y.0/24 base for one test run; callers take host numbers 1..254 from it. */
export function randomLoopbackBase(): string {
  return `127.${randomInt(1, 255)}.${randomInt(0, 256)}`;
}

export interface TestPki {
  caFile: string;
  ca: Buffer;
  /** Issues a key and certificate for `names` (DNS SANs), signed by the test CA. */
  issue(name: string, names: string[]): { keyFile: string; certFile: string; key: Buffer; cert: Buffer };
}

export function makePki(dir: string): TestPki {
  mkdirSync(dir, { recursive: true });
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey,
    '-out', caFile, '-days', '2', '-subj', '/CN=Postern queue test CA'], { stdio: 'pipe' });
  return {
    caFile,
    ca: readFileSync(caFile),
    issue(name, names) {
      const keyFile = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const certFile = join(dir, `${name}.pem`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`);
      execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr,
        '-subj', `/CN=${names[0]}`], { stdio: 'pipe' });
      execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile,
        '-days', '2', '-extfile', ext], { stdio: 'pipe' });
      return { keyFile, certFile, key: readFileSync(keyFile), cert: readFileSync(certFile) };
    },
  };
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, child: ChildProcess | null, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child && child.exitCode !== null) throw new Error(`${what}: process exited with ${child.exitCode}`);
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms`);
}

async function canConnect(host: string, port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export interface RunningPostfix {
  address: string;
  /** The instance's config folder (for `postqueue -c`, `postsuper -c`). */
  configDir: string;
  /** Files in the incoming, active and deferred queues. */
  queued(): number;
  masterPid(): number;
  /** Messages delivered so far (Maildir new/), oldest first. */
  messages(): string[];
  /** How many messages were delivered so far, without reading them. */
  deliveredCount(): number;
  log(): string;
  stop(): Promise<void>;
}

const MASTER_CF = `
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

/**
 * A Postfix instance as the MX for `domain`: smtpd on `address`:25 with STARTTLS (`cert`), every recipient of
 * `domain` delivered by the virtual agent into one Maildir.
 */
export async function startPostfix(dir: string, opts: { address: string; hostname: string; domain: string; certFile: string; keyFile: string; extraMain?: string[] }): Promise<RunningPostfix> {
  const conf = join(dir, 'etc');
  const mail = join(dir, 'mail');
  for (const d of [conf, join(dir, 'queue'), join(dir, 'data'), mail]) mkdirSync(d, { recursive: true });
  // Postfix daemons (as `postfix`) and the virtual agent (as `nobody`) must reach their folders through the
  // test's temp folders, which mkdtemp makes 0700.
  chmodSync(dirname(dir), 0o755);
  chmodSync(dir, 0o755);
  chownSync(mail, 65534, 65534);
  const postfixUid = Number(execFileSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).trim());
  const postfixGid = Number(execFileSync('id', ['-g', 'postfix'], { encoding: 'utf8' }).trim());
  chownSync(join(dir, 'data'), postfixUid, postfixGid);
  writeFileSync(join(conf, 'main.cf'), [
    'compatibility_level = 3.6',
    `queue_directory = ${join(dir, 'queue')}`,
    `data_directory = ${join(dir, 'data')}`,
    'mail_owner = postfix',
    `myhostname = ${opts.hostname}`,
    `mydomain = ${opts.domain}`,
    'mydestination =',
    // Postfix only binds inet_interfaces that an interface carries; the random 127.x.y.z is reachable on lo but
    // not configured on it, so the smtpd line in master.cf names it and inet_interfaces stays on 127.0.0.1.
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    `mynetworks = ${opts.address}/32`,
    `virtual_mailbox_domains = ${opts.domain}`,
    `virtual_mailbox_base = ${mail}`,
    'virtual_mailbox_maps = static:Maildir/',
    'virtual_uid_maps = static:65534',
    'virtual_gid_maps = static:65534',
    'virtual_minimum_uid = 100',
    'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
    'smtpd_tls_security_level = may',
    `smtpd_tls_cert_file = ${opts.certFile}`,
    `smtpd_tls_key_file = ${opts.keyFile}`,
    'smtpd_tls_received_header = yes',
    'smtpd_tls_loglevel = 1',
    `maillog_file = ${join(dir, 'maillog')}`,
    `maillog_file_prefixes = ${dir}`,
    'smtputf8_enable = no',
    'biff = no',
    'alias_maps =',
    'alias_database =',
    'local_recipient_maps =',
    'shlib_directory = /usr/lib/postfix',
    'daemon_directory = /usr/lib/postfix/sbin',
    'meta_directory = /etc/postfix',
    'setgid_group = postdrop',
    'smtpd_banner = $myhostname ESMTP',
    // Later lines win in main.cf: callers override the defaults above.
    ...(opts.extraMain ?? []),
    '',
  ].join('\n'));
  writeFileSync(join(conf, 'master.cf'), `${opts.address}:25 inet n - n - - smtpd\n${MASTER_CF}`);
  execFileSync('postfix', ['-c', conf, 'start'], { stdio: 'pipe' });
  const logFile = join(dir, 'maillog');
  const log = () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } };
  try {
    await waitFor('postfix smtpd', () => canConnect(opts.address, 25), null);
  } catch (err) {
    try { execFileSync('postfix', ['-c', conf, 'abort'], { stdio: 'pipe' }); } catch { /* not running */ }
    throw new Error(`${(err as Error).message}\n${log()}`);
  }
  const newDir = join(mail, 'Maildir', 'new');
  const countFiles = (d: string): number => {
    let n = 0;
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) n += e.isDirectory() ? countFiles(join(d, e.name)) : 1;
    } catch { /* not created yet */ }
    return n;
  };
  return {
    address: opts.address,
    configDir: conf,
    queued: () => ['incoming', 'active', 'deferred', 'hold'].reduce((n, q) => n + countFiles(join(dir, 'queue', q)), 0),
    masterPid: () => Number(readFileSync(join(dir, 'queue', 'pid', 'master.pid'), 'utf8').trim()),
    messages() {
      let names: string[];
      try { names = readdirSync(newDir).sort(); } catch { return []; }
      return names.map((n) => readFileSync(join(newDir, n), 'utf8'));
    },
    deliveredCount() {
      try { return readdirSync(newDir).length; } catch { return 0; }
    },
    log,
    async stop() {
      try { execFileSync('postfix', ['-c', conf, 'stop'], { stdio: 'pipe' }); } catch { /* already stopped */ }
      const pidFile = join(dir, 'queue', 'pid', 'master.pid');
      await waitFor('postfix stop', () => {
        try {
          const pid = Number(readFileSync(pidFile, 'utf8').trim());
          process.kill(pid, 0);
          return false;
        } catch { return true; }
      }, null, 10_000).catch(() => {});
    },
  };
}

// Debian's Pebble (ACME CA) and pebble-challtestsrv (its DNS) on random loopback ports, for DNS-01 tests.
// Pebble's HTTPS listener needs a certificate the package does not ship: a throwaway CA and a localhost
// certificate are made with openssl in a temp dir.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import { ensureDebianPackages } from './debian.ts';
import { freePort } from './ports.ts';

export interface Pebble {
  directoryUrl: string;
  /** CA that signed Pebble's HTTPS certificate (not the ACME issuing CA). */
  httpsCaPem: string;
  /** challtestsrv DNS, as `127.0.0.1:port`. */
  dnsServer: string;
  /** challtestsrv management API base URL. */
  challtestsrvUrl: string;
  /** GET on Pebble's management API (cert-status-by-serial, roots), parsed JSON or text. */
  management(path: string): Promise<{ status: number; body: string }>;
  /** Log lines of both processes, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

function httpsGet(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`timeout GET ${url}`)));
    req.end();
  });
}

async function waitFor(what: string, probe: () => Promise<boolean>, logs: () => string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not start:\n${logs()}`);
}

/**
 * `httpPort`: the port Pebble's VA dials for HTTP-01 (the server under test's plain-HTTP listener); challtestsrv
 * answers every name with 127.0.0.1, so the VA reaches that listener on loopback.
 */
export async function startPebble(opts: { certificateValiditySeconds: number; httpPort?: number }): Promise<Pebble> {
  ensureDebianPackages(['pebble', 'openssl']);
  const dir = await mkdtemp(join(tmpdir(), 'postern-pebble-'));
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=postern test pebble https CA']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'localhost.csr', '-subj', '/CN=localhost']);
  await writeFile(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', 'localhost.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'cert.pem', '-days', '2', '-extfile', 'ext.cnf']);

  const [acmePort, mgmtPort, dnsPort, chalMgmtPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  await writeFile(join(dir, 'pebble.json'), JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`, managementListenAddress: `127.0.0.1:${mgmtPort}`,
      certificate: join(dir, 'cert.pem'), privateKey: join(dir, 'key.pem'),
      // Ports Pebble's VA uses for HTTP-01/TLS-ALPN-01 (unused with DNS-01).
      httpPort: opts.httpPort ?? await freePort(), tlsPort: await freePort(),
      ocspResponderURL: '', externalAccountBindingRequired: false,
      certificateValidityPeriod: opts.certificateValiditySeconds,
    },
  }));
  const out: string[] = [];
  const keep = (name: string, child: ChildProcess) => {
    const add = (b: Buffer) => { out.push(...b.toString().split('\n').filter(Boolean).map((l) => `${name}: ${l}`)); if (out.length > 400) out.splice(0, out.length - 400); };
    child.stdout?.on('data', add);
    child.stderr?.on('data', add);
  };
  const chal = spawn('pebble-challtestsrv', [
    '-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${chalMgmtPort}`,
    // No AAAA answers: the VA then dials only 127.0.0.1, where test servers listen.
    '-defaultIPv6', '',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  keep('challtestsrv', chal);
  const pebble = spawn('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' },
  });
  keep('pebble', pebble);
  const logs = () => out.join('\n');
  const httpsCaPem = await readFile(join(dir, 'ca.pem'), 'utf8');
  const stop = async () => {
    for (const child of [pebble, chal]) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('pebble-challtestsrv', async () => (await fetch(`http://127.0.0.1:${chalMgmtPort}/`)).status > 0, logs);
    await waitFor('pebble', async () => (await httpsGet(`https://127.0.0.1:${acmePort}/dir`, httpsCaPem)).status === 200, logs);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    directoryUrl: `https://127.0.0.1:${acmePort}/dir`,
    httpsCaPem,
    dnsServer: `127.0.0.1:${dnsPort}`,
    challtestsrvUrl: `http://127.0.0.1:${chalMgmtPort}`,
    management: (path) => httpsGet(`https://127.0.0.1:${mgmtPort}${path}`, httpsCaPem),
    logs,
    stop,
  };
}

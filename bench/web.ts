// HTTPS: Postern's web service against nginx, both serving the same MTA-STS policy over TLS 1.3 from one core's
// worth of client: requests per second on keep-alive connections (a mail client polling autoconfig, a monitor
// polling /healthz) and with a new TLS connection per request (how sending MTAs fetch MTA-STS policies).
// Each server runs as its own process (nginx with one worker, Postern is one process); rounds are interleaved and
// medians reported. Ratio = Postern rate / nginx rate (1 = as fast as nginx).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, mkdir, rm, writeFile, readFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ensureDebianPackages } from '../test/support/debian.ts';
import { startPostern } from '../test/support/postern-process.ts';
import { createSelfSignedCertificate } from '../src/server/self-signed.ts';
import { median } from './support/median.ts';

ensureDebianPackages(['nginx']);

const POLICY = 'version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n';
const ROUNDS = Number(process.env.BENCH_WEB_ROUNDS ?? 3);
const KEEPALIVE_REQUESTS = Number(process.env.BENCH_WEB_REQUESTS ?? 4000);
const NEW_CONN_REQUESTS = Number(process.env.BENCH_WEB_HANDSHAKES ?? 600);
const CONCURRENCY = 8;

function once(port: number, ca: string, agent: Agent | false): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/.well-known/mta-sts.txt', ca, servername: 'mta-sts.example.com', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; });
      res.on('end', () => (res.statusCode === 200 && body === POLICY ? resolve() : reject(new Error(`bad answer ${res.statusCode}: ${body}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Requests per second with CONCURRENCY workers; keepAlive shares one pooled agent, else each request connects anew. */
async function rate(port: number, ca: string, total: number, keepAlive: boolean): Promise<number> {
  const agent = keepAlive ? new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca }) : false;
  let left = total;
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (left-- > 0) await once(port, ca, agent);
  }));
  const seconds = (performance.now() - start) / 1000;
  if (agent) agent.destroy();
  return total / seconds;
}

/** A port the kernel just handed out and released, for nginx, which cannot report an ephemeral port. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

const dir = await mkdtemp(path.join(tmpdir(), 'postern-bench-web-'));
const children: ChildProcess[] = [];
try {
  const pair = await createSelfSignedCertificate({ names: ['mail.example.com', 'mta-sts.example.com', '127.0.0.1'], days: 7 });
  await mkdir(path.join(dir, 'tls'));
  await writeFile(path.join(dir, 'tls', 'cert.pem'), pair.cert);
  await writeFile(path.join(dir, 'tls', 'key.pem'), pair.key, { mode: 0o600 });
  await writeFile(path.join(dir, 'policy.txt'), POLICY, { mode: 0o644 });
  // nginx's worker runs as an unprivileged user and must reach the policy file.
  await chmod(dir, 0o755);

  // Postern: only the HTTPS listener, JSON logs (one line per request, as in production) to a file.
  await writeFile(path.join(dir, 'server.json'), JSON.stringify({
    domain: 'example.com', hostname: 'mail.example.com', stateDir: 'state', listenAddress: '127.0.0.1',
    ports: { smtp: 0, submission: 0, submissions: 0, imap: 0, imaps: 0, pop3: 0, pop3s: 0, https: 443, http: 0 },
    tls: { certFile: 'tls/cert.pem', keyFile: 'tls/key.pem' },
    mtaSts: { mode: 'enforce', policy: POLICY },
    limits: { maxConnectionsPerIp: 1000 },
    log: { level: process.env.BENCH_WEB_LOG ?? 'info' },
  }));
  const postern = await startPostern(['serve', '--config', path.join(dir, 'server.json'), '--ports', 'auto']);
  children.push(postern.child);
  const posternPort = Number(new URL(postern.urls.get('https')!).port);

  // nginx: one worker, TLS 1.2+, an access log like Postern's request log, the same policy file.
  const nginxPort = await freePort();
  await writeFile(path.join(dir, 'nginx.conf'), `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log ${dir}/nginx-access.log;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:${nginxPort} ssl;
    ssl_certificate ${dir}/tls/cert.pem;
    ssl_certificate_key ${dir}/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = /.well-known/mta-sts.txt { default_type text/plain; alias ${dir}/policy.txt; }
  }
}
`);
  const nginx = spawn('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(nginx);
  const ca = pair.cert;
  for (let i = 0; i < 50; i++) {
    try { await once(nginxPort, ca, false); break; } catch { await new Promise((r) => setTimeout(r, 100)); }
  }

  // Warm up both (JIT, session caches), then interleave the measured rounds.
  for (const port of [posternPort, nginxPort]) {
    await rate(port, ca, 500, true);
    await rate(port, ca, 100, false);
  }
  const results = { postern: { keep: [] as number[], fresh: [] as number[] }, nginx: { keep: [] as number[], fresh: [] as number[] } };
  for (let r = 0; r < ROUNDS; r++) {
    results.postern.keep.push(await rate(posternPort, ca, KEEPALIVE_REQUESTS, true));
    results.nginx.keep.push(await rate(nginxPort, ca, KEEPALIVE_REQUESTS, true));
    results.postern.fresh.push(await rate(posternPort, ca, NEW_CONN_REQUESTS, false));
    results.nginx.fresh.push(await rate(nginxPort, ca, NEW_CONN_REQUESTS, false));
  }
  const nginxWorkers = (await readFile(`/proc/${nginx.pid}/task/${nginx.pid}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean).map(Number);
  const nginxRss = (await rssKiB(nginx.pid!)) + (await Promise.all(nginxWorkers.map(rssKiB))).reduce((a, b) => a + b, 0);
  const posternRss = await rssKiB(postern.child.pid!);

  const row = (name: string, p: number, n: number, unit: string) =>
    `| ${name.padEnd(38)} | ${p.toFixed(0).padStart(8)} | ${n.toFixed(0).padStart(8)} | ${(p / n).toFixed(2).padStart(5)} | ${unit}`;
  console.log(`HTTPS GET /.well-known/mta-sts.txt, ${CONCURRENCY} concurrent clients, medians of ${ROUNDS} interleaved rounds`);
  console.log('| measure                                |  Postern |    nginx | ratio |');
  console.log(row('keep-alive requests/s', median(results.postern.keep), median(results.nginx.keep), 'higher is better'));
  console.log(row('new TLS connection per request, req/s', median(results.postern.fresh), median(results.nginx.fresh), 'higher is better'));
  console.log(row('resident memory after the runs, MiB', posternRss / 1024, nginxRss / 1024, 'Postern is the whole server process'));
} finally {
  for (const c of children) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
}

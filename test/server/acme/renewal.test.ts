// Certificate renewal on the host against Debian's Pebble: the real server (startServer, default services) orders a
// certificate over HTTP-01 answered by its own port-80 listener, installs it, and new HTTPS and IMAPS connections
// present it; a certificate with plenty of days left is left alone; a failed order keeps the old certificate and
// records the error, which the doctor check reports.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { pino } from 'pino';
import { ensureDebianPackages } from '../../support/debian.ts';
import { startPebble, type Pebble } from '../../support/pebble.ts';
import { freePort } from '../../support/ports.ts';
import { createSelfSignedCertificate } from '../../../src/server/self-signed.ts';
import { parseServerConfig, type ServerConfig } from '../../../src/plan/server-config.ts';
import { Writable } from 'node:stream';
import { startServer, type RunningServer } from '../../../src/server/main.ts';
import { readRenewalState, type RenewalState } from '../../../src/server/acme/renewal-state.ts';
import { ACME_ACCOUNT_KEY_FILENAME } from '../../../src/server/acme/order.ts';
import { checkAcmeRenewal } from '../../../src/server/diagnostics/acme-renewal.ts';

ensureDebianPackages(['pebble', 'openssl']);

const NAMES = ['mail.example.test', 'mta-sts.example.test'];
const DAY_S = 86_400;
let dir: string;
let pebble: Pebble;
let httpPort: number;
let caFile: string;
const servers: RunningServer[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-acme-renewal-'));
  httpPort = await freePort();
  // 90-day certificates, like Let's Encrypt: a fresh one is not due again at 30 days.
  pebble = await startPebble({ certificateValiditySeconds: 90 * DAY_S, httpPort });
  caFile = join(dir, 'pebble-https-ca.pem');
  await writeFile(caFile, pebble.httpsCaPem);
});

after(async () => {
  for (const s of servers) await s.stop(0);
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Setup { config: ServerConfig; stateDir: string; certFile: string; keyFile: string; httpsPort: number; imapsPort: number; server: RunningServer; initialCert: string }

async function startWithCertificate(name: string, cert: { names: string[]; days: number }, http: number): Promise<Setup> {
  const base = join(dir, name);
  const stateDir = join(base, 'state');
  const certFile = join(base, 'cert.pem');
  const keyFile = join(base, 'key.pem');
  await mkdir(base, { recursive: true });
  const pair = await createSelfSignedCertificate(cert);
  await writeFile(certFile, pair.cert);
  await writeFile(keyFile, pair.key, { mode: 0o600 });
  const httpsPort = await freePort();
  const imapsPort = await freePort();
  const parsed = parseServerConfig({
    domain: 'example.test', hostname: NAMES[0], stateDir, listenAddress: '127.0.0.1',
    ports: { smtp: 0, submission: 0, submissions: 0, imap: 0, pop3: 0, pop3s: 0, https: httpsPort, imaps: imapsPort, http },
    tls: { certFile, keyFile },
    acme: { directoryUrl: pebble.directoryUrl, email: 'postmaster@example.test', names: NAMES, directoryCaFile: caFile },
  });
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.errors.join('\n'));
  const server = await startServer(parsed.value, { logger: pino({ level: 'silent' }) });
  servers.push(server);
  return { config: parsed.value, stateDir, certFile, keyFile, httpsPort, imapsPort, server, initialCert: pair.cert };
}

async function waitForState(stateDir: string, done: (s: RenewalState) => boolean): Promise<RenewalState> {
  let last: RenewalState | null = null;
  for (let i = 0; i < 600; i++) {
    last = await readRenewalState(stateDir).catch(() => null);
    if (last && done(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`renewal did not finish: ${JSON.stringify(last)}\n${pebble.logs()}`);
}

/** The certificate a new TLS connection is given; with `greeting`, also the first line the server sends (IMAPS). */
function handshake(port: number, ca?: string, greeting = false): Promise<{ cert: PeerCertificate; authorized: boolean; firstData: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port, servername: NAMES[0], ...(ca ? { ca } : {}), rejectUnauthorized: false, timeout: 5000 });
    sock.once('secureConnect', () => {
      const result = { cert: sock.getPeerCertificate(), authorized: sock.authorized };
      if (!greeting) {
        sock.end();
        resolve({ ...result, firstData: '' });
        return;
      }
      sock.once('data', (d: Buffer) => { sock.end(); resolve({ ...result, firstData: d.toString() }); });
    });
    sock.once('timeout', () => sock.destroy(new Error(`TLS to ${port} timed out`)));
    sock.once('error', reject);
  });
}

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

/** Retries until a new connection presents a certificate other than `oldFingerprint` (the TLS source reloads on file change). */
async function newCertificateOn(port: number, oldFingerprint: string, ca: string, greeting = false) {
  for (let i = 0; i < 100; i++) {
    const r = await handshake(port, ca, greeting);
    if (r.cert.fingerprint256 !== oldFingerprint) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`port ${port} still presents the old certificate`);
}

test('a certificate about to expire is renewed from Pebble over HTTP-01 and served on HTTPS and IMAPS', async () => {
  const s = await startWithCertificate('renew', { names: [NAMES[0]!], days: 1 }, httpPort);
  const state = await waitForState(s.stateDir, (x) => x.lastAttempt !== null);
  assert.equal(state.lastError, null, `renewal failed: ${state.lastError}\n${pebble.logs()}`);
  assert.ok(state.lastRenewal);
  assert.equal(state.consecutiveFailures, 0);

  const root = (await pebble.management('/roots/0')).body;
  const installed = await readFile(s.certFile, 'utf8');
  const leaf = new X509Certificate(installed);
  assert.equal(state.notAfter, new Date(leaf.validTo).toISOString());
  for (const n of NAMES) assert.equal(leaf.checkHost(n), n);
  assert.ok(leaf.verify(new X509Certificate((await pebble.management('/intermediates/0')).body).publicKey), 'signed by Pebble');
  assert.equal((await stat(s.keyFile)).mode & 0o777, 0o600);
  assert.equal((await stat(join(s.stateDir, ACME_ACCOUNT_KEY_FILENAME))).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(join(s.stateDir, 'acme-challenge')), [], 'challenge files removed after the order');

  const old = fingerprint(s.initialCert);
  const https = await newCertificateOn(s.httpsPort, old, root);
  assert.equal(https.cert.fingerprint256, leaf.fingerprint256);
  assert.ok(https.authorized, 'HTTPS chain verifies against Pebble\'s root');
  const imaps = await newCertificateOn(s.imapsPort, old, root, true);
  assert.equal(imaps.cert.fingerprint256, leaf.fingerprint256);
  assert.ok(imaps.authorized, 'IMAPS chain verifies against Pebble\'s root');
  assert.match(imaps.firstData, /^\* OK/);
  assert.equal(s.server.tls.info().fingerprint256, leaf.fingerprint256);

  const check = await checkAcmeRenewal({ enabled: true, stateDir: s.stateDir, now: new Date() });
  assert.equal(check.status, 'ok', check.message);
  await s.server.stop(0);
});

test('a certificate with plenty of days left is not renewed', async () => {
  const s = await startWithCertificate('not-due', { names: NAMES, days: 60 }, 0);
  const state = await waitForState(s.stateDir, () => true);
  assert.equal(state.lastAttempt, null);
  assert.equal(state.lastError, null);
  assert.ok(state.lastSuccess);
  assert.equal(await readFile(s.certFile, 'utf8'), s.initialCert);
  assert.equal(state.notAfter, new Date(new X509Certificate(s.initialCert).validTo).toISOString());
  await s.server.stop(0);
});

test('a failing order keeps the old certificate, records the error and the doctor fails', async () => {
  // The http listener is off, so Pebble's VA finds nothing on its HTTP-01 port and the authorization fails.
  const s = await startWithCertificate('failing', { names: NAMES, days: 1 }, 0);
  const state = await waitForState(s.stateDir, (x) => x.lastAttempt !== null);
  assert.match(state.lastError ?? '', /connection refused|unauthorized|invalid/i, 'the CA\'s validation error is recorded');
  assert.equal(state.consecutiveFailures, 1);
  assert.equal(state.lastSuccess, null);
  assert.ok(Date.parse(state.nextCheck) > Date.parse(state.lastCheck), 'a retry is scheduled');
  assert.equal(await readFile(s.certFile, 'utf8'), s.initialCert);
  const r = await handshake(s.httpsPort);
  assert.equal(r.cert.fingerprint256, fingerprint(s.initialCert));

  const check = await checkAcmeRenewal({ enabled: true, stateDir: s.stateDir, now: new Date() });
  assert.equal(check.status, 'fail');
  assert.match(check.message, /failed/);
  assert.match(check.fix, /port 80/);
  await s.server.stop(0);

  // A restart (systemd's Restart=on-failure) keeps the backoff instead of hitting the CA again at once.
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb(); } });
  const again = await startServer(s.config, { logger: pino({ level: 'info' }, sink) });
  servers.push(again);
  for (let i = 0; i < 50 && !lines.some((l) => l.includes('waiting for the retry time')); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(lines.some((l) => l.includes('waiting for the retry time')), lines.join(''));
  assert.equal((await readRenewalState(s.stateDir))?.lastCheck, state.lastCheck);
  await again.stop(0);
});

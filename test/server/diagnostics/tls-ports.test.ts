// TLS, port and outbound-25 checks against real listeners on loopback: smtp-server (the library Postern's SMTP
// side uses) for STARTTLS on 25/587, Node TLS servers for the implicit-TLS ports, with certificates made by
// openssl: valid, expired, wrong name, nearly expired and self-signed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { SMTPServer } from 'smtp-server';
import { ensureDebianPackages } from '../../support/debian.ts';
import { freePort } from '../../support/ports.ts';
import { makeTestCa } from './test-pki.ts';
import { checkTls, MAIL_TLS_SERVICES } from '../../../src/server/diagnostics/tls.ts';
import { checkInboundPorts, checkOutbound25, MAIL_PORTS } from '../../../src/server/diagnostics/ports.ts';
import type { CheckResult } from '../../../src/server/diagnostics/check.ts';

ensureDebianPackages(['openssl']);

const HOST = 'mail.example.test';
const DAY = 86_400_000;
let dir: string;
let caPem: string;
const closers: (() => Promise<void>)[] = [];
const good = new Map<number, number>();
const bad = new Map<number, number>();
let closedPort: number;

function listenSmtp(cert: { cert: string; key: string }, offerStarttls: boolean): Promise<number> {
  const server = new SMTPServer({ key: cert.key, cert: cert.cert, authOptional: true, hideSTARTTLS: !offerStarttls, logger: false,
    onData(stream, _s, cb) { stream.resume(); stream.on('end', () => cb()); } });
  server.on('error', () => {});
  closers.push(() => new Promise((r) => server.close(() => r())));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.server.address() as { port: number }).port)));
}

function listenTls(cert: { cert: string; key: string }): Promise<number> {
  const server: TlsServer = createTlsServer({ key: cert.key, cert: cert.cert }, (s) => s.on('error', () => {}));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-doctor-tls-'));
  const ca = await makeTestCa(join(dir, 'ca'));
  caPem = ca.certPem;
  const now = Date.now();
  const valid = await ca.issue('valid', [HOST], new Date(now - DAY), new Date(now + 80 * DAY));
  const expired = await ca.issue('expired', [HOST], new Date(now - 100 * DAY), new Date(now - 10 * DAY));
  const wrongName = await ca.issue('wrong', ['www.example.test'], new Date(now - DAY), new Date(now + 80 * DAY));
  const soon = await ca.issue('soon', [HOST], new Date(now - 70 * DAY), new Date(now + 10 * DAY));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${HOST}`,
    '-addext', `subjectAltName=DNS:${HOST}`, '-days', '60', '-keyout', join(dir, 'self.key'), '-out', join(dir, 'self.crt')], { stdio: 'pipe' });
  const selfSigned = { cert: readFileSync(join(dir, 'self.crt'), 'utf8'), key: readFileSync(join(dir, 'self.key'), 'utf8') };

  good.set(25, await listenSmtp(valid, true));
  good.set(587, await listenSmtp(valid, true));
  for (const p of [465, 993, 995, 443]) good.set(p, await listenTls(valid));

  bad.set(25, await listenSmtp(expired, true));
  bad.set(587, await listenSmtp(valid, false));
  bad.set(465, await listenTls(wrongName));
  bad.set(993, await listenTls(soon));
  bad.set(995, await listenTls(selfSigned));
  // A port nothing listens on: the kernel handed it out and it was closed again.
  closedPort = await freePort();
  bad.set(443, closedPort);
});

after(async () => {
  await Promise.all(closers.map((c) => c()));
  await rm(dir, { recursive: true, force: true });
});

const byId = (rs: CheckResult[]) => Object.fromEntries(rs.map((r) => [r.id, r]));

test('valid certificates on every mail port (STARTTLS on 25/587, implicit elsewhere) are ok', async () => {
  const results = await checkTls({ host: '127.0.0.1', hostname: HOST, services: MAIL_TLS_SERVICES, portFor: (p) => good.get(p)!, ca: caPem, now: new Date() });
  assert.deepEqual(results.filter((r) => r.status !== 'ok'), []);
  assert.equal(results.length, 6);
  assert.match(byId(results)['tls.25']!.message, /SMTP MX \(STARTTLS\) on port 25: certificate for mail\.example\.test valid, trusted, (79|80) days left/);
});

test('expired, wrong-name, nearly expired, self-signed, no STARTTLS and no listener each fail with a fix', async () => {
  const r = byId(await checkTls({ host: '127.0.0.1', hostname: HOST, services: MAIL_TLS_SERVICES, portFor: (p) => bad.get(p)!, ca: caPem, now: new Date(), timeoutMs: 3000 }));
  assert.equal(r['tls.25']!.status, 'fail');
  assert.match(r['tls.25']!.message, /certificate expired on \d{4}-\d\d-\d\d/);
  assert.match(r['tls.25']!.fix, /pulumi up/);
  assert.equal(r['tls.587']!.status, 'fail');
  assert.match(r['tls.587']!.message, /does not offer STARTTLS/);
  assert.equal(r['tls.465']!.status, 'fail');
  assert.match(r['tls.465']!.message, /not valid for mail\.example\.test \(it covers DNS:www\.example\.test\)/);
  assert.equal(r['tls.993']!.status, 'fail');
  assert.match(r['tls.993']!.message, /expires in (9|10) days/);
  assert.equal(r['tls.995']!.status, 'fail');
  assert.match(r['tls.995']!.message, /does not chain to a trusted root \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
  assert.equal(r['tls.443']!.status, 'fail');
  assert.match(r['tls.443']!.message, /no TLS session: .*ECONNREFUSED/);
});

test('the same valid certificate fails when the CA is not trusted', async () => {
  const results = await checkTls({ host: '127.0.0.1', hostname: HOST, services: [MAIL_TLS_SERVICES[2]!], portFor: (p) => good.get(p)!, now: new Date() });
  assert.equal(results[0]!.status, 'fail');
  assert.match(results[0]!.message, /does not chain to a trusted root \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
});

test('inbound ports: listening ones ok, a closed one fails naming the firewall fix', async () => {
  const map = new Map(good);
  map.set(80, closedPort);
  const r = byId(await checkInboundPorts('127.0.0.1', MAIL_PORTS, { portFor: (p) => map.get(p)!, timeoutMs: 3000 }));
  for (const p of [25, 465, 587, 993, 995, 443]) assert.equal(r[`port.${p}`]!.status, 'ok', `port ${p}`);
  assert.equal(r['port.80']!.status, 'fail');
  assert.match(r['port.80']!.fix, /firewall/);
});

test('outbound 25: an answering MX is ok; a blocked one fails with the relay fix, or warns when a relay is set', async () => {
  const reachable = await checkOutbound25([{ host: '127.0.0.1', port: closedPort }, { host: '127.0.0.1', port: good.get(25)! }], false, 3000);
  assert.equal(reachable.status, 'ok');
  assert.match(reachable.message, /answered 220/);
  const blocked = await checkOutbound25([{ host: '127.0.0.1', port: closedPort }], false, 3000);
  assert.equal(blocked.status, 'fail');
  assert.match(blocked.fix, /postern:relay\.host/);
  const relayed = await checkOutbound25([{ host: '127.0.0.1', port: closedPort }], true, 3000);
  assert.equal(relayed.status, 'warn');
});

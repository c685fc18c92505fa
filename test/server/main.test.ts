// The server runtime in-process: config file loading, every HTTPS/HTTP endpoint over real sockets with node's
// client, limits, ACME challenge files, certificate reload without restart, drain on stop.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { mkdtemp, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { loadServerConfigFile, reportConfigErrors, startServer } from '../../src/server/main.ts';
import type { RunningServer } from '../../src/server/main.ts';
import { createWebService } from '../../src/server/web/service.ts';
import { createSelfSignedCertificate } from '../../src/server/self-signed.ts';
import { fetchUrl } from '../support/https-fetch.ts';

const POLICY = 'version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n';
const AUTOCONFIG = '<?xml version="1.0"?><clientConfig version="1.1"><emailProvider id="example.com"/></clientConfig>\n';
const AUTODISCOVER = '<?xml version="1.0"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"/>\n';
const MOBILECONFIG = '<?xml version="1.0"?><plist version="1.0"><dict/></plist>\n';
const OUTLOOK_REQUEST = '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@example.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>';

function yamlConfig(extra: string): string {
  return [
    'domain: example.com',
    'hostname: mail.example.com',
    'stateDir: state',
    'listenAddress: 127.0.0.1',
    'ports: { smtp: 0, submission: 0, submissions: 0, imap: 0, imaps: 0, pop3: 0, pop3s: 0, https: 443, http: 80 }',
    'tls: { certFile: tls/cert.pem, keyFile: tls/key.pem }',
    `mtaSts: { mode: enforce, policy: ${JSON.stringify(POLICY)} }`,
    `clientConfig: { autoconfigXml: ${JSON.stringify(AUTOCONFIG)}, autodiscoverXml: ${JSON.stringify(AUTODISCOVER)}, mobileconfig: ${JSON.stringify(MOBILECONFIG)} }`,
    extra,
  ].join('\n') + '\n';
}

async function writeCert(dir: string, serialNumber: string): Promise<string> {
  const pair = await createSelfSignedCertificate({ names: ['mail.example.com', 'mta-sts.example.com', 'localhost', '127.0.0.1'], days: 30, serialNumber });
  // Written beside and renamed in, as a renewal does: the server never reads a half-written file.
  await writeFile(join(dir, 'key.pem.new'), pair.key, { mode: 0o600 });
  await writeFile(join(dir, 'cert.pem.new'), pair.cert);
  await rename(join(dir, 'key.pem.new'), join(dir, 'key.pem'));
  await rename(join(dir, 'cert.pem.new'), join(dir, 'cert.pem'));
  return pair.cert;
}

function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

/** Raw request over TLS (for requests node's client refuses to send); returns everything the server sent. */
function rawTls(port: number, ca: string, write: (s: import('node:tls').TLSSocket) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => write(s));
    let data = '';
    s.setEncoding('utf8').on('data', (d: string) => { data += d; });
    s.on('close', () => resolve(data));
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? resolve(data) : reject(e)));
  });
}

const waitFor = async (what: string, check: () => Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('server runtime (in-process)', () => {
  let dir: string;
  let server: RunningServer;
  let ca: string;
  let https: string;
  let http: string;
  const log = captureLogger();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-main-'));
    await mkdir(join(dir, 'tls'));
    ca = await writeCert(join(dir, 'tls'), '0a01');
    await writeFile(join(dir, 'server.yaml'), yamlConfig(''));
    const loaded = loadServerConfigFile(join(dir, 'server.yaml'));
    assert.ok(loaded.ok, loaded.ok ? '' : loaded.errors.join('\n'));
    server = await startServer(loaded.value, {
      ephemeralPorts: true, logger: log.logger,
      factories: [createWebService({
        maxHeaderBytes: 4096, maxBodyBytes: 2048, headersTimeoutMs: 700, requestTimeoutMs: 3000, timeoutCheckIntervalMs: 100, handshakeTimeoutMs: 500,
      })],
    });
    https = server.listeners.find((l) => l.scheme === 'https')!.url;
    http = server.listeners.find((l) => l.scheme === 'http')!.url;
  });
  after(async () => {
    await server?.stop(0);
    await rm(dir, { recursive: true, force: true });
  });

  test('relative paths in the config file are taken from its folder; listeners bind the ephemeral ports they report', () => {
    const loaded = loadServerConfigFile(join(dir, 'server.yaml'));
    assert.ok(loaded.ok);
    assert.equal(loaded.value.stateDir, join(dir, 'state'));
    assert.equal(loaded.value.tls.certFile, join(dir, 'tls', 'cert.pem'));
    assert.deepEqual(server.listeners.map((l) => l.scheme), ['https', 'http']);
    for (const l of server.listeners) assert.match(l.url, /^https?:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(new URL(https).port, '443');
  });

  test('serves the MTA-STS policy as text/plain with security headers', async () => {
    const r = await fetchUrl(`${https}/.well-known/mta-sts.txt`, { ca, servername: 'mta-sts.example.com' });
    assert.equal(r.status, 200);
    assert.equal(r.body, POLICY);
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(r.headers['strict-transport-security'], 'max-age=31536000');
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.match(String(r.headers['content-security-policy']), /default-src 'none'/);
  });

  test('serves autoconfig at both Thunderbird paths, autodiscover for GET and Outlook POST, and the Apple profile', async () => {
    for (const path of ['/mail/config-v1.1.xml', '/.well-known/autoconfig/mail/config-v1.1.xml']) {
      const r = await fetchUrl(`${https}${path}`, { ca });
      assert.equal(r.status, 200, path);
      assert.equal(r.body, AUTOCONFIG);
      assert.equal(r.headers['content-type'], 'application/xml; charset=utf-8');
    }
    const get = await fetchUrl(`${https}/autodiscover/autodiscover.xml`, { ca });
    assert.equal(get.body, AUTODISCOVER);
    // Outlook's POST for an address of ours: the answer names it as the login, for the configured host.
    const post = await fetchUrl(`${https}/Autodiscover/Autodiscover.xml`, { ca, method: 'POST', body: OUTLOOK_REQUEST, headers: { 'content-type': 'text/xml' } });
    assert.equal(post.status, 200);
    assert.equal(post.headers['content-type'], 'application/xml; charset=utf-8');
    assert.match(post.body, /<LoginName>alice@example\.com<\/LoginName>/);
    assert.match(post.body, /<Server>mail\.example\.com<\/Server>\s*<Port>993<\/Port>/);
    // Another domain's address, or markup in it, gets the generic document.
    for (const other of ['bob@other.org', 'a<b@example.com', '"><x@example.com']) {
      const r = await fetchUrl(`${https}/autodiscover/autodiscover.xml`, { ca, method: 'POST', body: OUTLOOK_REQUEST.replace('alice@example.com', other) });
      assert.equal(r.body, AUTODISCOVER, other);
    }
    const apple = await fetchUrl(`${https}/.mobileconfig`, { ca });
    assert.equal(apple.status, 200);
    assert.equal(apple.body, MOBILECONFIG);
    assert.equal(apple.headers['content-type'], 'application/x-apple-aspen-config');
    assert.equal(apple.headers['content-disposition'], 'attachment; filename="example.com.mobileconfig"');
  });

  test('HEAD answers headers only', async () => {
    const r = await fetchUrl(`${https}/.well-known/mta-sts.txt`, { ca, method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.body, '');
    assert.equal(r.headers['content-length'], String(Buffer.byteLength(POLICY)));
  });

  test('/healthz reports every service and its listeners', async () => {
    const r = await fetchUrl(`${https}/healthz`, { ca });
    assert.equal(r.status, 200);
    const body = JSON.parse(r.body) as { ok: boolean; services: { name: string; state: string; listeners: { url: string }[] }[] };
    assert.equal(body.ok, true);
    assert.deepEqual(body.services.map((s) => [s.name, s.state]), [['web', 'running']]);
    assert.deepEqual(body.services[0]!.listeners.map((l) => l.url), [https, http]);
  });

  test('unknown paths answer 404, wrong methods 405 with Allow', async () => {
    assert.equal((await fetchUrl(`${https}/nope`, { ca })).status, 404);
    assert.equal((await fetchUrl(`${https}/.well-known/mta-sts.txt/`, { ca })).status, 404);
    const del = await fetchUrl(`${https}/.well-known/mta-sts.txt`, { ca, method: 'DELETE' });
    assert.equal(del.status, 405);
    assert.equal(del.headers.allow, 'GET, HEAD');
    const post = await fetchUrl(`${https}/healthz`, { ca, method: 'POST', body: '' });
    assert.equal(post.status, 405);
  });

  test('an oversized body answers 413, oversized headers 431', async () => {
    const big = await fetchUrl(`${https}/autodiscover/autodiscover.xml`, { ca, method: 'POST', body: 'x'.repeat(4096) });
    assert.equal(big.status, 413);
    const headers = await rawTls(Number(new URL(https).port), ca, (s) => {
      s.write(`GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Filler: ${'a'.repeat(8192)}\r\n\r\n`);
    });
    assert.match(headers, /^HTTP\/1\.1 431 /);
  });

  test('a client sending its headers too slowly (slowloris) gets 408 and is disconnected', async () => {
    let sent = 0;
    const reply = await rawTls(Number(new URL(https).port), ca, (s) => {
      s.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
      // One header byte at a time, never finishing; bounded so a broken server cannot hang the test.
      const t = setInterval(() => {
        if (s.destroyed || sent >= 200) return clearInterval(t);
        s.write('X');
        sent++;
      }, 50);
      s.on('close', () => clearInterval(t));
    });
    assert.match(reply, /^HTTP\/1\.1 408 /);
    assert.ok(sent < 200, 'the server cut the slow client before it finished');
  });

  test('a client that connects and sends nothing (no TLS handshake, or no request after it) is disconnected', async () => {
    for (const url of [https, http]) {
      const closedBy = await new Promise<string>((resolve) => {
        const s = tcpConnect({ host: '127.0.0.1', port: Number(new URL(url).port) });
        s.resume();
        // The test's own bound: if the server never hangs up, this side does, and the assertion fails.
        const giveUp = setTimeout(() => { resolve('client'); s.destroy(); }, 15_000);
        s.on('close', () => { clearTimeout(giveUp); resolve('server'); });
        s.on('error', () => {});
      });
      assert.equal(closedBy, 'server', url);
    }
    // Handshake done, then silence.
    const afterHandshake = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: Number(new URL(https).port), ca, servername: 'localhost' });
      s.resume(); // read whatever the server says before hanging up, so its close is seen
      const giveUp = setTimeout(() => { resolve('client'); s.destroy(); }, 15_000);
      s.on('close', () => { clearTimeout(giveUp); resolve('server'); });
      s.on('error', () => {});
    });
    assert.equal(afterHandshake, 'server');
  });

  test('plain HTTP serves ACME challenge files by valid token only', async () => {
    const challenges = join(dir, 'state', 'acme-challenge');
    await mkdir(challenges, { recursive: true });
    await writeFile(join(challenges, 'tok_EN-123'), 'tok_EN-123.thumbprint');
    await writeFile(join(dir, 'secret.txt'), 'secret');
    await symlink(join(dir, 'secret.txt'), join(challenges, 'linked'));
    const ok = await fetchUrl(`${http}/.well-known/acme-challenge/tok_EN-123`);
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'tok_EN-123.thumbprint');
    assert.equal((await fetchUrl(`${http}/.well-known/acme-challenge/missing`)).status, 404);
    assert.equal((await fetchUrl(`${http}/.well-known/acme-challenge/linked`)).status, 404, 'symlinks are not followed');
    for (const bad of ['..%2f..%2fsecret.txt', 'a.b', '..%5csecret.txt', 'a/b', 'a%00b', '']) {
      const r = await fetchUrl(`${http}/.well-known/acme-challenge/${bad}`);
      assert.equal(r.status, 400, bad);
      assert.doesNotMatch(r.body, /secret/);
    }
    assert.equal((await fetchUrl(`${http}/.well-known/acme-challenge/tok_EN-123`, { method: 'POST', body: '' })).status, 405);
  });

  test('plain HTTP redirects everything else to HTTPS on the bound port, keeping path and query', async () => {
    const port = new URL(https).port;
    const r = await fetchUrl(`${http}/mail/config-v1.1.xml?emailaddress=a%40example.com`, { headers: { host: 'autoconfig.example.com' } });
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, `https://autoconfig.example.com:${port}/mail/config-v1.1.xml?emailaddress=a%40example.com`);
    const bad = await fetchUrl(`${http}/x`, { headers: { host: 'evil"<>.com' } });
    assert.equal(bad.headers.location, `https://mail.example.com:${port}/x`);
  });

  test('a renewed certificate is used for new connections without a restart; a broken one is refused and logged', async () => {
    const before = await fetchUrl(`${https}/healthz`, { ca });
    assert.equal(before.serial, '0A01');
    const newCa = await writeCert(join(dir, 'tls'), '0b02');
    // The folder watch picks the new files up; no signal, no restart.
    await waitFor('the renewed certificate', async () => (await fetchUrl(`${https}/healthz`, { ca: newCa }).catch(() => null))?.serial === '0B02');
    // Clients without SNI (by IP address) get the new certificate too.
    const raw = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: Number(new URL(https).port), ca: newCa }, () => {
        resolve(s.getPeerCertificate().serialNumber);
        s.destroy();
      });
      s.on('error', reject);
    });
    assert.equal(raw, '0B02');
    await writeFile(join(dir, 'tls', 'cert.pem.new'), '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n');
    await rename(join(dir, 'tls', 'cert.pem.new'), join(dir, 'tls', 'cert.pem'));
    assert.equal(server.tls.reload(), false);
    await waitFor('the reload error in the log', async () => log.lines.some((l) => l.includes('tls reload failed')));
    const still = await fetchUrl(`${https}/healthz`, { ca: newCa });
    assert.equal(still.serial, '0B02');
    assert.equal(still.status, 200);
  });
});

describe('server runtime: listeners off, MTA-STS none, per-address connection limit, drain', () => {
  let dir: string;
  let server: RunningServer;
  let ca: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-main2-'));
    await mkdir(join(dir, 'tls'));
    ca = await writeCert(join(dir, 'tls'), '0c03');
    await writeFile(join(dir, 'server.json'), JSON.stringify({
      domain: 'example.com', hostname: 'mail.example.com', stateDir: join(dir, 'state'), listenAddress: '127.0.0.1',
      ports: { smtp: 0, submission: 0, submissions: 0, imap: 0, imaps: 0, pop3: 0, pop3s: 0, https: 443, http: 0 },
      tls: { certFile: 'tls/cert.pem', keyFile: 'tls/key.pem' },
      mtaSts: { mode: 'none', policy: POLICY },
      limits: { maxConnectionsPerIp: 3 },
    }));
    const loaded = loadServerConfigFile(join(dir, 'server.json'));
    assert.ok(loaded.ok, loaded.ok ? '' : loaded.errors.join('\n'));
    server = await startServer(loaded.value, { ephemeralPorts: true, logger: pino({ level: 'silent' }) });
  });
  after(async () => {
    await server?.stop(0);
    await rm(dir, { recursive: true, force: true });
  });

  test('a port of 0 turns its listener off; MTA-STS mode none and empty documents answer 404', async () => {
    assert.deepEqual(server.listeners.map((l) => l.scheme), ['https']);
    const https = server.listeners[0]!.url;
    assert.equal((await fetchUrl(`${https}/.well-known/mta-sts.txt`, { ca })).status, 404);
    assert.equal((await fetchUrl(`${https}/mail/config-v1.1.xml`, { ca })).status, 404);
  });

  test('connections beyond the per-address limit are dropped; the others keep working', async () => {
    const port = Number(new URL(server.listeners[0]!.url).port);
    const open = await Promise.all([1, 2, 3].map(() => new Promise<import('node:tls').TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => resolve(s));
      s.on('error', reject);
    })));
    const fourth = await new Promise<string>((resolve) => {
      const s = tcpConnect({ host: '127.0.0.1', port });
      let data = '';
      s.on('data', (d) => { data += String(d); });
      s.on('error', () => {});
      s.on('close', () => resolve(data));
    });
    assert.equal(fourth, '', 'the fourth connection was closed without an answer');
    const reply = await new Promise<string>((resolve) => {
      const s = open[0]!;
      let data = '';
      s.setEncoding('utf8').on('data', (d: string) => { data += d; if (data.includes('"ok"')) resolve(data); });
      s.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    });
    assert.match(reply, /^HTTP\/1\.1 200 /);
    for (const s of open) s.destroy();
    // Once they are closed, their slots are free again.
    await waitFor('the freed slots', async () => (await fetchUrl(`${server.listeners[0]!.url}/healthz`, { ca }).catch(() => null))?.status === 200);
  });

  test('stop() refuses new connections and lets an in-flight request finish', async () => {
    const url = new URL(server.listeners[0]!.url);
    const port = Number(url.port);
    // A request whose body is still arriving when the stop begins.
    const inFlight = new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
        s.write(`POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${OUTLOOK_REQUEST.length}\r\n\r\n`);
        s.write(OUTLOOK_REQUEST.slice(0, 20));
        stopping = server.stop(10_000);
        setTimeout(() => s.write(OUTLOOK_REQUEST.slice(20)), 300);
      });
      let data = '';
      s.setEncoding('utf8').on('data', (d: string) => { data += d; });
      s.on('close', () => resolve(data));
      s.on('error', reject);
    });
    let stopping: Promise<void> | undefined;
    await waitFor('the stop to begin', async () => stopping !== undefined);
    const refused = await new Promise<string>((resolve) => {
      const s = tcpConnect({ host: '127.0.0.1', port });
      s.on('connect', () => { s.destroy(); resolve('connected'); });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    assert.equal(refused, 'ECONNREFUSED');
    const reply = await inFlight;
    assert.match(reply, /^HTTP\/1\.1 404 /, 'the request was answered (autodiscover is empty here, so 404)');
    assert.match(reply, /\r\nConnection: close\r\n/i);
    await stopping;
    assert.deepEqual(server.health().services.map((s) => [s.name, s.state]), [['web', 'stopped'], ['queue', 'stopped']]);
  });
});

describe('server config files', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'postern-config-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  const base = 'domain: example.org\nhostname: mail.example.org\nstateDir: s\ntls: { certFile: c, keyFile: k }\n';
  const cases: [string, string, string[]][] = [
    ['typo.yaml', base + 'ports: { htps: 443 }\n', ['ports.htps: unknown key (did you mean "https"?)']],
    ['types.yaml', 'domain: example.org\nhostname: mail.example.org\nstateDir: s\ntls: { certFile: c }\nports: { https: "443" }\nmtaSts: { mode: strict }\n',
      ['tls.keyFile: found nothing; expected string', 'ports.https: found "443"; expected number', 'mtaSts.mode: found "strict"; expected one of "none", "testing", "enforce"']],
    ['missing.yaml', 'hostname: mail.example.org\n', ['domain: found nothing; expected string', 'stateDir: found nothing; expected string', 'tls: found nothing; expected object']],
    ['port.json', '{"domain":"e.org","hostname":"m.e.org","stateDir":"s","tls":{"certFile":"c","keyFile":"k"},"ports":{"imaps":70000}}',
      ['ports.imaps: found 70000; expected number to be <=65535']],
    ['user.yaml', base + 'users: [{ address: a@example.org, passwordHash: plain }]\n',
      ['users[0].passwordHash: found "plain"; expected a string starting with "$argon2id$"']],
    ['list.yaml', '- a\n- b\n', ['(root): found ["a","b"]; expected object']],
  ];
  for (const [name, text, expected] of cases) {
    test(`${name}: every problem reported, each naming its key`, async () => {
      await writeFile(join(dir, name), text);
      const r = loadServerConfigFile(join(dir, name));
      assert.equal(r.ok, false);
      assert.deepEqual(r.ok ? [] : [...r.errors].sort(), [...expected].sort());
    });
  }

  test('a YAML syntax error names file, line and column; an unreadable file says why', async () => {
    await writeFile(join(dir, 'syntax.yaml'), 'domain: example.org\nports: { https: 443\n');
    const r = loadServerConfigFile(join(dir, 'syntax.yaml'));
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.errors[0]!, /syntax\.yaml:\d+:\d+: /);
    const none = loadServerConfigFile(join(dir, 'nope.yaml'));
    assert.deepEqual(none.ok ? [] : none.errors, [`${join(dir, 'nope.yaml')}: cannot read: ENOENT`]);
    const folder = loadServerConfigFile(dir);
    assert.deepEqual(folder.ok ? [] : folder.errors, [`${dir}: not a regular file`]);
    let printed = '';
    const code = reportConfigErrors('x.yaml', ['a: found 1; expected string', 'b: unknown key'], new Writable({ write(c, _e, cb) { printed += String(c); cb(); } }));
    assert.equal(code, 2);
    assert.equal(printed, 'postern: invalid server config x.yaml:\n  a: found 1; expected string\n  b: unknown key\n');
  });
});

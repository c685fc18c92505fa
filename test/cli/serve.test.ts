// `postern serve` as a user runs it (child process through bin/postern.js): --dev prints its listeners and
// seeded user, serves every document to node's client, curl and Python; state is kept between runs; a config
// file's errors name their keys; SIGHUP reloads the certificate; SIGTERM drains an in-flight request and exits 0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { createSelfSignedCertificate } from '../../src/server/self-signed.ts';
import { ensureDebianPackages } from '../support/debian.ts';
import { fetchUrl } from '../support/https-fetch.ts';
import { runPostern, startPostern } from '../support/postern-process.ts';
import type { PosternProcess } from '../support/postern-process.ts';

ensureDebianPackages(['curl', 'python3']);
const run = promisify(execFile);

const PYTHON_FETCH = `
import json, ssl, sys, urllib.error, urllib.request
ca, base = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
def fetch(req):
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return [r.status, r.headers['Content-Type'], r.read().decode()]
    except urllib.error.HTTPError as e:
        return [e.code, e.headers['Content-Type'], '']
out = {}
for path in ['/.well-known/mta-sts.txt', '/.mobileconfig', '/mail/config-v1.1.xml', '/healthz']:
    out[path] = fetch(base + path)
out['POST autodiscover'] = fetch(urllib.request.Request(base + '/autodiscover/autodiscover.xml', data=b'<Autodiscover/>', method='POST', headers={'Content-Type': 'text/xml'}))
print(json.dumps(out))
`;

function portOf(url: string): number {
  return Number(new URL(url).port);
}

describe('postern serve --dev', () => {
  let dir: string;
  let proc: PosternProcess;
  let ca: string;
  let https: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-dev-'));
    proc = await startPostern(['serve', '--dev', '--state', join(dir, 'dev'), '--ports', 'auto']);
    ca = await readFile(join(dir, 'dev', 'tls', 'cert.pem'), 'utf8');
    https = proc.urls.get('https')!;
  });
  after(async () => {
    await proc?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  test('prints one line per listener and the seeded user, whose password is stored 0600', async () => {
    for (const scheme of ['https', 'http', 'smtp', 'submission', 'smtps', 'imap', 'imaps', 'pop3', 'pop3s']) {
      assert.match(proc.urls.get(scheme) ?? '', new RegExp(`^${scheme}://127\\.0\\.0\\.1:\\d+$`), scheme);
    }
    const user = /^\s+user\s+(\S+)$/m.exec(proc.stdout())?.[1];
    const password = /^\s+password\s+(\S+)$/m.exec(proc.stdout())?.[1];
    assert.equal(user, 'postmaster@example.test');
    assert.ok(password && password.length >= 16);
    const stored = JSON.parse(await readFile(join(dir, 'dev', 'dev-user.json'), 'utf8')) as { password: string };
    assert.equal(stored.password, password);
    assert.equal((await stat(join(dir, 'dev', 'dev-user.json'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'dev', 'tls', 'key.pem'))).mode & 0o777, 0o600);
  });

  test('node\'s https client gets the MTA-STS policy for mail.example.test, trusting the generated certificate', async () => {
    const r = await fetchUrl(`${https}/.well-known/mta-sts.txt`, { ca, servername: 'mta-sts.example.test' });
    assert.equal(r.status, 200);
    assert.match(r.body, /^version: STSv1\r\nmode: testing\r\nmx: mail\.example\.test\r\nmax_age: \d+\r\n/);
    assert.equal(r.headers['strict-transport-security'], undefined, 'no HSTS pinning of localhost in --dev');
  });

  test('curl verifies the certificate by name (SNI) and fetches the policy; plain HTTP redirects', async () => {
    const port = portOf(https);
    const { stdout } = await run('curl', ['-sS', '--fail', '--cacert', join(dir, 'dev', 'tls', 'cert.pem'),
      '--resolve', `mta-sts.example.test:${port}:127.0.0.1`, `https://mta-sts.example.test:${port}/.well-known/mta-sts.txt`]);
    assert.match(stdout, /^version: STSv1\r\n/);
    const head = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', `${proc.urls.get('http')}/mail/config-v1.1.xml`]);
    assert.equal(head.stdout, `301 https://127.0.0.1:${port}/mail/config-v1.1.xml`);
    const bad = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${https}/nope`, '--cacert', join(dir, 'dev', 'tls', 'cert.pem')]);
    assert.equal(bad.stdout, '404');
  });

  test('Python urllib with a verifying ssl context fetches the documents with their content types', async () => {
    const { stdout } = await run('python3', ['-c', PYTHON_FETCH, join(dir, 'dev', 'tls', 'cert.pem'), https]);
    const out = JSON.parse(stdout) as Record<string, [number, string, string]>;
    assert.equal(out['/.well-known/mta-sts.txt']![0], 200);
    assert.equal(out['/.well-known/mta-sts.txt']![1], 'text/plain; charset=utf-8');
    assert.equal(out['/healthz']![0], 200);
    assert.equal((JSON.parse(out['/healthz']![2]) as { ok: boolean }).ok, true);
    const types: Record<string, RegExp> = {
      '/.mobileconfig': /^application\/x-apple-aspen-config$/, '/mail/config-v1.1.xml': /^application\/xml/, 'POST autodiscover': /^application\/xml/,
    };
    for (const [key, type] of Object.entries(types)) {
      const [status, contentType, body] = out[key]!;
      assert.equal(status, 200, key);
      assert.match(contentType, type, key);
      assert.match(body, /mail\.example\.test/, key);
    }
    // The dev documents point clients at the dev ports.
    assert.match(out['/mail/config-v1.1.xml']![2], /<port>10993<\/port>/);
  });

  test('a mail client can use the printed credentials: nodemailer submits over smtps, curl reads it over imaps and pop3s', async () => {
    const password = /^\s+password\s+(\S+)$/m.exec(proc.stdout())![1]!;
    const smtps = new URL(proc.urls.get('smtps')!);
    const transport = nodemailer.createTransport({
      host: '127.0.0.1', port: Number(smtps.port), secure: true, auth: { user: 'postmaster@example.test', pass: password },
      tls: { ca, servername: 'mail.example.test' },
    });
    const sent = await transport.sendMail({ from: 'postmaster@example.test', to: 'postmaster@example.test', subject: 'dev round trip', text: 'hello' });
    transport.close();
    assert.deepEqual(sent.accepted, ['postmaster@example.test']);
    const cert = join(dir, 'dev', 'tls', 'cert.pem');
    // Delivery to the mailbox follows the 250 closely but not synchronously: look for the message a few times.
    let message = '';
    for (let i = 0; i < 50 && !message.includes('dev round trip'); i++) {
      if (i) await new Promise((r) => setTimeout(r, 100));
      // Until then curl finds no UID 1 (exit 78) and asks again.
      message = await run('curl', ['-sS', '--cacert', cert, '-u', `postmaster@example.test:${password}`, `${proc.urls.get('imaps')}/INBOX;UID=1`])
        .then((r) => r.stdout, (e: { code?: number }) => { if (e.code === 78) return ''; throw e; });
    }
    assert.match(message, /^Subject: dev round trip\r?$/m);
    const list = await run('curl', ['-sS', '--cacert', cert, '-u', `postmaster@example.test:${password}`, `${proc.urls.get('pop3s')}/`]);
    assert.match(list.stdout, /^1 \d+\r?$/m);
    const wrong = await run('curl', ['-sS', '--cacert', cert, '-u', 'postmaster@example.test:wrong', `${proc.urls.get('imaps')}/INBOX;UID=1`]).catch((e: { code: number }) => e);
    assert.equal((wrong as { code: number }).code, 67, 'curl: login denied');
  });

  test('a damaged stored password file is reported, not silently replaced', async () => {
    await mkdir(join(dir, 'damaged'));
    await writeFile(join(dir, 'damaged', 'dev-user.json'), '{"address": ');
    const r = await runPostern(['serve', '--dev', '--state', join(dir, 'damaged'), '--ports', 'auto']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^postern: cannot prepare the dev server: .*dev-user\.json is not valid JSON .*; delete it to make a new password$/m);
    assert.equal(await readFile(join(dir, 'damaged', 'dev-user.json'), 'utf8'), '{"address": ');
  });

  test('a second run on the same state folder reuses the certificate and the password', async () => {
    const first = proc.stdout();
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    proc = await startPostern(['serve', '--dev', '--state', join(dir, 'dev'), '--ports', 'auto']);
    const pw = (s: string) => /^\s+password\s+(\S+)$/m.exec(s)?.[1];
    assert.equal(pw(proc.stdout()), pw(first));
    const r = await fetchUrl(`${proc.urls.get('https')}/healthz`, { ca });
    assert.equal(r.status, 200);
  });
});

describe('postern serve --config', () => {
  let dir: string;
  const procs: PosternProcess[] = [];

  async function writeCert(serialNumber: string): Promise<string> {
    const pair = await createSelfSignedCertificate({ names: ['mail.example.org', 'localhost', '127.0.0.1'], days: 30, serialNumber });
    await writeFile(join(dir, 'tls', 'key.pem.tmp'), pair.key, { mode: 0o600 });
    await writeFile(join(dir, 'tls', 'cert.pem.tmp'), pair.cert);
    await rename(join(dir, 'tls', 'key.pem.tmp'), join(dir, 'tls', 'key.pem'));
    await rename(join(dir, 'tls', 'cert.pem.tmp'), join(dir, 'tls', 'cert.pem'));
    return pair.cert;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-serve-'));
    await mkdir(join(dir, 'tls'));
    await writeFile(join(dir, 'server.yaml'), [
      'domain: example.org', 'hostname: mail.example.org', 'stateDir: state', 'listenAddress: 127.0.0.1',
      'ports: { smtp: 0, submission: 0, submissions: 0, imap: 0, imaps: 0, pop3: 0, pop3s: 0, https: 443, http: 0 }',
      'tls: { certFile: tls/cert.pem, keyFile: tls/key.pem }',
      'mtaSts: { mode: testing, policy: "version: STSv1\\r\\nmode: testing\\r\\nmx: mail.example.org\\r\\nmax_age: 86400\\r\\n" }',
      'clientConfig: { autodiscoverXml: "<Autodiscover/>" }',
    ].join('\n') + '\n');
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await rm(dir, { recursive: true, force: true });
  });

  test('an invalid config file is refused: exit 2, one line per problem naming the key', async () => {
    await writeFile(join(dir, 'bad.yaml'), 'domain: example.org\nhostname: mail.example.org\nstateDir: s\ntls: { certFile: c }\nports: { https: "443", htps: 1 }\n');
    const r = await runPostern(['serve', '--config', join(dir, 'bad.yaml')]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trimEnd().split('\n').length, 4, 'a header line and one line per problem');
    assert.match(r.stderr, /^postern: invalid server config .*bad\.yaml:$/m);
    assert.match(r.stderr, /^  tls\.keyFile: found nothing; /m);
    assert.match(r.stderr, /^  ports\.https: found "443"; expected number$/m);
    assert.match(r.stderr, /^  ports\.htps: unknown key \(did you mean "https"\?\)$/m);
    const neither = await runPostern(['serve']);
    assert.notEqual(neither.code, 0);
    assert.match(neither.stderr, /exactly one of --dev or --config/);
  });

  test('a missing certificate stops the start with a clear error', async () => {
    await writeFile(join(dir, 'nocert.yaml'), 'domain: example.org\nhostname: mail.example.org\nstateDir: state2\nlistenAddress: 127.0.0.1\ntls: { certFile: none/cert.pem, keyFile: none/key.pem }\n');
    const r = await runPostern(['serve', '--config', join(dir, 'nocert.yaml'), '--ports', 'auto']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /postern: cannot start: .*none\/cert\.pem/);
  });

  test('SIGHUP after replacing the files: new connections see the new certificate serial', async () => {
    const ca1 = await writeCert('1001');
    const p = await startPostern(['serve', '--config', join(dir, 'server.yaml'), '--ports', 'auto']);
    procs.push(p);
    const https = p.urls.get('https')!;
    assert.equal((await fetchUrl(`${https}/healthz`, { ca: ca1 })).serial, '1001');
    const ca2 = await writeCert('2002');
    p.child.kill('SIGHUP');
    const end = Date.now() + 10_000;
    let serial: string | undefined;
    while (serial !== '2002' && Date.now() < end) {
      serial = (await fetchUrl(`${https}/healthz`, { ca: ca2 }).catch(() => null))?.serial;
      if (serial !== '2002') await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(serial, '2002');
    // Logs are written asynchronously: give the line a moment to arrive.
    for (let i = 0; i < 50 && !/SIGHUP: reloading tls certificate/.test(p.stderr()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(p.stderr(), /SIGHUP: reloading tls certificate/);
    assert.equal(p.child.exitCode, null, 'no restart');
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
  });

  test('SIGTERM: new connections are refused, a slow in-flight request completes, exit code 0', async () => {
    const ca = await writeCert('3003');
    const p = await startPostern(['serve', '--config', join(dir, 'server.yaml'), '--ports', 'auto', '--drain-seconds', '20']);
    procs.push(p);
    const port = portOf(p.urls.get('https')!);
    const body = '<Autodiscover><Request><EMailAddress>a@example.org</EMailAddress></Request></Autodiscover>';
    const socket = await new Promise<import('node:tls').TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => resolve(s));
      s.on('error', reject);
    });
    let reply = '';
    socket.setEncoding('utf8').on('data', (d: string) => { reply += d; });
    const closed = new Promise((r) => socket.on('close', r));
    socket.write(`POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
    await new Promise((r) => setTimeout(r, 100));
    p.child.kill('SIGTERM');
    // Wait until the listener is closed: connecting is refused from then on.
    const end = Date.now() + 10_000;
    let refused = false;
    while (!refused && Date.now() < end) {
      refused = await new Promise<boolean>((resolve) => {
        const s = tcpConnect({ host: '127.0.0.1', port });
        s.on('connect', () => { s.destroy(); resolve(false); });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
      });
      if (!refused) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(refused, 'new connections are refused after SIGTERM');
    assert.equal(p.child.exitCode, null, 'still draining the open request');
    socket.write(body.slice(10));
    await closed;
    assert.match(reply, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(reply, /\r\nconnection: close\r\n/i);
    assert.match(reply, /<LoginName>a@example\.org<\/LoginName>/, 'the complete answer to the complete request');
    assert.equal(await p.exited, 0);
  });
});

// `npm run build`'s script bundles the CLI and the server; the bundle runs on its own (from a folder with no
// node_modules anywhere above it) and serves HTTPS, both as `postern.js serve --dev` and `server.js --config`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { ensureDebianPackages } from '../support/debian.ts';
import { fetchUrl } from '../support/https-fetch.ts';
import { REPO_ROOT, startPostern } from '../support/postern-process.ts';
import type { PosternProcess } from '../support/postern-process.ts';

ensureDebianPackages(['curl']);
const run = promisify(execFile);
let dir: string;
let out: string;
const procs: PosternProcess[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-build-'));
  out = join(dir, 'dist');
  await run(process.execPath, [join(REPO_ROOT, 'scripts', 'build.ts'), '--outdir', out], { cwd: REPO_ROOT });
});
after(async () => {
  for (const p of procs) await p.kill();
  await rm(dir, { recursive: true, force: true });
});

test('the build writes an executable CLI bundle and a server bundle', async () => {
  const cli = await stat(join(out, 'postern.js'));
  assert.ok(cli.mode & 0o100, 'postern.js is executable');
  assert.match(await readFile(join(out, 'postern.js'), 'utf8'), /^#!\/usr\/bin\/env node\n/);
  await stat(join(out, 'server.js'));
});

test('the CLI bundle runs serve --dev outside the repository and serves the MTA-STS policy, then stops cleanly', async () => {
  const p = await startPostern(['serve', '--dev', '--state', join(dir, 'state'), '--ports', 'auto'], { script: join(out, 'postern.js'), cwd: dir });
  procs.push(p);
  const ca = await readFile(join(dir, 'state', 'tls', 'cert.pem'));
  const r = await fetchUrl(`${p.urls.get('https')}/.well-known/mta-sts.txt`, { ca, servername: 'mta-sts.example.test' });
  assert.equal(r.status, 200);
  assert.match(r.body, /^version: STSv1\r\nmode: testing\r\n/);
  const mobile = await fetchUrl(`${p.urls.get('https')}/.mobileconfig`, { ca });
  assert.equal(mobile.headers['content-type'], 'application/x-apple-aspen-config');
  assert.match(p.stderr(), /INFO: server started/, 'pretty logs work without worker transports');
  // The bundled mail path (smtp-server, pipeline with mailauth, store, IMAP) works too.
  const password = /^\s+password\s+(\S+)$/m.exec(p.stdout())![1]!;
  const transport = nodemailer.createTransport({
    host: '127.0.0.1', port: Number(new URL(p.urls.get('smtps')!).port), secure: true,
    auth: { user: 'postmaster@example.test', pass: password }, tls: { ca, servername: 'mail.example.test' },
  });
  await transport.sendMail({ from: 'postmaster@example.test', to: 'postmaster@example.test', subject: 'bundled', text: 'hi' });
  transport.close();
  let message = '';
  // Local delivery finishes after the 250: until then curl finds no UID 1 (exit 78) and asks again.
  let lastError: unknown = null;
  for (let i = 0; i < 50 && !message.includes('bundled'); i++) {
    if (i) await new Promise((r) => setTimeout(r, 100));
    try {
      message = (await run('curl', ['-sS', '--cacert', join(dir, 'state', 'tls', 'cert.pem'), '-u', `postmaster@example.test:${password}`,
        `${p.urls.get('imaps')}/INBOX;UID=1`])).stdout;
    } catch (err) {
      lastError = err;
    }
  }
  assert.ok(message.includes('bundled'), `message never readable over IMAP: ${String(lastError)}`);
  assert.match(message, /^Subject: bundled\r?$/m);
  p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0);
});

test('the server bundle runs from a config file and logs JSON lines', async () => {
  await writeFile(join(dir, 'server.json'), JSON.stringify({
    domain: 'example.net', hostname: 'mail.example.net', stateDir: 'state', listenAddress: '127.0.0.1',
    ports: { smtp: 0, submission: 0, submissions: 0, imap: 0, imaps: 0, pop3: 0, pop3s: 0, https: 443, http: 0 },
    // The dev run above made this certificate; any valid pair will do.
    tls: { certFile: 'state/tls/cert.pem', keyFile: 'state/tls/key.pem' },
  }));
  const p = await startPostern(['--config', join(dir, 'server.json'), '--ports', 'auto'], { script: join(out, 'server.js'), cwd: dir });
  procs.push(p);
  const r = await fetchUrl(`${p.urls.get('https')}/healthz`, { ca: await readFile(join(dir, 'state', 'tls', 'cert.pem')) });
  assert.equal(r.status, 200);
  for (let i = 0; i < 50 && !p.stderr().includes('"server started"'); i++) await new Promise((r) => setTimeout(r, 100));
  const started = p.stderr().split('\n').slice(0, -1).filter(Boolean).map((l) => JSON.parse(l) as { msg: string }).find((l) => l.msg === 'server started');
  assert.ok(started, 'a JSON "server started" line');
  p.child.kill('SIGINT');
  assert.equal(await p.exited, 0);
});

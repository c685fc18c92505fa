// SMTP listener lifecycle: a renewed certificate reaches clients that send no SNI (openssl s_client on 25, 587
// and 465), and stop() sends idle sessions away with 421 at once while a DATA transfer in flight still gets
// its 250 (raw sockets, so the exact replies and their order are visible).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import pino from 'pino';
import { ensureDebianPackages } from '../../support/debian.ts';
import { openSession } from '../../support/raw-smtp.ts';
import { startPostern } from '../../support/smtp-harness.ts';
import type { RunningPostern } from '../../support/smtp-harness.ts';
import { noSniSerial, writeCertFiles } from '../../support/tls-probe.ts';
import { createTlsSource } from '../../../src/server/tls.ts';
import type { ReloadableTls } from '../../../src/server/tls.ts';

ensureDebianPackages(['openssl']);

let certDir = '';
let source: ReloadableTls;
let p: RunningPostern;

before(async () => {
  certDir = await mkdtemp(join(tmpdir(), 'postern-smtp-cert-'));
  await writeCertFiles(certDir);
  source = createTlsSource({ certFile: join(certDir, 'cert.pem'), keyFile: join(certDir, 'key.pem') }, pino({ level: 'silent' }));
  p = await startPostern({ extra: { tls: source } });
});

after(async () => {
  source.close();
  // The graceful-stop test stopped the module already; only the files remain.
  p.trace.close();
  await rm(p.dir, { recursive: true, force: true });
  await rm(certDir, { recursive: true, force: true });
});

test('after a certificate renewal, clients without SNI get the new certificate on 25, 587 (STARTTLS) and 465', async () => {
  const first = source.info().serialNumber;
  for (const [port, starttls] of [[p.ports.mx, 'smtp'], [p.ports.submission, 'smtp'], [p.ports.submissions, undefined]] as const) {
    assert.equal(await noSniSerial(port, starttls), first);
  }
  const renewed = await writeCertFiles(certDir);
  assert.notEqual(renewed.serial, first);
  assert.equal(source.reload(), true);
  assert.equal(source.info().serialNumber, renewed.serial);
  for (const [port, starttls] of [[p.ports.mx, 'smtp'], [p.ports.submission, 'smtp'], [p.ports.submissions, undefined]] as const) {
    assert.equal(await noSniSerial(port, starttls), renewed.serial, `port ${port} ${starttls ?? 'implicit TLS'}`);
  }
});

test('stop(): idle sessions get 421 4.3.2 at once, a DATA transfer in flight gets its 250 and the message is spooled', { timeout: 20_000 }, async () => {
  const idleMx = await openSession(p.ports.mx);
  const idleSmtps = await openSession(p.ports.submissions, { tls: true });
  const sending = await openSession(p.ports.mx);
  assert.equal((await sending.command('MAIL FROM:<carol@sender.example.net>')).code, 250);
  assert.equal((await sending.command('RCPT TO:<bob@example.com>')).code, 250);
  assert.equal((await sending.command('DATA')).code, 354);
  sending.write('From: carol@sender.example.net\r\nTo: bob@example.com\r\nSubject: in flight\r\nMessage-ID: <inflight@sender.example.net>\r\n\r\nfirst half\r\n');

  // A deadline far beyond this test's own timeout: stop() must not wait for it.
  let stopped = false;
  const stopping = p.module.service.stop(Date.now() + 60_000).then(() => { stopped = true; });

  for (const idle of [idleMx, idleSmtps]) {
    const bye = await idle.read();
    assert.equal(bye?.code, 421);
    assert.equal(bye?.text, '4.3.2 Service shutting down');
    assert.equal(await idle.read(), null, 'the server closes the connection after 421');
  }
  assert.equal(stopped, false, 'stop() waits for the DATA transfer');

  sending.write('second half\r\n.\r\n');
  const done = await sending.read();
  assert.equal(done?.code, 250, JSON.stringify(done));
  const queuedAs = /queued as ([0-9a-f]+)/.exec(done!.text)?.[1];
  assert.ok(queuedAs, done!.text);
  const bye = await sending.read();
  assert.equal(bye?.code, 421);
  assert.equal(bye?.text, '4.3.2 Service shutting down');
  assert.equal(await sending.read(), null);
  await stopping;

  // Durable before the 250: delivered into the mailbox, or still in the spool for the next start.
  const delivered = p.store.messages('bob@example.com').map((m) => m.toString());
  const spooled = (await p.spool.recoverable()).map((e) => e.id);
  assert.ok(delivered.some((m) => m.includes('second half')) || spooled.includes(queuedAs!), `delivered ${delivered.length}, spooled ${spooled.join(',')}`);
});

test('stop(): a DATA transfer still unfinished at the deadline is cut with 421 4.3.2 and nothing is spooled', { timeout: 20_000 }, async () => {
  const q = await startPostern();
  try {
    const sending = await openSession(q.ports.mx);
    assert.equal((await sending.command('MAIL FROM:<carol@sender.example.net>')).code, 250);
    assert.equal((await sending.command('RCPT TO:<bob@example.com>')).code, 250);
    assert.equal((await sending.command('DATA')).code, 354);
    sending.write('Subject: never finished\r\n\r\nthe client stalls here\r\n');
    const stopping = q.module.service.stop(Date.now() + 300);
    const cut = await sending.read();
    assert.equal(cut?.code, 421);
    assert.equal(cut?.text, '4.3.2 Service shutting down');
    assert.equal(await sending.read(), null);
    await stopping;
    assert.deepEqual(await q.spool.recoverable(), []);
    assert.equal(q.store.messages('bob@example.com').length, 0);
  } finally {
    q.trace.close();
    await rm(q.dir, { recursive: true, force: true });
  }
});

/** Rejects when `promise` has not settled after `ms`, so a broken server fails the test instead of hanging it. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_r, reject) => { timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves with the next complete reply line starting with a code (`421 …`), or null when the socket closes. */
function nextLine(socket: Socket, seen: { buffer: string }): Promise<string | null> {
  return new Promise((resolve) => {
    const check = () => {
      const i = seen.buffer.indexOf('\r\n');
      if (i === -1) return false;
      const line = seen.buffer.slice(0, i);
      seen.buffer = seen.buffer.slice(i + 2);
      if (/^\d{3}-/.test(line)) return check();
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(line);
      return true;
    };
    const onData = (d: Buffer) => { seen.buffer += d.toString('latin1'); check(); };
    const onClose = () => { socket.off('data', onData); resolve(null); };
    if (check()) return;
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

test('stop() during a STARTTLS handshake: the handshake completes and the next command gets 421 4.3.2', { timeout: 20_000 }, async () => {
  const q = await startPostern();
  const raw = netConnect({ host: '127.0.0.1', port: q.ports.submission });
  raw.on('error', () => undefined);
  try {
    const seen = { buffer: '' };
    assert.match(String(await nextLine(raw, seen)), /^220 /);
    raw.write('EHLO client.example.net\r\n');
    assert.match(String(await nextLine(raw, seen)), /^250 /);
    raw.write('STARTTLS\r\n');
    assert.match(String(await nextLine(raw, seen)), /^220 /);
    // The server is now waiting for the ClientHello: a plaintext 421 here would break the handshake.
    const stopping = q.module.service.stop(Date.now() + 60_000);
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false });
    secure.on('error', () => undefined);
    await within(new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('close', () => reject(new Error('TLS handshake failed')));
    }), 5000, 'TLS handshake');
    const tlsSeen = { buffer: '' };
    secure.write('EHLO client.example.net\r\n');
    assert.equal(await within(nextLine(secure, tlsSeen), 5000, 'reply to EHLO'), '421 4.3.2 Service shutting down');
    assert.equal(await within(nextLine(secure, tlsSeen), 5000, 'close'), null);
    await within(stopping, 10_000, 'end of stop()');
  } finally {
    raw.destroy();
    q.trace.close();
    await rm(q.dir, { recursive: true, force: true });
  }
});

// Ports 587 and 465 as a mail client sees them: swaks (Debian) with STARTTLS/implicit TLS and AUTH PLAIN/LOGIN,
// nodemailer, and raw sessions for what clients must not be allowed to do.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { ensureDebianPackages } from '../../support/debian.ts';
import { openSession, RawSmtp } from '../../support/raw-smtp.ts';
import { startPostern } from '../../support/smtp-harness.ts';
import type { RunningPostern } from '../../support/smtp-harness.ts';

ensureDebianPackages(['swaks', 'libnet-ssleay-perl', 'openssl']);
const run = promisify(execFile);

let p: RunningPostern;
before(async () => { p = await startPostern(); });
after(async () => { await p.stop(); });

async function until(fn: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) { if (await fn()) return; await new Promise((r) => setTimeout(r, 25)); }
  assert.fail(`timed out waiting for ${what}`);
}

function swaks(args: string[]) {
  return run('swaks', ['--server', '127.0.0.1', '--helo', 'laptop.example.net', '--timeout', '20', ...args], { timeout: 30_000 });
}

test('swaks: 587 with STARTTLS and AUTH PLAIN delivers locally', async () => {
  const r = await swaks(['--port', String(p.ports.submission), '--tls', '--auth', 'PLAIN', '--auth-user', 'alice@example.com',
    '--auth-password', 'alice-secret-1', '--from', 'alice@example.com', '--to', 'bob@example.com',
    '--header', 'Subject: via swaks 587', '--header', 'Message-Id: <swaks-587@example.com>']);
  assert.match(r.stdout, /<~ {2}250 2\.6\.0 Ok: queued as/);
  await until(() => p.store.messages('bob@example.com').some((m) => m.includes('swaks-587@example.com')), 'delivery');
  const m = p.store.messages('bob@example.com').find((x) => x.includes('swaks-587@example.com'))!.toString();
  assert.match(m, /^Received: from laptop\.example\.net \(\[127\.0\.0\.1\]\)\r\n\tby mail\.example\.com \(Postern\) with ESMTPSA/m);
});

test('swaks: 465 with implicit TLS and AUTH LOGIN, sending as an alias the user owns', async () => {
  const r = await swaks(['--port', String(p.ports.submissions), '--tlsc', '--auth', 'LOGIN', '--auth-user', 'alice@example.com',
    '--auth-password', 'alice-secret-1', '--from', 'postmaster@example.com', '--to', 'bob@example.com',
    '--header', 'Message-Id: <swaks-465@example.com>']);
  assert.match(r.stdout, /250 2\.6\.0 Ok: queued as/);
  await until(() => p.store.messages('bob@example.com').some((m) => m.includes('swaks-465@example.com')), 'delivery');
});

test('587 refuses AUTH before STARTTLS and MAIL without AUTH (no unauthenticated relay)', async () => {
  const c = await openSession(p.ports.submission);
  const ehlo = await c.command('EHLO laptop.example.net');
  assert.match(ehlo.text, /^STARTTLS$/m);
  assert.equal((await c.command('AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXNlY3JldC0x')).code, 538);
  const mail = await c.command('MAIL FROM:<alice@example.com>');
  assert.equal(mail.code, 530);
  await c.starttls();
  assert.match((await c.command('EHLO laptop.example.net')).text, /^AUTH PLAIN LOGIN$/m);
  assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 530);
  assert.equal((await c.command('RCPT TO:<victim@other.test>')).code, 530);
  c.close();
  // swaks without AUTH gets nowhere either.
  await assert.rejects(swaks(['--port', String(p.ports.submission), '--tls', '--from', 'alice@example.com', '--to', 'victim@other.test']),
    (err: { stdout?: string }) => /<~\* 530 5\.7\.0 Authentication required/.test(err.stdout ?? ''));
});

test('envelope sender and From header must belong to the authenticated user', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: p.ports.submissions, secure: true, tls: { rejectUnauthorized: false }, auth: { user: 'bob@example.com', pass: 'bob-secret-2' } });
  await assert.rejects(t.sendMail({ envelope: { from: 'alice@example.com', to: 'alice@example.com' }, from: 'bob@example.com', to: 'alice@example.com', text: 'x' }),
    (err: Error & { responseCode?: number; response?: string }) => err.responseCode === 553 && /5\.7\.1 Sender address <alice@example\.com> is not yours/.test(err.response ?? ''));
  await assert.rejects(t.sendMail({ envelope: { from: 'bob@example.com', to: 'alice@example.com' }, from: 'alice@example.com', to: 'alice@example.com', text: 'x' }),
    (err: Error & { responseCode?: number; response?: string }) => err.responseCode === 550 && /5\.7\.1 From alice@example\.com is not an address of bob@example\.com/.test(err.response ?? ''));
  // An alias that points only at bob is his to send as.
  const ok = await t.sendMail({ from: 'Sales <sales@example.com>', to: 'alice@example.com', subject: 's', text: 'x' });
  assert.match(ok.response, /^250 /);
  t.close();
});

test('remote recipients are handed to the outbound queue; local ones delivered; Message-ID and Date added when missing', async () => {
  const c = await RawSmtp.connect(p.ports.submissions, { tls: true });
  await c.read();
  await c.command('EHLO laptop.example.net');
  assert.equal((await c.command(`AUTH PLAIN ${Buffer.from('\0alice@example.com\0alice-secret-1').toString('base64')}`)).code, 235);
  await c.command('MAIL FROM:<alice@example.com>');
  assert.equal((await c.command('RCPT TO:<friend@remote.example.org>')).code, 250);
  assert.equal((await c.command('RCPT TO:<bob@example.com>')).code, 250);
  await c.command('DATA');
  c.write('From: alice@example.com\r\nTo: friend@remote.example.org, bob@example.com\r\nSubject: mixed\r\n\r\nhello both\r\n.\r\n');
  const r = await c.read();
  assert.equal(r?.code, 250);
  const id = /queued as ([0-9a-f]{24})/.exec(r!.text)![1]!;
  c.close();
  await until(async () => (await p.spool.get(id))?.recipients.find((x) => x.address === 'friend@remote.example.org')?.status === 'queued', 'queued');
  const entry = (await p.spool.get(id))!;
  assert.equal(entry.recipients.find((x) => x.address === 'bob@example.com')?.status, 'delivered');
  const stored = p.store.messages('bob@example.com').find((m) => m.includes('hello both'))!.toString();
  assert.match(stored, /^Message-ID: <[0-9a-f]{24}@mail\.example\.com>$/m);
  assert.match(stored, /^Date: /m);
  // The trace records the hand-over right after the spool's state write that the wait above saw.
  const kinds = () => p.trace.get(id)!.events.map((e) => `${e.kind}:${e.recipient ?? ''}`);
  await until(async () => kinds().includes('queued:friend@remote.example.org'), `queued in the trace (${kinds().join(' ')})`);
  assert.ok(kinds().includes('stored:bob@example.com'), kinds().join(' '));
});

test('failed logins back off per address: after 3 failures the next attempt is refused with 454', async () => {
  const fresh = await startPostern();
  try {
    const c = await RawSmtp.connect(fresh.ports.submissions, { tls: true });
    await c.read();
    await c.command('EHLO guesser.example.net');
    const bad = `AUTH PLAIN ${Buffer.from('\0alice@example.com\0wrong').toString('base64')}`;
    for (let i = 0; i < 4; i++) assert.equal((await c.command(bad)).code, 535);
    const blocked = await c.command(`AUTH PLAIN ${Buffer.from('\0alice@example.com\0alice-secret-1').toString('base64')}`);
    assert.equal(blocked.code, 454, 'even the right password waits out the back-off');
    assert.match(blocked.text, /^4\.7\.0 Too many failed logins/);
    c.close();
  } finally {
    await fresh.stop();
  }
});

test('Python smtplib: STARTTLS on 587, login, send; a wrong password is refused with 535', async () => {
  const py = `
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='py.example.net')
s.starttls(context=ctx); s.ehlo('py.example.net')
try:
    s.login('bob@example.com', 'not-it'); sys.exit('wrong password accepted')
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
s.login('bob@example.com', 'bob-secret-2')
s.sendmail('bob@example.com', ['alice@example.com'], b'From: bob@example.com\\r\\nTo: alice@example.com\\r\\nSubject: py\\r\\nMessage-ID: <py-sub@example.com>\\r\\n\\r\\nfrom python\\r\\n')
s.quit()
`;
  await run('python3', ['-c', py, String(p.ports.submission)], { timeout: 30_000 });
  await until(() => p.store.messages('alice@example.com').some((m) => m.includes('py-sub@example.com')), 'delivery');
});

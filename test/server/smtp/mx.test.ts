// Port 25 as a sending MTA sees it: real clients (nodemailer, Python smtplib, a raw socket) against the MX.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { ensureDebianPackages } from '../../support/debian.ts';
import { openSession, RawSmtp } from '../../support/raw-smtp.ts';
import { startPostern } from '../../support/smtp-harness.ts';
import type { RunningPostern } from '../../support/smtp-harness.ts';

ensureDebianPackages(['python3', 'openssl']);

let p: RunningPostern;
before(async () => {
  p = await startPostern({ aliases: [
    { from: 'postmaster@example.com', to: ['alice@example.com'] },
    { from: 'team@example.com', to: ['alice@example.com', 'bob@example.com'] },
    { from: '@catchall.example.org', to: ['alice@example.com'] },
  ] });
});
after(async () => { await p.stop(); });

function mx() {
  return nodemailer.createTransport({ host: '127.0.0.1', port: p.ports.mx, secure: false, requireTLS: true, tls: { rejectUnauthorized: false }, name: 'sender.example.net' });
}

async function until(fn: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) { if (fn()) return; await new Promise((r) => setTimeout(r, 25)); }
  assert.fail(`timed out waiting for ${what}`);
}

test('EHLO on port 25 offers STARTTLS, SIZE, 8BITMIME, SMTPUTF8, PIPELINING, ENHANCEDSTATUSCODES and no AUTH', async () => {
  const c = await openSession(p.ports.mx);
  const ehlo = await c.command('EHLO probe.example.net');
  for (const ext of ['STARTTLS', 'SIZE 1048576', '8BITMIME', 'SMTPUTF8', 'PIPELINING', 'ENHANCEDSTATUSCODES']) assert.match(ehlo.text, new RegExp(`^${ext}$`, 'm'));
  assert.doesNotMatch(ehlo.text, /AUTH/);
  await c.starttls();
  const after = await c.command('EHLO probe.example.net');
  assert.doesNotMatch(after.text, /AUTH|STARTTLS/);
  assert.ok([500, 502].includes((await c.command('AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXNlY3JldC0x')).code));
  c.close();
});

test('nodemailer over STARTTLS delivers to INBOX with Received and Authentication-Results, traced', async () => {
  const info = await mx().sendMail({ from: 'carol@sender.example.net', to: 'bob@example.com', subject: 'hello', text: 'hi bob', messageId: '<mx-1@sender.example.net>' });
  assert.match(info.response, /^250 2\.6\.0 Ok: queued as [0-9a-f]{24}$/);
  await until(() => p.store.messages('bob@example.com').length === 1, 'delivery');
  const stored = p.store.messages('bob@example.com')[0]!.toString();
  assert.match(stored, /^Authentication-Results: mail\.example\.com;[\s\S]*spf=none/m);
  assert.match(stored, /^Received: from sender\.example\.net \(\[127\.0\.0\.1\]\)\r\n\tby mail\.example\.com \(Postern\) with ESMTPS id /m);
  assert.match(stored, /for <bob@example\.com>; /);
  assert.match(stored, /\r\n\r\nhi bob/);
  await until(() => p.trace.find('mx-1@sender.example.net')[0]?.events.some((e) => e.kind === 'removed') ?? false, 'spool removal');
  const t = p.trace.find('mx-1@sender.example.net');
  assert.equal(t.length, 1);
  const kinds = t[0]!.events.map((e) => e.kind);
  for (const k of ['received', 'check', 'verdict', 'stored', 'removed']) assert.ok(kinds.includes(k as never), `trace has ${k}: ${kinds.join(',')}`);
  assert.deepEqual(await p.spool.recoverable(), []);
});

test('aliases, plus-addressing and catch-all reach the right accounts, one copy per account', async () => {
  await mx().sendMail({ from: 'x@sender.example.net', to: ['team@EXAMPLE.com', 'alice+lists@example.com', 'anyone@catchall.example.org'], subject: 'fan-out', text: 'x', messageId: '<fan@x>' });
  await until(() => p.store.messages('alice@example.com').some((m) => m.includes('<fan@x>')) && p.store.messages('bob@example.com').some((m) => m.includes('<fan@x>')), 'fan-out');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(p.store.messages('alice@example.com').filter((m) => m.includes('<fan@x>')).length, 1);
  assert.equal(p.store.messages('bob@example.com').filter((m) => m.includes('<fan@x>')).length, 1);
});

test('unknown users get 550 5.1.1, the trace says so', async () => {
  const c = await openSession(p.ports.mx);
  assert.equal((await c.command('MAIL FROM:<x@sender.example.net>')).code, 250);
  const r = await c.command('RCPT TO:<nobody@example.com>');
  assert.equal(r.code, 550);
  assert.match(r.text, /^5\.1\.1 /);
  c.close();
  const t = p.trace.find('nobody@example.com');
  assert.match(t[0]!.events[0]!.detail, /550 5\.1\.1/);
});

test('at least 15 classic relay tricks are refused and nothing is spooled', async () => {
  const tricks = [
    'victim@other.test', 'victim@OTHER.TEST', 'victim%other.test@example.com', 'victim%other.test@EXAMPLE.COM',
    '"victim@other.test"@example.com', '"victim%other.test"@example.com', '@example.com:victim@other.test',
    '@mail.example.com,@example.com:victim@other.test', 'other.test!victim@example.com', 'victim@[192.0.2.1]',
    'victim@[127.0.0.1]', 'bob@[127.0.0.1]', 'victim@example.com.', 'victim@other.test.', 'victim@sub.example.com',
    'victim@example.com.other.test', 'victim@localhost', 'bob@example.com@other.test', 'victim@192.0.2.1',
    'victim@[IPv6:::1]',
  ];
  // A few per session: the errors-per-session limit would otherwise end the session (also tested).
  for (let i = 0; i < tricks.length; i += 5) {
    const c = await openSession(p.ports.mx);
    assert.equal((await c.command('MAIL FROM:<bob@example.com>')).code, 250);
    for (const t of tricks.slice(i, i + 5)) {
      const r = await c.command(`RCPT TO:<${t}>`);
      assert.ok(r.code >= 500 && r.code < 600, `${t}: ${r.code} ${r.text}`);
    }
    // With nothing accepted the server refuses DATA, so the message can go nowhere.
    assert.equal((await c.command('DATA')).code, 503);
    c.close();
  }
  assert.ok(tricks.length >= 15);
  const c2 = await openSession(p.ports.mx);
  await c2.command('MAIL FROM:<x@y.test>');
  const r = await c2.command('RCPT TO:<victim@other.test>');
  assert.equal(r.code, 554);
  assert.match(r.text, /^5\.7\.1 Relaying denied/);
  c2.close();
  assert.deepEqual(await p.spool.recoverable(), []);
});

test('SMTP smuggling endings are refused with 550 5.6.0 and the session goes on', async () => {
  const endings = ['\n.\r\n', '\r.\r\n', '\r\n.\r', '\n.\n', '\r\n.\n', '\n.\r', '\r.\r', '\n\r.\r\n', 'bare\nlf', 'bare\rcr'];
  const c = await openSession(p.ports.mx);
  for (const e of endings) {
    assert.equal((await c.command('MAIL FROM:<evil@sender.example.net>')).code, 250);
    assert.equal((await c.command('RCPT TO:<bob@example.com>')).code, 250);
    assert.equal((await c.command('DATA')).code, 354);
    c.write(`From: evil@sender.example.net\r\nSubject: smuggle\r\n\r\nbody${e}MAIL FROM:<admin@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nowned\r\n.\r\n`);
    const r = await c.read();
    assert.equal(r?.code, 550, `${JSON.stringify(e)}: ${JSON.stringify(r)}`);
    assert.match(r!.text, /^5\.6\.0 Message refused: bare (LF|CR)/);
  }
  // Same connection, a clean message still goes through.
  await c.command('RSET');
  assert.equal((await c.command('MAIL FROM:<fine@sender.example.net>')).code, 250);
  assert.equal((await c.command('RCPT TO:<bob@example.com>')).code, 250);
  assert.equal((await c.command('DATA')).code, 354);
  c.write('Subject: clean\r\nMessage-ID: <clean-after-smuggle@x>\r\n\r\nok\r\n.\r\n');
  assert.equal((await c.read())?.code, 250);
  c.close();
  await until(() => p.store.messages('bob@example.com').some((m) => m.includes('clean-after-smuggle')), 'clean message');
  assert.ok(!p.store.messages('bob@example.com').some((m) => m.includes('smuggled') || m.includes('owned')));
});

test('Python smtplib sends 8BITMIME/SMTPUTF8 mail over STARTTLS', async () => {
  const py = `
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='py.example.net')
s.starttls(context=ctx); s.ehlo('py.example.net')
assert s.has_extn('smtputf8') and s.has_extn('8bitmime')
msg = 'From: Jürgen <jürgen@sender.example.net>\\r\\nTo: bob@example.com\\r\\nSubject: Grüße\\r\\nMessage-ID: <py-utf8@x>\\r\\n\\r\\nHallo Bob, schöne Grüße\\r\\n'.encode('utf-8')
s.sendmail('jürgen@sender.example.net', ['bob@example.com'], msg, mail_options=['SMTPUTF8', 'BODY=8BITMIME'])
s.quit()
`;
  // Asynchronous: the server runs in this process, a synchronous spawn would block it.
  await promisify(execFile)('python3', ['-c', py, String(p.ports.mx)], { timeout: 30_000 });
  await until(() => p.store.messages('bob@example.com').some((m) => m.toString('utf8').includes('schöne Grüße')), 'utf8 mail');
});

test('limits: recipients per message, message size, errors per session', async () => {
  const c = await openSession(p.ports.mx);
  await c.command('MAIL FROM:<x@sender.example.net>');
  for (let i = 0; i < 20; i++) assert.equal((await c.command(`RCPT TO:<bob+${i}@example.com>`)).code, 250);
  const r = await c.command('RCPT TO:<alice@example.com>');
  assert.equal(r.code, 452);
  assert.match(r.text, /^4\.5\.3/);
  c.close();

  const big = await openSession(p.ports.mx);
  const sizeRefused = await big.command('MAIL FROM:<x@sender.example.net> SIZE=5000000');
  assert.equal(sizeRefused.code, 552);
  await big.command('MAIL FROM:<x@sender.example.net>');
  await big.command('RCPT TO:<bob@example.com>');
  await big.command('DATA');
  big.write(`Subject: big\r\n\r\n${('x'.repeat(998) + '\r\n').repeat(1100)}.\r\n`);
  const tooBig = await big.read();
  assert.equal(tooBig?.code, 552);
  assert.match(tooBig!.text, /^5\.3\.4/);
  big.close();

  const noisy = await openSession(p.ports.mx);
  let last = null;
  for (let i = 0; i < 25 && !noisy.closed; i++) last = await noisy.command('RCPT TO:<bob@example.com>').catch(() => null);
  assert.ok(noisy.closed, 'closed after too many errors');
  assert.equal(last === null || last.code === 421 || last.code === 503, true);
});

test('connections per IP are limited, and closed ones are given back', async () => {
  const small = await startPostern({ limits: { maxConnectionsPerIp: 4 } });
  try {
    const open = [];
    for (let i = 0; i < 4; i++) open.push(await openSession(small.ports.mx));
    const extra = await RawSmtp.connect(small.ports.submission);
    const r = await extra.read();
    assert.equal(r?.code, 421, 'the limit holds across listeners');
    assert.match(r!.text, /^4\.7\.0 Too many connections/);
    extra.close();
    for (const c of open) await c.command('QUIT');
    for (let i = 0; i < 50; i++) {
      const again = await RawSmtp.connect(small.ports.mx);
      const g = await again.read();
      again.close();
      if (g?.code === 220) return;
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.fail('connections were not given back after QUIT');
  } finally {
    await small.stop();
  }
});

test('Authentication-Results headers forged with our host name are removed; others are kept', async () => {
  const c = await openSession(p.ports.mx);
  await c.command('MAIL FROM:<x@sender.example.net>');
  await c.command('RCPT TO:<bob@example.com>');
  await c.command('DATA');
  c.write('Authentication-Results: MAIL.example.com;\r\n dkim=pass header.d=bank.example\r\nAuthentication-Results: relay.other.example; spf=pass\r\n'
    + 'Message-ID: <forged-ar@x>\r\nSubject: trust me\r\n\r\nbody\r\n.\r\n');
  assert.equal((await c.read())?.code, 250);
  c.close();
  await until(() => p.store.messages('bob@example.com').some((m) => m.includes('forged-ar@x')), 'delivery');
  const m = p.store.messages('bob@example.com').find((x) => x.includes('forged-ar@x'))!.toString();
  assert.doesNotMatch(m, /header\.d=bank\.example/);
  assert.match(m, /^Authentication-Results: relay\.other\.example; spf=pass\r\n/m);
  assert.equal((m.match(/^Authentication-Results: mail\.example\.com;/gim) ?? []).length, 1, 'only our own');
  assert.match(m, /\r\n\r\nbody\r\n$/);
});

test('a message spooled while its checks still run is not delivered by the sweep meanwhile, and never when refused', async () => {
  // The spool holds the message before the checks finish (they run at the same time); a periodic sweep that
  // took it for an interrupted delivery would store a message that is about to be refused.
  const waiting: Array<() => void> = [];
  const release = () => { for (const r of waiting.splice(0)) r(); };
  let scanning = false;
  const slow = {
    name: 'slow-scanner',
    async check(message: Buffer) {
      if (!message.includes('SLOW SCAN')) return { action: 'accept' as const, detail: 'clean' };
      // Slow the first time (the session's check), quick on any later look at the same message.
      if (!scanning) {
        scanning = true;
        await new Promise<void>((r) => { waiting.push(r); });
      }
      return { action: 'reject' as const, detail: 'found on a closer look' };
    },
  };
  const f = await startPostern({ checks: [slow], extra: { sweepIntervalMs: 50 } });
  try {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: f.ports.mx, tls: { rejectUnauthorized: false } });
    const refusal = assert.rejects(t.sendMail({ from: 'a@sender.example.net', to: 'bob@example.com', subject: 'scan', text: 'SLOW SCAN', messageId: '<slow@x>' }),
      (err: Error & { responseCode?: number }) => err.responseCode === 550);
    await until(() => scanning, 'the check to start');
    await new Promise((r) => setTimeout(r, 400)); // eight sweeps, with the entry in the spool
    const stored = () => f.store.messages('bob@example.com').length + f.store.messages('bob@example.com', 'Junk').length;
    assert.ok(readdirSync(f.spool.dir).some((n) => n.endsWith('.msg')), 'spooled while the check runs');
    assert.equal(stored(), 0, 'not delivered (to INBOX or Junk) while its checks run');
    release();
    await refusal;
    t.close();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(stored(), 0);
    assert.ok(!readdirSync(f.spool.dir).some((n) => n.endsWith('.msg')), 'its entry removed with the refusal');
  } finally {
    release();
    await f.stop();
  }
});

test('content checks plug into the seam: junk files in Junk with the check header, reject refuses in SMTP, a failing check answers 451', async () => {
  const keyword = {
    name: 'keyword',
    async check(message: Buffer) {
      if (message.includes('SCANNER DOWN')) throw new Error('scanner unreachable');
      if (message.includes('WIRE MONEY NOW')) return { action: 'reject' as const, detail: 'fraud keyword' };
      if (message.includes('CHEAP PILLS')) return { action: 'junk' as const, detail: 'spam keyword', headers: 'X-Spam-Flag: YES\r\n' };
      return { action: 'accept' as const, detail: 'clean' };
    },
  };
  const f = await startPostern({ checks: [keyword] });
  try {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: f.ports.mx, tls: { rejectUnauthorized: false } });
    await t.sendMail({ from: 'a@sender.example.net', to: 'bob@example.com', subject: 'CHEAP PILLS', text: 'x', messageId: '<pills@x>' });
    await assert.rejects(t.sendMail({ from: 'a@sender.example.net', to: 'bob@example.com', subject: 'hi', text: 'WIRE MONEY NOW', messageId: '<fraud@x>' }),
      (err: Error & { responseCode?: number; response?: string }) => err.responseCode === 550 && /5\.7\.1 Message refused: fraud keyword/.test(err.response ?? ''));
    await assert.rejects(t.sendMail({ from: 'a@sender.example.net', to: 'bob@example.com', subject: 'hi', text: 'SCANNER DOWN', messageId: '<unchecked@x>' }),
      (err: Error & { responseCode?: number; response?: string }) => err.responseCode === 451 && /4\.3\.0 Temporary local problem while checking/.test(err.response ?? ''));
    await t.sendMail({ from: 'a@sender.example.net', to: 'bob@example.com', subject: 'hello', text: 'x', messageId: '<fine@x>' });
    t.close();
    await until(() => f.store.messages('bob@example.com', 'Junk').length === 1 && f.store.messages('bob@example.com').length === 1, 'filing');
    // The refused and the unchecked message were spooled while their checks ran, and removed before the reply.
    const left = (await f.spool.list()).map((e) => e.messageId);
    assert.ok(!left.includes('fraud@x') && !left.includes('unchecked@x'), JSON.stringify(left));
    const junk = f.store.messages('bob@example.com', 'Junk')[0]!.toString();
    assert.match(junk, /^X-Postern-Verdict: junk\r\nX-Spam-Flag: YES\r\n/);
    assert.ok(f.store.messages('bob@example.com')[0]!.includes('<fine@x>'));
    assert.ok(f.trace.find('pills@x')[0]!.events.some((e) => e.kind === 'check' && e.detail === 'keyword: spam keyword'));
  } finally {
    await f.stop();
  }
});

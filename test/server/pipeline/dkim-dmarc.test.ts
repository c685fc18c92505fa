// DKIM signing on submission and SPF/DKIM/DMARC on the MX, against a real DNS server (knotd) serving the test's
// zones. Signatures are verified by mailauth and by a second verifier, OpenDKIM's opendkim-testmsg, which reads
// /etc/resolv.conf only: it runs in a network namespace whose resolv.conf points at a knotd on port 53 there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { authenticate } from 'mailauth';
import { authenticationInput, checkAuthentication } from '../../../src/server/pipeline/authentication.ts';
import { FileSpool } from '../../../src/server/queue/spool.ts';
import nodemailer from 'nodemailer';
import { ensureDebianPackages } from '../../support/debian.ts';
import { startKnot, txt, zoneText } from '../../support/knot.ts';
import type { Knot } from '../../support/knot.ts';
import { openSession } from '../../support/raw-smtp.ts';
import { startPostern } from '../../support/smtp-harness.ts';
import type { RunningPostern } from '../../support/smtp-harness.ts';
import type { DkimKey } from '../../../src/server/pipeline/dkim-signer.ts';

ensureDebianPackages(['knot', 'knot-dnsutils', 'opendkim-tools', 'iproute2', 'openssl']);

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const keys: DkimKey[] = [
  { selector: 'rsa2026', algorithm: 'rsa-sha256', privateKey: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
  { selector: 'ed2026', algorithm: 'ed25519-sha256', privateKey: ed.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
];
const rsaP = rsa.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const edP = ed.publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');

const zones = {
  'example.com': zoneText('example.com', [
    `rsa2026._domainkey TXT ${txt(`v=DKIM1; k=rsa; p=${rsaP}`)}`,
    `ed2026._domainkey TXT "v=DKIM1; k=ed25519; p=${edP}"`,
    '@ TXT "v=spf1 ip4:127.0.0.1 -all"',
    '_dmarc TXT "v=DMARC1; p=reject"',
  ]),
  // A sender domain that allows nobody and asks for reject: forged mail from it must not reach INBOX.
  'strict.example.org': zoneText('strict.example.org', ['@ TXT "v=spf1 -all"', '_dmarc TXT "v=DMARC1; p=reject"']),
  'lax.example.org': zoneText('lax.example.org', ['@ TXT "v=spf1 ip4:127.0.0.1 -all"', '_dmarc TXT "v=DMARC1; p=reject"']),
};

let dir: string;
let dns: Knot;
let nsDns: Knot;
let p: RunningPostern;
let junkPostern: RunningPostern;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-dkim-'));
  dns = await startKnot(zones);
  nsDns = await startKnot(zones, { netns: true });
  p = await startPostern({ dkimKeys: keys, resolver: dns.resolver });
  junkPostern = await startPostern({ resolver: dns.resolver, dmarcRejectAction: 'junk' });
});
after(async () => {
  await p?.stop();
  await junkPostern?.stop();
  await dns?.stop();
  await nsDns?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function until(fn: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) { if (fn()) return; await new Promise((r) => setTimeout(r, 25)); }
  assert.fail(`timed out waiting for ${what}`);
}

function opendkimVerify(message: Buffer): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile('ip', ['netns', 'exec', nsDns.netns!, 'opendkim-testmsg'], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
    });
    child.stdin!.end(message);
  });
}

test('submitted mail carries RSA and Ed25519 signatures that mailauth and opendkim verify', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: p.ports.submission, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice@example.com', pass: 'alice-secret-1' } });
  await t.sendMail({ from: 'Alice <alice@example.com>', to: 'bob@example.com', subject: 'signed', text: 'Signed twice.\nBye.\n', messageId: '<signed-1@example.com>' });
  t.close();
  await until(() => p.store.messages('bob@example.com').some((m) => m.includes('signed-1@example.com')), 'delivery');
  const stored = p.store.messages('bob@example.com').find((m) => m.includes('signed-1@example.com'))!;
  const text = stored.toString();
  assert.match(text, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com;[\s\S]*s=rsa2026/m);
  assert.match(text, /^DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=example\.com;[\s\S]*s=ed2026/m);

  const v = await dkimVerify(stored, { resolver: dns.resolver });
  const results = v.results.map((r) => `${r.selector}=${r.status.result}`).sort();
  assert.deepEqual(results, ['ed2026=pass', 'rsa2026=pass']);

  // OpenDKIM's verifier exits 0 only when the (first) signature verifies; it checks the RSA one.
  const rsaOnly = Buffer.from(text.replace(/^DKIM-Signature: v=1; a=ed25519-sha256[^\r]*(\r\n[ \t][^\r]*)*\r\n/m, ''));
  const od = await opendkimVerify(rsaOnly);
  assert.equal(od.code, 0, od.out);
  // And it notices a tampered body, so the check above can fail.
  const tampered = await opendkimVerify(Buffer.from(rsaOnly.toString().replace('Signed twice.', 'Signed thrice.')));
  assert.notEqual(tampered.code, 0);
});

test('MX: SPF pass from an allowed address is recorded in Authentication-Results', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: p.ports.mx, tls: { rejectUnauthorized: false }, name: 'mx.lax.example.org' });
  await t.sendMail({ from: 'news@lax.example.org', to: 'alice@example.com', subject: 'spf', text: 'x', messageId: '<spf-pass@lax>' });
  await until(() => p.store.messages('alice@example.com').some((m) => m.includes('spf-pass@lax')), 'delivery');
  const m = p.store.messages('alice@example.com').find((x) => x.includes('spf-pass@lax'))!.toString();
  assert.match(m, /spf=pass/);
  assert.match(m, /dmarc=pass/);
});

test('MX: DMARC p=reject failure is refused in SMTP (configured: reject)', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: p.ports.mx, tls: { rejectUnauthorized: false }, name: 'forger.example.net' });
  await assert.rejects(t.sendMail({ from: 'ceo@strict.example.org', to: 'bob@example.com', subject: 'wire money', text: 'now', messageId: '<forged-1@x>' }),
    (err: Error & { responseCode?: number; response?: string }) => err.responseCode === 550 && /5\.7\.1 Message refused: DMARC policy reject of strict\.example\.org failed/.test(err.response ?? ''));
  assert.ok(!p.store.messages('bob@example.com').some((m) => m.includes('forged-1@x')));
  const tr = p.trace.find('forged-1@x');
  assert.equal(tr[0]?.events[0]?.kind, 'rejected');
  // The spool wrote it while the checks ran; the refusal removed it, so no restart can deliver it.
  assert.ok(!(await p.spool.list()).some((e) => e.messageId === 'forged-1@x'));
});

test('MX: inbound entries a restart finds undelivered are checked again: a pass gets its Authentication-Results, a DMARC reject goes to Junk', async () => {
  // What a crash between the spool and delivery leaves: entries written with our Received header in front and
  // without the checks' headers (those went to delivery in memory only).
  const spoolDir = await mkdtemp(join(dir, 'spool-'));
  const spool = await FileSpool.open({ dir: spoolDir, maxMessageBytes: 1 << 20 });
  const received = Buffer.from('Received: from forger.example.net ([127.0.0.1]) by mail.example.com with ESMTP id crash.1; Sat, 28 Nov 2026 18:00:00 +0000\r\n');
  const client = { remoteAddress: '127.0.0.1', helo: 'forger.example.net', tls: false, listener: 'mx' as const };
  for (const [from, id] of [['news@lax.example.org', 'again-pass@x'], ['ceo@strict.example.org', 'again-reject@x']] as const) {
    const message = Buffer.from(`From: <${from}>\r\nTo: <bob@example.com>\r\nSubject: left behind\r\nMessage-ID: <${id}>\r\n\r\nbody\r\n`);
    await spool.accept({ from, to: ['bob@example.com'], client }, [received, message], { checksPending: { receivedBytes: received.length } });
  }
  await spool.close();
  const restarted = await startPostern({ resolver: dns.resolver, spoolDir });
  try {
    await until(() => restarted.store.messages('bob@example.com').some((m) => m.includes('again-pass@x')), 'delivery of the passing entry');
    const passed = restarted.store.messages('bob@example.com').find((m) => m.includes('again-pass@x'))!.toString();
    assert.match(passed, /^Received-SPF: pass [^]*\r\nAuthentication-Results: mail\.example\.com;[^]*spf=pass[^]*\r\nReceived: from forger\.example\.net[^]*\r\nFrom: <news@lax\.example\.org>/);
    await until(() => restarted.store.messages('bob@example.com', 'Junk').some((m) => m.includes('again-reject@x')), 'the refused entry in Junk');
    assert.ok(!restarted.store.messages('bob@example.com').some((m) => m.includes('again-reject@x')));
    const events = restarted.trace.find('again-reject@x')[0]!.events;
    assert.ok(events.some((e) => e.kind === 'check' && /DMARC policy reject of strict\.example\.org failed/.test(e.detail)), JSON.stringify(events));
    assert.ok(events.some((e) => e.kind === 'verdict' && /file in Junk: checked again from the spool, it would be refused now/.test(e.detail)));
    // An entry leaves the spool just after its message is stored: under load, a moment after it shows.
    for (let i = 0; i < 400 && (await restarted.spool.recoverable()).length > 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.deepEqual(await restarted.spool.recoverable(), []);
  } finally {
    await restarted.stop();
  }
});

test('MX: DMARC p=reject failure is filed in Junk when configured so', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: junkPostern.ports.mx, tls: { rejectUnauthorized: false }, name: 'forger.example.net' });
  await t.sendMail({ from: 'ceo@strict.example.org', to: 'bob@example.com', subject: 'wire money', text: 'now', messageId: '<forged-2@x>' });
  await until(() => junkPostern.store.messages('bob@example.com', 'Junk').some((m) => m.includes('forged-2@x')), 'junk delivery');
  assert.ok(!junkPostern.store.messages('bob@example.com').some((m) => m.includes('forged-2@x')));
  const m = junkPostern.store.messages('bob@example.com', 'Junk')[0]!.toString();
  assert.match(m, /dmarc=fail/);
});

test('MX: a DKIM-signed message is verified over its body (dkim=pass), a changed body fails (dkim=fail)', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: p.ports.submission, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice@example.com', pass: 'alice-secret-1' } });
  await t.sendMail({ from: 'Alice <alice@example.com>', to: 'bob@example.com', subject: 'to relay', text: 'Body that is signed.\n', messageId: '<relay-1@example.com>' });
  t.close();
  await until(() => p.store.messages('bob@example.com').some((m) => m.includes('relay-1@example.com')), 'delivery');
  const signed = p.store.messages('bob@example.com').find((m) => m.includes('relay-1@example.com'))!.toString();
  // Our own headers from the first pass are dropped; the signed part stays as it is.
  const start = signed.indexOf('DKIM-Signature:');
  const original = signed.slice(start);
  for (const [id, body] of [['relay-2', original], ['relay-3', original.replace('Body that is signed.', 'Body that was changed.')]] as const) {
    const s = await openSession(p.ports.mx);
    assert.equal((await s.command('MAIL FROM:<alice@example.com>')).code, 250);
    assert.equal((await s.command('RCPT TO:<bob@example.com>')).code, 250);
    assert.equal((await s.command('DATA')).code, 354);
    const r = await s.command(`X-Copy: ${id}\r\n${body.replace(/\r\n\.\r\n$/, '\r\n')}.`);
    assert.equal(r.code, 250, r.text);
    await s.command('QUIT');
  }
  await until(() => p.store.messages('bob@example.com').filter((m) => /X-Copy: relay-[23]/.test(m.toString())).length === 2, 'both copies');
  const copy = (id: string) => p.store.messages('bob@example.com').find((m) => m.includes(`X-Copy: ${id}`))!.toString();
  assert.match(copy('relay-2'), /Authentication-Results: [^;]+;\s+dkim=pass header\.i=@example\.com header\.s=rsa2026/);
  assert.match(copy('relay-3'), /Authentication-Results: [^;]+;\s+dkim=(?:fail|neutral)/);
  assert.doesNotMatch(copy('relay-3').slice(0, copy('relay-3').indexOf('X-Copy:')), /dkim=pass/);
});

test('an unsigned message gets the same verdicts and header from its From field(s) alone as from the whole message', async () => {
  const received = 'Received: from relay.example.net (relay.example.net [192.0.2.9])\r\n\tby mx.example.net; Sun, 29 Nov 2026 03:00:00 +0000\r\n';
  const heads = (from: string) => [
    `From: <${from}>\r\nTo: <bob@example.com>\r\nSubject: hello\r\nMessage-ID: <eq@x>\r\n`,
    // Received chain and Return-Path first, the From folded, in upper case, after them.
    `${received.repeat(3)}Return-Path: <other@example.net>\r\nSender: <other@example.net>\r\nFROM :\r\n \"A. Person\" <${from}>\r\nSubject: x\r\n`,
    // Two From fields (DMARC's multiple-author case).
    `From: <${from}>\r\nTo: <bob@example.com>\r\nFrom: <someone@else.example>\r\n`,
    // No From at all.
    `To: <bob@example.com>\r\nSubject: no author\r\n`,
  ];
  for (const [from, ip] of [['news@lax.example.org', '127.0.0.1'], ['ceo@strict.example.org', '192.0.2.7']] as const) {
    for (const head of heads(from)) {
      const message = Buffer.from(`${head}\r\n${'a body line\r\n'.repeat(200)}`);
      const input = { ip, helo: 'mx.example.net', sender: from, hostname: 'mail.example.com', resolver: dns.resolver };
      const ours = await checkAuthentication({ ...input, message, dmarcRejectAction: 'reject' });
      const whole = await authenticate(message, { ip, helo: input.helo, sender: from, mta: input.hostname, resolver: dns.resolver, disableBimi: true });
      assert.equal(ours.headers, whole.headers, head);
      assert.equal(ours.results.dmarc, whole.dmarc ? `${whole.dmarc.status.result}${whole.dmarc.policy ? ` p=${whole.dmarc.policy}` : ''}` : 'none', head);
    }
  }
  // The input mailauth gets: the From fields only, continuation lines kept.
  assert.equal(authenticationInput(Buffer.from(`${received}From: a\r\n  <a@x.example>\r\nTo: b\r\n\r\nbody\r\n`)).toString(), 'From: a\r\n  <a@x.example>\r\n\r\n');
});

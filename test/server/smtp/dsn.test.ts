// The DSN extension (RFC 3461) at the listeners, with Python's smtplib: DSN in EHLO on the MX and submission,
// malformed RET/ENVID/NOTIFY/ORCPT refused with 501 5.5.4 while the session goes on, and what a valid transaction
// gave kept in the spool entry.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ensureDebianPackages } from '../../support/debian.ts';
import { startPostern } from '../../support/smtp-harness.ts';
import type { RunningPostern } from '../../support/smtp-harness.ts';
import { RawSmtp } from '../../support/raw-smtp.ts';
import { smtplibSession } from '../../support/smtplib.ts';
import type { StoredEntry } from '../../../src/server/queue/spool.ts';

ensureDebianPackages(['python3', 'openssl']);

let p: RunningPostern;
const accepted: StoredEntry[] = [];
before(async () => {
  p = await startPostern();
  // Every entry the listeners spool, as accepted (delivery removes them right after).
  const accept = p.spool.accept.bind(p.spool);
  p.spool.accept = async (...args: Parameters<typeof accept>) => {
    const entry = await accept(...args);
    accepted.push(structuredClone(entry));
    return entry;
  };
});
after(async () => { await p.stop(); });

const body = (subject: string) => `From: <carol@sender.example.net>\r\nTo: <bob@example.com>\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@sender.example.net>\r\n\r\nhello\r\n`;

describe('DSN parameters on the listeners', () => {
  it('EHLO announces DSN on the MX and on submission', async () => {
    const [mx] = await smtplibSession(p.ports.mx, [['ehlo']]);
    assert.match(mx!.text, /^DSN$/m);
    const [sub] = await smtplibSession(p.ports.submission, [['ehlo']], ['alice@example.com', 'alice-secret-1']);
    assert.match(sub!.text, /^DSN$/m);
  });

  it('refuses malformed RET, ENVID, NOTIFY and ORCPT with 501 5.5.4, and the same session then delivers', async () => {
    const badMail: string[][] = [
      ['RET=EVERYTHING'], ['RET=FULL', 'RET=HDRS'], ['ENVID=a+zz'], ['ENVID=a=b'], ['ENVID=' + 'x'.repeat(101)],
      ['ENVID=x+0Dy'], ['ENVID=id1', 'ENVID=id2'],
    ];
    const badRcpt: string[][] = [
      ['NOTIFY=SOMETIMES'], ['NOTIFY=NEVER,SUCCESS'], ['ORCPT=bob@example.com'], ['ORCPT=rfc822;bob+zz@example.com'],
      ['ORCPT=rfc822;' + 'b'.repeat(490) + '@example.com'], ['ORCPT=rfc822;nobody'], ['NOTIFY=SUCCESS', 'NOTIFY=FAILURE'],
    ];
    const replies = await smtplibSession(p.ports.mx, [
      ...badMail.map((o) => ['mail', 'carol@sender.example.net', o] as ['mail', string, string[]]),
      ['mail', 'carol@sender.example.net', ['RET=FULL', 'ENVID=QQ+2B1+3Dx']],
      ...badRcpt.map((o) => ['rcpt', 'bob@example.com', o] as ['rcpt', string, string[]]),
      ['rcpt', 'bob@example.com', ['NOTIFY=SUCCESS,DELAY', 'ORCPT=rfc822;Bob+2Bdsn@example.com']],
      ['rcpt', 'alice@example.com', ['NOTIFY=NEVER']],
      ['data', body('dsn-params')],
    ]);
    const mailReplies = replies.slice(0, badMail.length);
    const rcptReplies = replies.slice(badMail.length + 1, badMail.length + 1 + badRcpt.length);
    for (const [i, r] of [...mailReplies, ...rcptReplies].entries()) {
      assert.equal(r.code, 501, `bad parameter ${i} refused: ${r.text}`);
      assert.match(r.text, /^5\.5\.4 /, `with 5.5.4: ${r.text}`);
    }
    const tail = replies.slice(badMail.length);
    assert.equal(tail[0]!.code, 250, 'MAIL with good parameters accepted after the refusals');
    assert.deepEqual(replies.slice(-3).map((r) => r.code), [250, 250, 250], 'both RCPTs and the message accepted');
    const entry = accepted.find((e) => e.messageId === 'dsn-params@sender.example.net');
    assert.ok(entry, 'spooled');
    assert.deepEqual(entry.envelope.dsn, { ret: 'FULL', envid: 'QQ+2B1+3Dx' });
    const bob = entry.recipients.find((r) => r.address === 'bob@example.com')!;
    assert.deepEqual(bob.notify, ['SUCCESS', 'DELAY']);
    assert.equal(bob.orcpt, 'rfc822;Bob+2Bdsn@example.com', 'kept as xtext');
    const alice = entry.recipients.find((r) => r.address === 'alice@example.com')!;
    assert.deepEqual(alice.notify, ['NEVER']);
    assert.equal(alice.orcpt, undefined);
    assert.equal((entry.envelope as { recipientDsn?: unknown }).recipientDsn, undefined, 'per-recipient parameters live in the recipient state only');
  });

  it('a malformed parameter out of sequence gets the sequence error first: 503 before EHLO, 530 before AUTH', async () => {
    const mx = await RawSmtp.connect(p.ports.mx);
    try {
      assert.equal((await mx.read())?.code, 220);
      const early = await mx.command('MAIL FROM:<carol@sender.example.net> ENVID=a+zz');
      assert.equal(early.code, 503, early.text);
      assert.equal((await mx.command('EHLO client.example.net')).code, 250);
      const bad = await mx.command('MAIL FROM:<carol@sender.example.net> ENVID=a+zz');
      assert.equal(bad.code, 501, `in sequence, the parameter is checked: ${bad.text}`);
      assert.match(bad.text, /^5\.5\.4 /);
    } finally {
      mx.close();
    }
    const sub = await RawSmtp.connect(p.ports.submission);
    try {
      assert.equal((await sub.read())?.code, 220);
      assert.equal((await sub.command('EHLO client.example.net')).code, 250);
      await sub.starttls();
      assert.equal((await sub.command('EHLO client.example.net')).code, 250);
      const unauthenticated = await sub.command('MAIL FROM:<alice@example.com> ENVID=a+zz');
      assert.equal(unauthenticated.code, 530, unauthenticated.text);
    } finally {
      sub.close();
    }
  });

  it('takes DSN parameters on submission too; a transaction without them spools exactly as before', async () => {
    const replies = await smtplibSession(p.ports.submission, [
      ['mail', 'alice@example.com', ['ENVID=sub-1', 'RET=HDRS']],
      ['rcpt', 'bob@example.com', ['NOTIFY=FAILURE', 'ORCPT=rfc822;bob@example.com']],
      ['data', body('dsn-sub').replace('carol@sender.example.net', 'alice@example.com')],
      ['mail', 'alice@example.com', []],
      ['rcpt', 'bob@example.com', []],
      ['data', body('dsn-none').replace('carol@sender.example.net', 'alice@example.com')],
    ], ['alice@example.com', 'alice-secret-1']);
    assert.deepEqual(replies.map((r) => r.code), [250, 250, 250, 250, 250, 250]);
    const sub = accepted.find((e) => e.messageId === 'dsn-sub@sender.example.net')!;
    assert.deepEqual(sub.envelope.dsn, { ret: 'HDRS', envid: 'sub-1' });
    assert.deepEqual(sub.recipients[0]!.notify, ['FAILURE']);
    const none = accepted.find((e) => e.messageId === 'dsn-none@sender.example.net')!;
    assert.equal(none.envelope.dsn, undefined);
    assert.deepEqual(Object.keys(none.recipients[0]!).sort(), ['address', 'attempts', 'status']);
  });
});

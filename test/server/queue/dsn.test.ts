// DSN messages as a mail client reads them (parsed with mailparser), status codes taken from remote replies,
// and relay settings errors that name the key to fix.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser } from 'mailparser';
import fc from 'fast-check';
import { buildDsn, headerBlock, isSevenBit, statusFromReply, wantsNotice } from '../../../src/server/queue/dsn.ts';
import { decodeXtext, encodeXtext, isOrcpt, isXtext } from '../../../src/server/queue/xtext.ts';
import { relaySettings } from '../../../src/server/queue/service.ts';

const original = Buffer.from('From: Alice <alice@home.test>\r\nTo: bob@far.test\r\nSubject: Quarterly report\r\nMessage-ID: <abc@home.test>\r\n\r\nsecret body text\r\n');

describe('DSN', () => {
  it('is a multipart/report a mail client parses: notice text, delivery-status fields, original headers only', async () => {
    const dsn = buildDsn({
      reportingMta: 'mail.home.test', to: 'alice@home.test', arrivalDate: new Date('2026-11-28T10:00:00Z'), now: new Date('2026-11-28T10:05:00Z'),
      recipients: [{ address: 'bob@far.test', action: 'failed', status: '5.1.1', diagnostic: '550 5.1.1 <bob@far.test>: user unknown', remoteMta: 'mx.far.test' }],
      originalHeaders: headerBlock(original), originalMessageId: 'abc@home.test',
    });
    const text = dsn.toString('latin1');
    assert.doesNotMatch(text, /(^|[^\r])\n/, 'CRLF line endings only');
    assert.doesNotMatch(text, /secret body text/, 'the original body is not returned');
    const parsed = await simpleParser(dsn);
    assert.equal(parsed.subject, 'Undelivered Mail Returned to Sender');
    assert.equal(parsed.headers.get('auto-submitted'), 'auto-replied');
    assert.equal(parsed.inReplyTo, '<abc@home.test>');
    assert.match(String(parsed.headers.get('content-type') && (parsed.headers.get('content-type') as { value: string }).value), /multipart\/report/);
    assert.match(parsed.text ?? '', /<bob@far\.test>: 550 5\.1\.1 <bob@far\.test>: user unknown/);
    // mailparser shows the message/delivery-status part inline, as text after the notice.
    const boundary = /boundary="([^"]+)"/.exec(text)![1]!;
    assert.match(text, new RegExp(`--${boundary}\r\nContent-Type: message/delivery-status\r\n`), 'a part of its own');
    const fields = parsed.text ?? '';
    assert.match(fields, /^Reporting-MTA: dns; mail\.home\.test$/m);
    assert.match(fields, /^Final-Recipient: rfc822; bob@far\.test$/m);
    assert.match(fields, /^Status: 5\.1\.1$/m);
    const headers = parsed.attachments.find((a) => a.contentType === 'text/rfc822-headers');
    assert.ok(headers);
    assert.match(headers.content.toString(), /^Subject: Quarterly report/m);
  });

  it('keeps every field on one 7-bit line whatever the remote reply contains', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (reply) => {
      const dsn = buildDsn({
        reportingMta: 'mail.home.test', to: 'alice@home.test', arrivalDate: new Date(0), now: new Date(0),
        recipients: [{ address: 'bob@far.test', action: 'failed', status: '5.0.0', diagnostic: reply }],
        originalHeaders: Buffer.alloc(0),
      }).toString('latin1');
      const diag = dsn.split('\r\n').filter((l) => l.startsWith('Diagnostic-Code:'));
      assert.equal(diag.length, 1);
      assert.match(diag[0]!, /^[\x20-\x7e]*$/);
      assert.doesNotMatch(dsn.replace(/\r\n/g, ''), /[\r\n]/, 'no bare CR or LF smuggled in');
    }));
  });

  it('takes the status from the enhanced code of a reply, else from its class', () => {
    assert.equal(statusFromReply('550 5.7.1 rejected by policy', '5.0.0'), '5.7.1');
    assert.equal(statusFromReply('452-4.2.2 mailbox full', '4.0.0'), '4.2.2');
    assert.equal(statusFromReply('554 no', '4.0.0'), '5.0.0');
    assert.equal(statusFromReply('connect ECONNREFUSED', '4.4.1'), '4.4.1');
  });
});

describe('DSN extension fields (RFC 3461/3464)', () => {
  const base = { reportingMta: 'mail.home.test', to: 'alice@home.test', arrivalDate: new Date(0), now: new Date(0), originalHeaders: headerBlock(original) };

  it('carries Original-Envelope-Id per message and Original-Recipient per recipient, as xtext', async () => {
    const dsn = buildDsn({ ...base, envelopeId: 'env+2B1',
      recipients: [{ address: 'bob@far.test', action: 'failed', status: '5.1.1', diagnostic: '550 5.1.1 unknown', originalRecipient: 'rfc822;Bob+2Bx@far.test' }] }).toString('latin1');
    const [perMessage, perRecipient] = dsn.split('Content-Type: message/delivery-status')[1]!.split('\r\n--')[0]!.trim().split('\r\n\r\n').slice(1);
    assert.match(perMessage!, /^Original-Envelope-Id: env\+2B1$/m);
    assert.match(perRecipient!, /^Original-Recipient: rfc822;Bob\+2Bx@far\.test\r\nFinal-Recipient: rfc822; bob@far\.test$/m);
  });

  it('returns the whole message as message/rfc822 when given, a mail client reads it as an attachment', async () => {
    const dsn = buildDsn({ ...base, fullMessage: original, recipients: [{ address: 'bob@far.test', action: 'failed', status: '5.0.0', diagnostic: 'x' }] });
    const parsed = await simpleParser(dsn);
    const returned = parsed.attachments.find((a) => a.contentType === 'message/rfc822');
    assert.ok(returned, 'a message/rfc822 part');
    assert.match(returned.content.toString(), /\r\n\r\nsecret body text\r\n$/);
    assert.equal(parsed.attachments.some((a) => a.contentType === 'text/rfc822-headers'), false);
  });

  it('says so when RET=FULL could not be honoured; success reports say delivered or relayed with no diagnostic', () => {
    const noted = buildDsn({ ...base, headersOnlyReason: 'the message holds 8-bit data', recipients: [{ address: 'b@far.test', action: 'failed', status: '5.0.0', diagnostic: 'x' }] }).toString('latin1');
    assert.match(noted, /You asked for the whole message back, but the message holds 8-bit data: only its headers are returned\./);
    const ok = buildDsn({ ...base, recipients: [{ address: 'b@far.test', action: 'delivered', status: '2.0.0', diagnostic: '' }] }).toString('latin1');
    assert.match(ok, /^Subject: Successful Mail Delivery Report$/m);
    assert.match(ok, /^Action: delivered$/m);
    assert.doesNotMatch(ok, /^Diagnostic-Code:/m);
  });

  it('reads NOTIFY: absent = FAILURE,DELAY; NEVER = none; otherwise exactly what is listed', () => {
    assert.deepEqual(['SUCCESS', 'FAILURE', 'DELAY'].map((k) => wantsNotice({}, k as 'SUCCESS')), [false, true, true]);
    assert.deepEqual(['SUCCESS', 'FAILURE', 'DELAY'].map((k) => wantsNotice({ notify: ['NEVER'] }, k as 'SUCCESS')), [false, false, false]);
    assert.deepEqual(['SUCCESS', 'FAILURE', 'DELAY'].map((k) => wantsNotice({ notify: ['FAILURE'] }, k as 'SUCCESS')), [false, true, false]);
    assert.deepEqual(['SUCCESS', 'FAILURE', 'DELAY'].map((k) => wantsNotice({ notify: ['SUCCESS', 'DELAY'] }, k as 'SUCCESS')), [true, false, true]);
  });

  it('tells 7-bit messages from 8-bit ones and overlong lines', () => {
    assert.equal(isSevenBit(original), true);
    assert.equal(isSevenBit(Buffer.from('Subject: \u00e9\r\n\r\n')), false);
    assert.equal(isSevenBit(Buffer.from(`a: ${'x'.repeat(1000)}\r\n`)), false);
    assert.equal(isSevenBit(Buffer.from('a\0b')), false);
  });
});

describe('xtext', () => {
  it('encodes every Latin-1 string to xtext that decodes back to it', () => {
    fc.assert(fc.property(fc.string({ unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 60 }), (s) => {
      const x = encodeXtext(s);
      assert.ok(isXtext(x), x);
      assert.equal(decodeXtext(x), s);
    }));
  });

  it('refuses what is not xtext and ORCPT values without an address type', () => {
    for (const bad of ['a b', 'a=b', 'a+', 'a+2', 'a+zz', 'a+2b', '\u00e9']) assert.equal(isXtext(bad), false, bad);
    assert.equal(isOrcpt('rfc822;bob+2Bx@far.test'), true);
    assert.equal(isOrcpt('x-local;anything'), true);
    for (const bad of ['bob@far.test', ';bob@far.test', 'rfc822;', 'rfc 822;bob@far.test', 'rfc822;bob=x@far.test']) assert.equal(isOrcpt(bad), false, bad);
  });
});

describe('relay settings', () => {
  it('refuses a username without a password file, and says which file it cannot read', () => {
    assert.throws(() => relaySettings({ host: 'smtp.relay.test', port: 587, username: 'u' }), /relay\.username is set but relay\.passwordFile is not/);
    assert.throws(() => relaySettings({ host: 'smtp.relay.test', port: 587, username: 'u', passwordFile: '/nonexistent/pw' }), /relay\.passwordFile \/nonexistent\/pw: cannot read it \(ENOENT\)/);
    assert.deepEqual(relaySettings({ host: 'smtp.relay.test', port: 465 }), { host: 'smtp.relay.test', port: 465 });
    assert.equal(relaySettings(undefined), undefined);
  });
});

// DSN messages as a mail client reads them (parsed with mailparser), status codes taken from remote replies,
// and relay settings errors that name the key to fix.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser } from 'mailparser';
import fc from 'fast-check';
import { buildDsn, headerBlock, statusFromReply } from '../../../src/server/queue/dsn.ts';
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

describe('relay settings', () => {
  it('refuses a username without a password file, and says which file it cannot read', () => {
    assert.throws(() => relaySettings({ host: 'smtp.relay.test', port: 587, username: 'u' }), /relay\.username is set but relay\.passwordFile is not/);
    assert.throws(() => relaySettings({ host: 'smtp.relay.test', port: 587, username: 'u', passwordFile: '/nonexistent/pw' }), /relay\.passwordFile \/nonexistent\/pw: cannot read it \(ENOENT\)/);
    assert.deepEqual(relaySettings({ host: 'smtp.relay.test', port: 465 }), { host: 'smtp.relay.test', port: 465 });
    assert.equal(relaySettings(undefined), undefined);
  });
});

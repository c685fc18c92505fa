// End to end with imapflow (a real IMAP client library) over STARTTLS on the imap:// port and over imaps://:
// mailbox management, APPEND, FETCH of envelope/structure/parts, SEARCH, STORE, COPY, MOVE, EXPUNGE, STATUS,
// QUOTA, CONDSTORE.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ImapFlow, type FetchMessageObject, type FetchQueryObject, type StatusObject } from 'imapflow';
import { PASSWORD, USER, startImap, type ImapHarness } from './harness.ts';

let h: ImapHarness;
let c: ImapFlow;

const NESTED = [
  'From: "Carol Q." <carol@example.org>',
  'To: Alice <alice@example.test>, bob@example.test',
  'Cc: undisclosed-recipients:;',
  'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and =?iso-8859-1?q?caf=E9?=',
  'Message-ID: <nested-1@example.org>',
  'In-Reply-To: <earlier@example.org>',
  'Date: Fri, 27 Nov 2026 10:00:00 +0100',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="outer"',
  '',
  'preamble',
  '--outer',
  'Content-Type: multipart/alternative; boundary="alt"',
  '',
  '--alt',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  'Hello caf=C3=A9 zanzibarite',
  '--alt',
  'Content-Type: text/html; charset=utf-8',
  '',
  '<p>Hello</p>',
  '--alt--',
  '--outer',
  'Content-Type: message/rfc822',
  '',
  'From: dave@example.net',
  'Subject: inner',
  'Content-Type: text/plain',
  '',
  'inner body',
  '--outer',
  'Content-Type: application/pdf; name="r.pdf"',
  'Content-Disposition: attachment; filename="r.pdf"',
  'Content-Transfer-Encoding: base64',
  '',
  'JVBERi0xLjQK',
  '--outer--',
  '',
].join('\r\n');

function simple(n: number, subject: string, body = 'plain body'): string {
  return `From: sender${n}@example.org\r\nTo: alice@example.test\r\nSubject: ${subject}\r\nMessage-ID: <s${n}@example.org>\r\nDate: Sat, 2${n % 8} Nov 2026 08:00:00 +0000\r\n\r\n${body}\r\n`;
}

/** fetchOne / status answer false when the server said NO; here that is a test failure. */
async function one(range: string, query: FetchQueryObject, opts?: { uid?: boolean }): Promise<FetchMessageObject> {
  const m = await c.fetchOne(range, query, opts);
  assert.ok(m, `FETCH ${range} returned nothing`);
  return m;
}

async function stat(path: string, query: Parameters<ImapFlow['status']>[1]): Promise<StatusObject> {
  const st = await c.status(path, query);
  assert.ok(st, `STATUS ${path} failed`);
  return st;
}

before(async () => {
  h = await startImap({ quotaBytes: 10 * 1024 * 1024 });
  c = new ImapFlow({ host: h.host, port: h.imapPort, secure: false, auth: { user: USER, pass: PASSWORD }, tls: { ca: [h.certPem] }, logger: false, disableAutoIdle: true });
  await c.connect();
});

after(async () => {
  await c.logout().catch(() => undefined);
  await h.stop();
});

test('STARTTLS then login; capabilities after login include the extensions clients use', () => {
  assert.equal(c.secureConnection || c.usable, true);
  for (const cap of ['IMAP4rev2', 'UIDPLUS', 'MOVE', 'CONDSTORE', 'QRESYNC', 'SPECIAL-USE', 'IDLE', 'LIST-STATUS', 'ESEARCH']) {
    assert.ok(c.capabilities.has(cap), cap);
  }
});

test('LIST shows the special-use mailboxes; CREATE, RENAME, DELETE and subscriptions work', async () => {
  const boxes = await c.list();
  const byUse = Object.fromEntries(boxes.filter((b) => b.specialUse).map((b) => [b.specialUse, b.path]));
  assert.deepEqual(byUse, { '\\Inbox': 'INBOX', '\\Drafts': 'Drafts', '\\Sent': 'Sent', '\\Junk': 'Junk', '\\Trash': 'Trash', '\\Archive': 'Archive' });
  await c.mailboxCreate('Projects/Zürich');
  await c.mailboxRename('Projects/Zürich', 'Projects/Geneva');
  const names = (await c.list()).map((b) => b.path);
  assert.ok(names.includes('Projects/Geneva'));
  assert.ok(!names.includes('Projects/Zürich'));
  const projects = (await c.list()).find((b) => b.path === 'Projects');
  assert.ok(projects?.flags.has('\\HasChildren'));
  await c.mailboxSubscribe('Projects/Geneva');
  const subscribed = await c.list({ statusQuery: { messages: true, uidNext: true } });
  const geneva = subscribed.find((b) => b.path === 'Projects/Geneva');
  assert.equal(geneva?.status?.messages, 0, 'LIST-STATUS answers with the listing');
  await c.mailboxDelete('Projects/Geneva');
  assert.ok(!(await c.list()).some((b) => b.path === 'Projects/Geneva'));
  const again = await c.mailboxCreate('INBOX');
  assert.equal(again.created, false, 'INBOX already exists');
});

test('APPEND keeps flags and date and answers APPENDUID; FETCH returns ENVELOPE, BODYSTRUCTURE and parts', async () => {
  const r = await c.append('INBOX', NESTED, ['\\Flagged', '$Important'], new Date('2026-11-01T12:34:56Z'));
  assert.ok(r && typeof r === 'object' && r.uid === 1);
  const lock = await c.getMailboxLock('INBOX');
  try {
    const m = await one('1', { envelope: true, bodyStructure: true, flags: true, internalDate: true, size: true, uid: true });
    assert.ok(m);
    assert.deepEqual([...(m.flags ?? [])].sort(), ['$Important', '\\Flagged']);
    assert.equal((m.internalDate as Date).toISOString(), '2026-11-01T12:34:56.000Z');
    assert.equal(m.size, Buffer.byteLength(NESTED));
    const e = m.envelope!;
    assert.equal(e.subject, 'Grüße and café');
    assert.deepEqual(e.from, [{ name: 'Carol Q.', address: 'carol@example.org' }]);
    assert.deepEqual(e.to?.map((a) => a.address), ['alice@example.test', 'bob@example.test']);
    assert.equal(e.messageId, '<nested-1@example.org>');
    assert.equal(e.inReplyTo, '<earlier@example.org>');
    const bs = m.bodyStructure!;
    assert.equal(bs.type, 'multipart/mixed');
    const [alt, rfc822, pdf] = bs.childNodes!;
    assert.equal(alt!.type, 'multipart/alternative');
    assert.deepEqual(alt!.childNodes!.map((p) => [p.part, p.type, p.encoding]), [['1.1', 'text/plain', 'quoted-printable'], ['1.2', 'text/html', '7bit']]);
    assert.equal(rfc822!.type, 'message/rfc822');
    assert.equal(rfc822!.envelope?.subject, 'inner');
    assert.equal(pdf!.disposition, 'attachment');
    assert.equal(pdf!.dispositionParameters?.filename, 'r.pdf');

    const parts = await one('1', { bodyParts: ['1.1', '1.2', '2', '2.HEADER', '3', '1.1.MIME'] });
    assert.ok(parts && parts.bodyParts);
    assert.equal(parts.bodyParts.get('1.1')!.toString(), 'Hello caf=C3=A9 zanzibarite');
    assert.equal(parts.bodyParts.get('1.2')!.toString(), '<p>Hello</p>');
    assert.match(parts.bodyParts.get('2')!.toString(), /^From: dave@example.net\r\nSubject: inner\r\n/);
    assert.match(parts.bodyParts.get('2.header')!.toString(), /Subject: inner\r\n.*\r\n\r\n$/s);
    assert.equal(parts.bodyParts.get('3')!.toString(), 'JVBERi0xLjQK');
    assert.equal(parts.bodyParts.get('1.1.mime')!.toString(), 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n');

    const dl = await c.download('1', '3');
    assert.ok(dl.content, 'part 3 downloads');
    const chunks: Buffer[] = [];
    for await (const chunk of dl.content) chunks.push(chunk as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), '%PDF-1.4\n', 'the attachment decodes');

    const head = await one('1', { headers: ['subject', 'message-id'], source: { start: 0, maxLength: 20 } });
    assert.equal(head!.headers!.toString(), 'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and =?iso-8859-1?q?caf=E9?=\r\nMessage-ID: <nested-1@example.org>\r\n\r\n');
    assert.equal(head!.source!.toString(), NESTED.slice(0, 20), 'partial fetch');
    const flags = await one('1', { flags: true });
    assert.ok(!flags!.flags!.has('\\Seen'), 'BODY.PEEK does not set \\Seen');
    const full = await one('1', { source: true });
    assert.equal(full!.source!.toString(), NESTED);
  } finally {
    lock.release();
  }
});

test('SEARCH: headers, body text, flags, dates, sizes, UID sets, NOT/OR', async () => {
  for (let i = 2; i <= 6; i++) await c.append('INBOX', simple(i, `report ${i}`, i === 4 ? 'the quarterly zanzibarite numbers' : 'nothing here'), i % 2 ? ['\\Seen'] : []);
  const lock = await c.getMailboxLock('INBOX');
  try {
    assert.deepEqual(await c.search({ body: 'zanzibarite' }, { uid: true }), [1, 4]);
    assert.deepEqual(await c.search({ subject: 'report 5' }, { uid: true }), [5]);
    assert.deepEqual(await c.search({ from: 'sender3@' }, { uid: true }), [3]);
    assert.deepEqual(await c.search({ seen: true }, { uid: true }), [3, 5]);
    assert.deepEqual(await c.search({ seen: false, flagged: false }, { uid: true }), [2, 4, 6]);
    assert.deepEqual(await c.search({ keyword: '$Important' }, { uid: true }), [1]);
    assert.deepEqual(await c.search({ or: [{ uid: '2' }, { subject: 'report 6' }] }, { uid: true }), [2, 6]);
    assert.deepEqual(await c.search({ not: { uid: '1:4' } }, { uid: true }), [5, 6]);
    assert.deepEqual(await c.search({ larger: 500 }, { uid: true }), [1]);
    assert.deepEqual(await c.search({ before: new Date('2026-11-02T00:00:00Z') }, { uid: true }), [1]);
    assert.deepEqual(await c.search({ text: 'Grüße' }, { uid: true }), [1], 'encoded words are searched decoded');
    assert.deepEqual(await c.search({ header: { 'message-id': 's2@example.org' } }, { uid: true }), [2]);
    assert.deepEqual(await c.search({ body: 'no-such-word-anywhere' }), []);
  } finally {
    lock.release();
  }
});

test('STORE, COPY, MOVE, EXPUNGE with UIDPLUS and CONDSTORE', async () => {
  const lock = await c.getMailboxLock('INBOX');
  try {
    const before = c.mailbox && typeof c.mailbox === 'object' ? c.mailbox.highestModseq : undefined;
    assert.ok(before !== undefined);
    assert.ok(await c.messageFlagsAdd('2:3', ['\\Answered', '$Label1']));
    const f = await one('2', { flags: true });
    assert.deepEqual([...f!.flags!].sort(), ['$Label1', '\\Answered']);
    assert.ok(f!.modseq! > before!);
    // A conditional store that loses the race changes nothing.
    await c.messageFlagsAdd('2', ['\\Flagged'], { unchangedSince: 1n });
    assert.ok(!(await one('2', { flags: true }))!.flags!.has('\\Flagged'));
    await c.messageFlagsRemove('2', ['$Label1']);
    assert.deepEqual([...(await one('2', { flags: true }))!.flags!], ['\\Answered']);
    await c.messageFlagsSet('3', ['\\Draft']);
    assert.deepEqual([...(await one('3', { flags: true }))!.flags!], ['\\Draft']);

    const copied = await c.messageCopy('2:3', 'Archive');
    assert.ok(copied);
    assert.deepEqual([...copied.uidMap!.entries()], [[2, 1], [3, 2]]);
    const moved = await c.messageMove('5', 'Trash', { uid: true });
    assert.ok(moved);
    assert.deepEqual([...moved.uidMap!.entries()], [[5, 1]]);
    assert.equal((c.mailbox as { exists: number }).exists, 5);
    assert.ok(await c.messageDelete('6', { uid: true }));
    assert.deepEqual(await c.search({ all: true }, { uid: true }), [1, 2, 3, 4]);
    const archive = await stat('Archive', { messages: true, uidNext: true, unseen: true });
    assert.deepEqual([archive.messages, archive.uidNext], [2, 3]);
    const trash = await stat('Trash', { messages: true });
    assert.equal(trash.messages, 1);
  } finally {
    lock.release();
  }
});

test('EXAMINE is read-only; STORE there is refused', async () => {
  const mb = await c.mailboxOpen('Archive', { readOnly: true });
  assert.equal(mb.readOnly, true);
  assert.equal(await c.messageFlagsAdd('1', ['\\Deleted']), false);
  const f = await one('1', { flags: true, source: true });
  assert.ok(!f!.flags!.has('\\Seen'), 'reading in a read-only mailbox does not set \\Seen');
  await c.mailboxClose();
});

test('GETQUOTAROOT reports usage against the account quota', async () => {
  const q = await c.getQuota('INBOX');
  assert.ok(q && q.storage);
  assert.equal(q.storage.limit, 10 * 1024 * 1024);
  assert.ok(q.storage.usage! > 0);
});

test('implicit TLS on imaps:// with AUTHENTICATE PLAIN', async () => {
  const t = new ImapFlow({ host: h.host, port: h.imapsPort, secure: true, auth: { user: USER, pass: PASSWORD, loginMethod: 'AUTH=PLAIN' }, tls: { ca: [h.certPem], servername: 'localhost' }, logger: false });
  await t.connect();
  const st = await t.status('INBOX', { messages: true });
  assert.ok(st);
  assert.equal(st.messages, 4);
  await t.logout();
  const bad = new ImapFlow({ host: h.host, port: h.imapsPort, secure: true, auth: { user: USER, pass: 'wrong' }, tls: { ca: [h.certPem], servername: 'localhost' }, logger: false });
  await assert.rejects(bad.connect());
  bad.close();
});

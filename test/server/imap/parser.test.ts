// The command framing, tokenizer and response writer, without a server: limits, literals, sections, and a
// property that anything the writer emits as a string reads back byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { CommandReader, type ReadResult } from '../../../src/server/imap/reader.ts';
import { DEFAULT_IMAP_LIMITS, type ImapLimits } from '../../../src/server/imap/limits.ts';
import { tokenize, ImapSyntaxError, type Value } from '../../../src/server/imap/tokens.ts';
import { Args } from '../../../src/server/imap/args.ts';
import { parseFetchRequest } from '../../../src/server/imap/fetch-items.ts';
import { parseSearchKeys } from '../../../src/server/imap/search-keys.ts';
import { ResponseBuilder, writeEnvelope } from '../../../src/server/imap/writer.ts';
import { decodeMutf7, encodeMutf7 } from '../../../src/server/imap/mutf7.ts';
import { compilePattern } from '../../../src/server/imap/pattern.ts';
import { parseSequenceSet } from '../../../src/server/imap/sequence.ts';
import { SelectedMailbox } from '../../../src/server/imap/selected.ts';
import { parseDateTime, formatDateTime } from '../../../src/server/imap/datetime.ts';
import { filterHeader } from '../../../src/server/imap/body-sections.ts';

function reader(limits: Partial<ImapLimits> = {}): { r: CommandReader; input: PassThrough; continuations: () => number } {
  let n = 0;
  const r = new CommandReader({ ...DEFAULT_IMAP_LIMITS, ...limits }, () => { n++; });
  r.appendAllowed = true; // as after login
  const input = new PassThrough();
  r.attach(input);
  return { r, input, continuations: () => n };
}

function values(cmd: ReadResult): Value[] {
  assert.equal(cmd.kind, 'command');
  return tokenize((cmd as Extract<ReadResult, { kind: 'command' }>).segments, 8);
}

function parse(line: string): Value[] {
  return tokenize([{ kind: 'text', data: Buffer.from(line) }], 8);
}

test('a command arriving in pieces is framed once complete, with a synchronising literal asked for', async () => {
  const { r, input, continuations } = reader();
  const next = r.next();
  input.write('a1 LOGIN {5}');
  input.write('\r\n');
  await new Promise((res) => setImmediate(res));
  assert.equal(continuations(), 1, 'the server says "+" before the client sends the literal');
  input.write('al\r\nc "pw"\r\n');
  const cmd = await next;
  const v = values(cmd);
  assert.deepEqual(v.map((x) => x.type), ['atom', 'atom', 'string', 'string']);
  assert.equal((v[2] as { value: Buffer }).value.toString(), 'al\r\nc');
});

test('a non-synchronising literal gets no continuation', async () => {
  const { r, input, continuations } = reader();
  input.write('a2 APPEND INBOX {3+}\r\nabc\r\n');
  const v = values(await r.next());
  assert.equal(continuations(), 0);
  assert.equal((v[3] as { value: Buffer }).value.toString(), 'abc');
});

test('over-limit literals: synchronising ones are refused at once, non-synchronising ones skipped, and the next command is read', async () => {
  const { r, input, continuations } = reader({ maxLiteralBytes: 10, maxAppendBytes: 20 });
  input.write('b1 LOGIN {11}\r\n');
  const e1 = await r.next();
  assert.deepEqual([e1.kind, (e1 as { code: string }).code, (e1 as { tag: string }).tag], ['error', 'TOOBIG', 'b1']);
  assert.equal(continuations(), 0);
  input.write('b2 APPEND INBOX {21+}\r\n' + 'x'.repeat(21) + ' trailing\r\nb3 NOOP\r\n');
  const e2 = await r.next();
  assert.equal(e2.kind, 'error');
  assert.equal((e2 as { append?: boolean }).append, true, 'APPEND over the limit is answered NO [TOOBIG]');
  const ok = await r.next();
  assert.equal(ok.kind, 'command');
  assert.equal((ok as { tag: string }).tag, 'b3');
});

test('an APPEND literal may be larger than other literals, up to the append limit', async () => {
  const { r, input } = reader({ maxLiteralBytes: 10, maxAppendBytes: 100 });
  input.write(`c1 APPEND INBOX {50+}\r\n${'y'.repeat(50)}\r\n`);
  assert.equal((await r.next()).kind, 'command');
});

test('a line over the limit is refused, dropped up to its end, and the session reads on', async () => {
  const { r, input } = reader({ maxLineBytes: 1000 });
  input.write(`d1 NOOP ${'z'.repeat(5000)}\r\nd2 NOOP\r\n`);
  const e = await r.next();
  assert.equal(e.kind, 'error');
  assert.equal((e as { code: string }).code, 'TOOBIG');
  const c = await r.next();
  assert.equal((c as { tag: string }).tag, 'd2');
});

test('memory stays bounded when a client sends an endless line', async () => {
  const { r, input } = reader({ maxLineBytes: 1000 });
  const next = r.next();
  for (let i = 0; i < 200; i++) input.write('q'.repeat(10000));
  await new Promise((res) => setImmediate(res));
  assert.ok(r.buffered < 100_000, `buffered ${r.buffered} bytes`);
  input.write('\r\ne1 NOOP\r\n');
  assert.equal((await next).kind, 'error');
  assert.equal(((await r.next()) as { tag: string }).tag, 'e1');
});

test('tokenizer: sections, partials, nested lists, quoted escapes', () => {
  const v = parse('a FETCH 1:* (BODY.PEEK[HEADER.FIELDS (Subject "From")]<0.100> BODY[1.2.MIME] "a\\"b\\\\c")');
  const list = (v[3] as { value: Value[] }).value;
  const first = list[0] as Extract<Value, { type: 'atom' }>;
  assert.equal(first.value, 'BODY.PEEK');
  assert.deepEqual(first.partial, { start: 0, length: 100 });
  assert.equal(first.section!.length, 2);
  assert.equal((list[2] as { value: Buffer }).value.toString(), 'a"b\\c');
});

test('tokenizer: syntax errors are ImapSyntaxError (answered BAD), never crashes', () => {
  for (const bad of ['a (b', 'a b)', 'a "unterminated', 'a  b', 'a "x\\y"', 'a b\x00c', 'a b\xffc', 'a ((((((((((x))))))))))', 'a BODY[1']) {
    assert.throws(() => tokenize([{ kind: 'text', data: Buffer.from(bad, 'latin1') }], 8), ImapSyntaxError, bad);
  }
});

test('fetch attributes: macros, sections, partial, modifiers', () => {
  const req = parseFetchRequest(new Args(parse('(UID BODY.PEEK[1.HEADER] BINARY[2]<5.10> RFC822.SIZE) (CHANGEDSINCE 7)')));
  assert.equal(req.changedSince, 7);
  assert.deepEqual(req.items.map((i) => i.kind), ['uid', 'section', 'section', 'rfc822.size']);
  const s = req.items[1] as Extract<typeof req.items[number], { kind: 'section' }>;
  assert.deepEqual([s.section.part, s.section.text, s.peek, s.responseName], [[1], 'HEADER', true, 'BODY[1.HEADER]']);
  assert.equal(parseFetchRequest(new Args(parse('FULL'))).items.length, 5);
  for (const bad of ['(BODY[0])', '(BODY[1.])', '(BODY[MIME])', '(BODY[HEADER.FIELDS ()])', '(FOO)', '(BINARY[HEADER])', '()']) {
    assert.throws(() => parseFetchRequest(new Args(parse(bad))), ImapSyntaxError, bad);
  }
});

test('search keys: every RFC 3501 key parses into the store tree', () => {
  const ctx = { seqToUids: () => [[5, 5]] as const, uidSetToUids: () => [[9, 9]] as const, recentUids: () => [] };
  const all = 'ALL ANSWERED BCC x BEFORE 1-Feb-2020 BODY y CC z DELETED DRAFT FLAGGED FROM f HEADER X-A v KEYWORD $k LARGER 5 NEW NOT SEEN OLD ON 2-Mar-2021 OR SEEN UNSEEN RECENT SEEN SENTBEFORE 1-Jan-2000 SENTON 1-Jan-2000 SENTSINCE 1-Jan-2000 SINCE 1-Jan-2000 SMALLER 9 SUBJECT s TEXT t TO u UID 1:3 UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNKEYWORD $j UNSEEN 1,2 (FLAGGED SEEN) MODSEQ 4';
  const r = parseSearchKeys(parse(all), ctx as never);
  assert.equal(r.key.type, 'and');
  assert.equal((r.key as { keys: unknown[] }).keys.length, 38);
  assert.equal(r.usesModseq, true);
  assert.deepEqual(parseSearchKeys(parse('BEFORE 1-Feb-2020'), ctx as never).key, { type: 'internaldate', op: 'before', date: '2020-02-01' });
  for (const bad of ['FOO', 'BEFORE 2020-01-01', 'OR SEEN', 'LARGER x', '', 'HEADER "a:b" c']) {
    assert.throws(() => parseSearchKeys(parse(bad), ctx as never), ImapSyntaxError, bad);
  }
});

test('modified UTF-7 round trip and RFC 3501 example', () => {
  assert.equal(encodeMutf7('~peter/mail/台北/日本語'), '~peter/mail/&U,BTFw-/&ZeVnLIqe-');
  assert.equal(decodeMutf7('&U,BTFw-&-x'), '台北&x');
  fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), (s) => decodeMutf7(encodeMutf7(s)) === s));
  assert.throws(() => decodeMutf7('a&Jjo'), ImapSyntaxError);
});

test('LIST patterns: * crosses levels, % does not, INBOX in any case, no pathological time', () => {
  assert.equal(compilePattern('*')('a/b/c'), true);
  assert.equal(compilePattern('%')('a/b'), false);
  assert.equal(compilePattern('a/%')('a/b'), true);
  assert.equal(compilePattern('inbox')('INBOX'), true);
  assert.equal(compilePattern('%/%/x')('a/b/x'), true);
  const evil = compilePattern('*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b');
  assert.equal(evil('a'.repeat(1000)), false);
});

test('sequence and UID sets resolve overlapping, reversed and "*" ranges against the view', () => {
  const view = new SelectedMailbox({ id: 1 } as never, Array.from({ length: 50000 }, (_, i) => i * 2 + 1), [], { readOnly: false, origin: null });
  const set = parseSequenceSet(Array.from({ length: 10000 }, () => '1:*').join(','));
  assert.equal(view.resolve(set, false).length, 50000);
  assert.deepEqual(view.resolve(parseSequenceSet('3,1:2,2,50000:*'), false), [1, 3, 5, 99999]);
  assert.deepEqual(view.resolve(parseSequenceSet('4:2,99999:*,7'), true), [3, 7, 99999]);
  assert.deepEqual(view.resolve(parseSequenceSet('200000:*'), true), [99999], 'n:* includes the largest UID');
});

test('sequence sets and date-times', () => {
  assert.deepEqual(parseSequenceSet('1:3,5,7:*'), [[1, 3], [5, 5], [7, null]]);
  assert.throws(() => parseSequenceSet('0'), ImapSyntaxError);
  assert.throws(() => parseSequenceSet('1,,2'), ImapSyntaxError);
  const d = parseDateTime(' 3-Nov-2026 09:05:01 -0130');
  assert.equal(d.date.toISOString(), '2026-11-03T10:35:01.000Z');
  assert.equal(formatDateTime(d.date.getTime(), d.zone), '03-Nov-2026 09:05:01 -0130');
});

test('HEADER.FIELDS keeps folded fields whole and ends with the blank line', () => {
  const h = Buffer.from('Subject: a\r\n b\r\nFrom: x\r\nX-Y: z\r\n\r\n');
  assert.equal(filterHeader(h, ['subject', 'X-Y'], false).toString(), 'Subject: a\r\n b\r\nX-Y: z\r\n\r\n');
  assert.equal(filterHeader(h, ['subject'], true).toString(), 'From: x\r\nX-Y: z\r\n\r\n');
});

test('ENVELOPE: 8-bit values go as literals for IMAP4rev1 clients and quoted for UTF-8 ones; both read back', async () => {
  const env = {
    date: 'Thu, 01 Jan 2026 00:00:00 +0000', subject: 'say "hi" \\ there',
    from: [{ name: 'Chloé', adl: null, mailbox: 'chloé', host: 'example.org' }], sender: null, replyTo: null,
    to: [{ name: null, adl: null, mailbox: 'team', host: null }, { name: null, adl: null, mailbox: null, host: null }],
    cc: null, bcc: [], inReplyTo: null, messageId: '<1@x>',
  };
  for (const utf8 of [false, true]) {
    const w = new ResponseBuilder(utf8).raw('t ENV');
    writeEnvelope(w, env);
    const wire = w.finish();
    assert.equal(wire.includes('{'), !utf8, utf8 ? 'quoted UTF-8' : 'literals for 8-bit');
    const { r, input } = reader();
    input.write(wire);
    const v = values(await r.next());
    const list = (v[2] as { value: Value[] }).value;
    assert.equal((list[1] as { value: Buffer }).value.toString(), 'say "hi" \\ there');
    const from = ((list[2] as { value: Value[] }).value[0] as { value: Value[] }).value;
    assert.equal((from[2] as { value: Buffer }).value.toString(), 'chloé');
    assert.equal((list[4] as { type: string; value: unknown }).type, 'list', 'Reply-To defaults to From');
    assert.equal((list[7] as { value: string }).value, 'NIL', 'an empty address list is NIL');
  }
});

test('property: any bytes the writer sends as a string read back unchanged (quoted or literal)', async () => {
  await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 2000 }), fc.boolean(), async (bytes, utf8) => {
    const data = Buffer.from(bytes.filter((b) => b !== 0));
    const w = new ResponseBuilder(utf8).raw('t1 X').string(data).open().string('k').string(data).close();
    const wire = w.finish();
    // The server's own reader reads the same syntax clients send; literals here are synchronising.
    const { r, input } = reader();
    input.write(wire);
    const v = values(await r.next());
    assert.deepEqual((v[2] as { value: Buffer }).value, data);
    const list = (v[3] as { value: Value[] }).value;
    assert.deepEqual((list[1] as { value: Buffer }).value, data);
  }), { numRuns: 200 });
});

// FETCH over a mailbox larger than one store batch and one output chunk, as clients sync it: imapflow reads
// exactly the flags, envelopes (8-bit ones included) and UIDs that are stored, after another session changed
// flags and expunged between SELECT and FETCH; the 8-bit envelope is a literal for IMAP4rev1 clients and a
// quoted UTF-8 string after ENABLE IMAP4rev2; a small command's responses and its tagged answer come together.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { USER, startImap, type ImapHarness } from './harness.ts';
import { clientPool } from './clients.ts';

const COUNT = 1300;
let h: ImapHarness;
/** UID → the message number it was generated from. */
const numberOf = new Map<number, number>();
const { flow, raw, closeAll } = clientPool(() => h);

/** Every fifth sender has an 8-bit name and local part (raw UTF-8 in the header, as some mailers send). */
function sender(i: number): { name: string; address: string } {
  return i % 5 === 0 ? { name: `Zoë Ørsted ${i}`, address: `zoë${i}@example.org` } : { name: `Sender ${i}`, address: `s${i}@example.org` };
}

function initialFlags(i: number): string[] {
  return i % 3 === 0 ? ['\\Seen'] : i % 7 === 0 ? ['\\Answered', '$Label1'] : [];
}

function message(i: number): Buffer {
  const { name, address } = sender(i);
  return Buffer.from(`From: "${name}" <${address}>\r\nTo: ${USER}\r\nSubject: bulk ${i} "quoted" \\ back\r\n`
    + `Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bulk${i}@example.org>\r\n\r\nbody ${i}\r\n`);
}

function uidOf(i: number): number {
  for (const [uid, n] of numberOf) if (n === i) return uid;
  throw new Error(`message ${i} was not appended`);
}

before(async () => {
  h = await startImap();
  const inbox = h.store.getMailbox(USER, 'INBOX')!;
  // In groups, so the store commits many per transaction (their UIDs need not follow the message numbers).
  for (let i = 1; i <= COUNT; i += 100) {
    const group = Array.from({ length: Math.min(100, COUNT - i + 1) }, (_, k) => i + k);
    const results = await Promise.all(group.map((n) => h.store.append(inbox.id, message(n), { flags: initialFlags(n) })));
    results.forEach((r, k) => numberOf.set(r.uid, group[k]!));
  }
});

after(async () => {
  await closeAll();
  await h.stop();
});

test('imapflow reads every flag, envelope and UID of a large range, with changes made by another session in between', async () => {
  const reader = flow();
  const other = flow();
  await reader.connect();
  await other.connect();
  await reader.mailboxOpen('INBOX');
  await other.mailboxOpen('INBOX');
  // Between the reader's SELECT and its FETCH: flags change on either side of a batch boundary, a keyword the
  // reader has not seen yet appears, and two messages go away.
  await other.messageFlagsAdd('150:260', ['\\Flagged'], { uid: true });
  await other.messageFlagsAdd('1201', ['$Fresh'], { uid: true });
  const unseen = uidOf(3);
  await other.messageFlagsRemove(String(unseen), ['\\Seen'], { uid: true });
  // By message number, not UID: the later tests fetch other message numbers, whatever UIDs the appends gave.
  const gone = [uidOf(10), uidOf(1000)];
  await other.messageDelete(gone.join(','), { uid: true });

  const got = new Map<number, { flags: string[]; subject: string; from: string; fromName: string; messageId: string }>();
  let count = 0;
  for await (const m of reader.fetch('1:*', { uid: true, flags: true, envelope: true }, { uid: true })) {
    count++;
    got.set(m.uid, {
      flags: [...(m.flags ?? [])].filter((f) => f !== '\\Recent').sort(),
      subject: m.envelope!.subject!, from: m.envelope!.from![0]!.address!, fromName: m.envelope!.from![0]!.name!, messageId: m.envelope!.messageId!,
    });
  }
  assert.equal(got.size, COUNT - 2, 'every message but the two expunged, each once');
  assert.equal(count, COUNT - 2, 'no unsolicited FETCH repeats flags the FETCH itself gave');
  assert.ok(!got.has(gone[0]!) && !got.has(gone[1]!));
  for (let uid = 1; uid <= COUNT; uid++) {
    if (gone.includes(uid)) continue;
    const m = got.get(uid);
    assert.ok(m, `uid ${uid} fetched`);
    const i = numberOf.get(uid)!;
    const flags = initialFlags(i).filter((f) => !(uid === unseen && f === '\\Seen'));
    if (uid >= 150 && uid <= 260) flags.push('\\Flagged');
    if (uid === 1201) flags.push('$Fresh');
    assert.deepEqual(m.flags, flags.sort(), `flags of uid ${uid}`);
    const { name, address } = sender(i);
    assert.equal(m.subject, `bulk ${i} "quoted" \\ back`);
    assert.equal(m.from, address);
    assert.equal(m.fromName, name);
    assert.equal(m.messageId, `<bulk${i}@example.org>`);
  }
});

test('a FETCH that gives new flags repeats none of them afterwards, and still announces a new keyword', async () => {
  const c = await raw();
  await c.command('s', 'SELECT INBOX');
  const other = flow();
  await other.connect();
  await other.mailboxOpen('INBOX');
  const [a, b] = [uidOf(20), uidOf(21)];
  await other.messageFlagsAdd(`${a},${b}`, ['$Brandnew'], { uid: true });
  await other.messageFlagsAdd(String(uidOf(22)), ['\\Draft'], { uid: true });
  const r = await c.command('f', `UID FETCH ${a},${b} (FLAGS)`);
  const lines = r.split('\r\n').filter((l) => l.startsWith('* '));
  assert.equal(lines.filter((l) => l.includes(`UID ${a} `)).length, 1, r);
  assert.equal(lines.filter((l) => l.includes(`UID ${b} `)).length, 1, r);
  assert.match(r, /\* FLAGS \([^)]*\$Brandnew[^)]*\)\r\n/, 'the keyword is announced');
  assert.match(r, new RegExp(`FETCH \\(UID ${uidOf(22)} FLAGS \\([^)]*\\\\Draft`), 'a change the FETCH did not cover is still told');
  assert.match(r, /f OK/);
});

test('an 8-bit envelope is a literal for IMAP4rev1 and a quoted UTF-8 string for IMAP4rev2', async () => {
  const rev1 = await raw();
  await rev1.command('s', 'EXAMINE INBOX');
  const lit = await rev1.command('f', `UID FETCH ${uidOf(5)} (ENVELOPE)`);
  const name = Buffer.from('Zoë Ørsted 5').toString('latin1');
  const local = Buffer.from('zoë5').toString('latin1');
  assert.ok(lit.includes(`(({${Buffer.byteLength('Zoë Ørsted 5')}}\r\n${name} NIL {${Buffer.byteLength('zoë5')}}\r\n${local} "example.org"))`), JSON.stringify(lit));
  assert.ok(lit.includes('"bulk 5 \\"quoted\\" \\\\ back"'), 'quotes and backslashes escaped');

  const rev2 = await raw();
  assert.match(await rev2.command('e', 'ENABLE IMAP4rev2'), /\* ENABLED IMAP4rev2/);
  await rev2.command('s', 'EXAMINE INBOX');
  const quoted = await rev2.command('f', `UID FETCH ${uidOf(5)} (ENVELOPE)`);
  assert.ok(quoted.includes(`(("${name}" NIL "${local}" "example.org"))`), JSON.stringify(quoted));
  assert.doesNotMatch(quoted, /\{\d+\}\r\n/);
});

test('a small command answers in one piece: its responses and the tagged answer arrive together', async () => {
  const c = await raw();
  const chunks: string[] = [];
  c.socket.on('data', (d: Buffer) => chunks.push(d.toString('latin1')));
  await c.command('s', 'SELECT INBOX');
  const selected = chunks.join('');
  assert.equal(chunks.length, 1, `one TLS record for SELECT: ${JSON.stringify(chunks)}`);
  assert.match(selected, /\* \d+ EXISTS\r\n[\s\S]*s OK \[READ-WRITE\]/);
  chunks.length = 0;
  await c.command('f', `UID FETCH ${uidOf(7)} (FLAGS)`);
  assert.equal(chunks.length, 1, `one TLS record for a one-message FETCH: ${JSON.stringify(chunks)}`);
  assert.match(chunks[0]!, /^\* \d+ FETCH \(UID \d+ FLAGS \(\\Answered \$Label1( \\Recent)?\)\)\r\nf OK/);
});

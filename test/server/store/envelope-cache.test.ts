// ENVELOPE cached as IMAP text at delivery: FETCH gets the text without the JSON, literals included for values
// that cannot be quoted (schema 6); an index written before version 4 opens and gets the text for every row.
import assert from 'node:assert/strict';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { hasLiteral } from '../../../src/server/store/imap-envelope.ts';
import { message, storeFixture, user, type StoreFixture } from './fixture.ts';

const ALICE = 'alice@example.com';
const fixtures: StoreFixture[] = [];
after(async () => {
  for (const f of fixtures) await f.cleanup();
});

const EXPECTED = '("Tue, 24 Nov 2026 10:00:00 +0000" "say \\"hi\\"" (("Sender" NIL "sender" "example.org")) (("Sender" NIL "sender" "example.org"))'
  + ' (("Sender" NIL "sender" "example.org")) ((NIL NIL "alice" "example.com")) NIL NIL NIL "<sayhi@example.org>")';

describe('cached IMAP envelope', () => {
  it('caches the quoted form at delivery, literals for 8-bit headers, and fills in pre-6 indexes', async () => {
    const f = await storeFixture([user(ALICE)]);
    fixtures.push(f);
    await f.store.deliver(ALICE, message('say "hi"', 'x\r\n'), { mailbox: 'INBOX' });
    await f.store.deliver(ALICE, message('caf\u00e9 cr\u00e8me', 'y\r\n'), { mailbox: 'INBOX' });
    const mb = f.store.getMailbox(ALICE, 'INBOX')!;
    const [plain, eightBit] = f.store.fetch(mb.id, [[1, Infinity]], { envelopeImap: true });
    assert.equal(plain!.envelopeImap, EXPECTED);
    assert.equal(plain!.envelope, undefined, 'no JSON parsed when the text is cached');
    // Raw UTF-8 needs a literal for IMAP4rev1 clients: cached with its byte count, the JSON is not read.
    assert.equal(eightBit!.envelope, undefined);
    assert.ok(hasLiteral(eightBit!.envelopeImap!));
    assert.ok(eightBit!.envelopeImap!.includes(' {12}\r\ncaf\u00e9 cr\u00e8me ('), eightBit!.envelopeImap);

    // A version-3 index has no envelope_imap column (nor its index): it opens, gains both, and every row its text.
    await f.store.close();
    const db = new DatabaseSync(path.join(f.stateDir, 'store', 'index.sqlite'));
    db.exec("DROP INDEX contents_envelope_imap; ALTER TABLE contents DROP COLUMN envelope_imap; UPDATE meta SET value = '3' WHERE key = 'schema_version';");
    db.close();
    await f.reopen();
    const [old, oldEightBit] = f.store.fetch(mb.id, [[1, 2]], { envelopeImap: true });
    assert.equal(old!.envelopeImap, EXPECTED);
    assert.equal(oldEightBit!.envelopeImap, eightBit!.envelopeImap, 'the same bytes as at delivery');
    await f.store.deliver(ALICE, message('after', 'z\r\n'), { mailbox: 'INBOX' });
    const [, , fresh] = f.store.fetch(mb.id, [[1, Infinity]], { envelopeImap: true });
    assert.match(fresh!.envelopeImap!, /^\("Tue, 24 Nov 2026 10:00:00 \+0000" "after" /);
    const check = new DatabaseSync(path.join(f.stateDir, 'store', 'index.sqlite'), { readOnly: true });
    assert.equal((check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value, '6');
    assert.ok(check.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = 'contents_envelope_imap'").get(), 'the migration builds the covering index');
    check.close();
  });
});

// The mailbox store: durability and crash safety, start-up reconciliation, quota, recipient resolution,
// mailbox names, flags/modseq, copy/move/expunge, search and notifications.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { mkdir, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { folderName } from '../../../src/server/store/names.ts';
import { SqliteStore } from '../../../src/server/store/sqlite-store.ts';
import { StoreError, type StoreEvent } from '../../../src/server/store/types.ts';
import { message, PASSWORD, storeFixture, user, type StoreFixture } from './fixture.ts';

const ALICE = 'alice@example.com';
const fixtures: StoreFixture[] = [];
async function fixture(...args: Parameters<typeof storeFixture>): Promise<StoreFixture> {
  const f = await storeFixture(...args);
  fixtures.push(f);
  return f;
}
after(async () => { await Promise.all(fixtures.map((f) => f.cleanup())); });

function curDir(f: StoreFixture, mailbox = 'INBOX'): string {
  return path.join(f.stateDir, 'mail', 'example.com', 'alice', folderName(mailbox), 'cur');
}

function code(err: unknown): string {
  return err instanceof StoreError ? err.code : `not a StoreError: ${String(err)}`;
}

describe('durability', () => {
  it('has the message file in cur/ before the index row becomes visible, and leaves no row when the write fails', async () => {
    const f = await fixture();
    const inbox = f.store.getMailbox(ALICE, 'INBOX')!;
    const seen: boolean[] = [];
    f.store.notifier.subscribe(inbox.id, (e) => {
      if (e.type === 'exists') seen.push(readdirSync(curDir(f)).length === f.store.listMessages(inbox.id).length);
    });
    await f.store.append(inbox.id, message('one', 'body\r\n'));
    assert.deepEqual(seen, [true]);
    // Make cur/ unusable: the rename fails, the append rejects, and no row points at a missing file.
    await rm(curDir(f), { recursive: true });
    await writeFile(curDir(f), 'not a directory');
    await assert.rejects(f.store.append(inbox.id, message('two', 'body\r\n')));
    assert.deepEqual(f.store.fetch(inbox.id, [[1, Infinity]], { envelope: true }).map((m) => m.envelope!.subject), ['one'],
      'the failed append left no index row');
  });

  it('keeps every acknowledged APPEND, intact and with its flags, when the process is killed mid-burst', async () => {
    const f = await fixture();
    await f.store.close();
    const child = spawn(process.execPath, [path.join(import.meta.dirname, 'append-burst.ts'), f.stateDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const acked: Array<{ uid: number; sha: string; flags: string[] }> = [];
    let buf = '';
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) {
          const [uid, sha, flags] = l.split(' ');
          acked.push({ uid: Number(uid), sha: sha!, flags: flags!.split(',') });
        }
        if (acked.length >= 150) child.kill('SIGKILL');
      });
      child.on('exit', () => resolve());
    });
    const store = await f.reopen();
    const inbox = store.getMailbox(ALICE, 'INBOX')!;
    assert.ok(acked.length >= 150);
    for (const a of acked) {
      const bytes = await store.readMessage(inbox.id, a.uid);
      assert.ok(bytes, `acknowledged UID ${a.uid} lost`);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), a.sha, `UID ${a.uid} corrupted`);
      const meta = store.listMessages(inbox.id, [[a.uid, a.uid]])[0]!;
      for (const fl of a.flags) assert.ok(meta.flags.includes(fl), `UID ${a.uid} lost flag ${fl}`);
    }
    assert.deepEqual(store.reconcileReport.missing, []);
    // Every file on disk is indexed (an interrupted append's file becomes a message, never a ghost).
    assert.equal(readdirSync(curDir(f)).length, store.status(inbox.id).messages);
  });
});

describe('expunge records for QRESYNC', () => {
  it('keeps only the newest per mailbox; a client older than the pruned ones is told every UID it may have had', async () => {
    const f = await fixture();
    await f.store.close();
    const s = new SqliteStore({ stateDir: f.stateDir, logger: f.logger, maxMessageBytes: 1 << 20, vanishedKeep: 3 });
    f.store = s;
    s.syncAccounts(f.config.users, []);
    const inbox = s.getMailbox(ALICE, 'INBOX')!;
    for (let i = 0; i < 10; i++) await s.append(inbox.id, message(`m${i}`, 'x\r\n'));
    const before = s.status(inbox.id).highestModseq;
    const after: number[] = [];
    for (let uid = 1; uid <= 6; uid++) {
      s.storeFlags(inbox.id, [[uid, uid]], { mode: 'add', flags: ['\\Deleted'] });
      await s.expunge(inbox.id);
      after.push(s.status(inbox.id).highestModseq);
    }
    const raw = new DatabaseSync(path.join(f.stateDir, 'store', 'index.sqlite'), { readOnly: true });
    const kept = (raw.prepare('SELECT uid FROM vanished ORDER BY uid').all() as Array<{ uid: number }>).map((r) => r.uid);
    raw.close();
    assert.deepEqual(kept, [4, 5, 6], 'only the newest three records remain');
    // Within the kept range the answer is exact; before it, every absent UID is reported, never a present one.
    assert.deepEqual(s.changesSince(inbox.id, after[3]!).vanished, [5, 6]);
    assert.deepEqual(s.changesSince(inbox.id, after[2]!).vanished, [4, 5, 6]);
    assert.deepEqual(s.changesSince(inbox.id, before).vanished, [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(s.changesSince(inbox.id, before, [[2, 8]]).vanished, [2, 3, 4, 5, 6]);
  });
});

describe('body search index', () => {
  it('finds a message by its body at once, and after a crash that lost its queued index text', async () => {
    const f = await fixture();
    const inbox = f.store.getMailbox(ALICE, 'INBOX')!;
    const a = await f.store.append(inbox.id, message('fresh', 'the xylograph arrived\r\n'));
    assert.deepEqual(f.store.search(inbox.id, { type: 'body', value: 'XYLOGRAPH' }), [a.uid], 'searchable right after APPEND');
    await f.store.close();
    const child = spawn(process.execPath, [path.join(import.meta.dirname, 'append-then-die.ts'), f.stateDir, 'quillwort'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const signal = await new Promise((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    assert.equal(signal, 'SIGKILL');
    const uid = Number(out.trim());
    const raw = new DatabaseSync(path.join(f.stateDir, 'store', 'index.sqlite'), { readOnly: true });
    const indexed = (raw.prepare('SELECT count(*) AS n FROM fts_content').get() as { n: number }).n;
    raw.close();
    assert.equal(indexed, 1, 'the killed process had not indexed its message (so the start must)');
    const store = await f.reopen();
    assert.deepEqual(store.search(inbox.id, { type: 'body', value: 'quillwort' }), [uid]);
    assert.deepEqual(store.search(inbox.id, { type: 'text', value: 'xylograph' }), [a.uid]);
  });
});

describe('body search index in the background', () => {
  it('indexes a burst of appends without any SEARCH once they pause, in several small transactions', async () => {
    const f = await fixture();
    const inbox = f.store.getMailbox(ALICE, 'INBOX')!;
    const n = 230; // more than two background chunks
    const uids = (await Promise.all(Array.from({ length: n }, (_, i) => f.store.append(inbox.id, message(`burst ${i}`, `word${i}zq body\r\n`))))).map((r) => r.uid);
    const raw = new DatabaseSync(path.join(f.stateDir, 'store', 'index.sqlite'), { readOnly: true });
    const count = () => (raw.prepare('SELECT count(*) AS n FROM fts_content').get() as { n: number }).n;
    const seen = new Set<number>();
    const deadline = Date.now() + 10_000;
    while (count() < n) {
      seen.add(count());
      assert.ok(Date.now() < deadline, `indexed ${count()} of ${n} within 10 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    raw.close();
    assert.ok([...seen].some((c) => c > 0 && c < n), 'indexed in chunks, with the event loop free between them');
    assert.deepEqual(f.store.search(inbox.id, { type: 'body', value: 'word229zq' }), [uids[229]]);
  });
});

describe('start-up reconciliation', () => {
  it('indexes files without rows (cur/ and new/) and reports rows without files', async () => {
    const f = await fixture();
    const inbox = f.store.getMailbox(ALICE, 'INBOX')!;
    const a = await f.store.append(inbox.id, message('kept', 'x\r\n'));
    const b = await f.store.append(inbox.id, message('vanishing', 'y\r\n'));
    const files = readdirSync(curDir(f)).sort();
    await unlink(path.join(curDir(f), files[1]!));
    await writeFile(path.join(curDir(f), '1700000000.orphan.host:2,FS'), message('orphan in cur', 'z\r\n'));
    await writeFile(path.join(curDir(f), '..', 'new', '1700000001.fresh.host'), 'Subject: orphan in new\nFrom: x@y\n\nlf only\n');
    await mkdir(path.join(f.stateDir, 'mail', 'example.com', 'alice', '.Projects.2026', 'cur'), { recursive: true });
    await writeFile(path.join(f.stateDir, 'mail', 'example.com', 'alice', '.Projects.2026', 'cur', '1700000002.p.host:2,'), message('in a new folder', 'w\r\n'));
    const store = await f.reopen();
    const r = store.reconcileReport;
    assert.deepEqual(r.missing.map((m) => [m.mailbox, m.uid]), [['INBOX', b.uid]]);
    assert.equal(r.indexed.length, 3);
    const msgs = store.fetch(inbox.id, [[1, Infinity]], { envelope: true });
    assert.deepEqual(msgs.map((m) => m.envelope!.subject), ['kept', 'vanishing', 'orphan in cur', 'orphan in new']);
    assert.deepEqual(msgs[2]!.flags, ['\\Seen', '\\Flagged']);
    assert.ok(msgs[0]!.uid === a.uid);
    await assert.rejects(store.readMessage(inbox.id, b.uid), /ENOENT/, 'a missing file is an error, not an empty message');
    assert.equal((await store.readMessage(inbox.id, msgs[3]!.uid))!.toString(), 'Subject: orphan in new\r\nFrom: x@y\r\n\r\nlf only\r\n');
    const projects = store.getMailbox(ALICE, 'Projects/2026');
    assert.ok(projects, 'a folder found on disk becomes a mailbox');
    assert.equal(store.status(projects.id).messages, 1);
  });

  it('does not bring expunged messages or deleted mailboxes back', async () => {
    const f = await fixture();
    const inbox = f.store.getMailbox(ALICE, 'INBOX')!;
    await f.store.append(inbox.id, message('gone', 'x\r\n'), { flags: ['\\Deleted'] });
    await f.store.append(inbox.id, message('stays', 'x\r\n'));
    const box = f.store.createMailbox(ALICE, 'Old');
    await f.store.append(box.id, message('old', 'x\r\n'));
    assert.deepEqual((await f.store.expunge(inbox.id)).uids, [1]);
    await f.store.deleteMailbox(ALICE, 'Old');
    const store = await f.reopen();
    assert.deepEqual(store.reconcileReport.indexed, []);
    assert.deepEqual(store.fetch(inbox.id, [[1, Infinity]], { envelope: true }).map((m) => m.envelope!.subject), ['stays']);
    assert.equal(store.getMailbox(ALICE, 'Old'), null);
  });
});

describe('accounts', () => {
  it('verifies argon2id passwords and resolves aliases, plus-addressing and catch-all', async () => {
    const f = await fixture([user(ALICE), user('bob@example.com'), user('carol@other.test')], [
      { from: 'sales@example.com', to: ['alice@example.com', 'bob@example.com'] },
      { from: 'info@example.com', to: ['alice@example.com'] },
      { from: 'chain@example.com', to: ['info@example.com'] },
      { from: '@other.test', to: ['carol@other.test'] },
    ]);
    const s = f.store;
    assert.equal((await s.verifyPassword('Alice@EXAMPLE.com', PASSWORD))?.address, ALICE);
    assert.equal(await s.verifyPassword(ALICE, 'wrong'), null);
    assert.equal(await s.verifyPassword('nobody@example.com', PASSWORD), null);
    assert.deepEqual(s.resolveRecipient('alice+lists@example.com'), { kind: 'local', accounts: [ALICE] });
    assert.deepEqual(s.resolveRecipient('sales@example.com'), { kind: 'local', accounts: [ALICE, 'bob@example.com'] });
    assert.deepEqual(s.resolveRecipient('sales+x@example.com'), { kind: 'local', accounts: [ALICE, 'bob@example.com'] });
    assert.deepEqual(s.resolveRecipient('chain@example.com'), { kind: 'local', accounts: [ALICE] });
    assert.deepEqual(s.resolveRecipient('anything@other.test'), { kind: 'local', accounts: ['carol@other.test'] });
    assert.deepEqual(s.resolveRecipient('nobody@example.com'), { kind: 'unknown' });
    assert.deepEqual(s.resolveRecipient('../etc@example.com'), { kind: 'unknown' });
    assert.deepEqual(s.sendableAddresses(ALICE).sort(), [ALICE, 'chain@example.com', 'info@example.com']);
    assert.deepEqual(s.listMailboxes(ALICE).map((m) => [m.name, m.specialUse]),
      [['Archive', '\\Archive'], ['Drafts', '\\Drafts'], ['INBOX', null], ['Junk', '\\Junk'], ['Sent', '\\Sent'], ['Trash', '\\Trash']]);
  });

  it('answers recipients from memory, and a new account list takes effect at once', async () => {
    const f = await fixture([user(ALICE), user('bob@example.com')], [{ from: 'sales@example.com', to: [ALICE, 'bob@example.com'] }]);
    const s = f.store;
    assert.deepEqual(s.resolveRecipient('sales@example.com'), { kind: 'local', accounts: [ALICE, 'bob@example.com'] });
    assert.deepEqual(s.resolveRecipient('dave@example.com'), { kind: 'unknown' });
    // A caller cannot change what the next one is told.
    assert.throws(() => { (s.resolveRecipient('sales@example.com') as { accounts: string[] }).accounts.push('x@example.com'); }, TypeError);
    s.syncAccounts([user(ALICE), user('dave@example.com')], [{ from: 'sales@example.com', to: ['dave@example.com'] }]);
    assert.deepEqual(s.resolveRecipient('sales@example.com'), { kind: 'local', accounts: ['dave@example.com'] });
    assert.deepEqual(s.resolveRecipient('dave@example.com'), { kind: 'local', accounts: ['dave@example.com'] });
    assert.deepEqual(s.resolveRecipient('bob@example.com'), { kind: 'unknown' });
  });

  it('enforces quota on delivery and append, and frees it on expunge', async () => {
    const f = await fixture([user(ALICE, 2000)]);
    const s = f.store;
    const inbox = s.getMailbox(ALICE, 'INBOX')!;
    const big = message('big', 'x'.repeat(1200) + '\r\n');
    assert.deepEqual(await s.deliver(ALICE, big, { mailbox: 'INBOX' }), { ok: true, mailbox: 'INBOX', uid: 1 });
    const r = await s.deliver(ALICE, big, { mailbox: 'INBOX' });
    assert.equal(r.ok, false);
    await assert.rejects(s.append(inbox.id, big), (e) => code(e) === 'OVERQUOTA');
    await assert.rejects(s.copy(inbox.id, [[1, 1]], s.getMailbox(ALICE, 'Archive')!.id), (e) => code(e) === 'OVERQUOTA');
    assert.equal(s.quota(ALICE).messages, 1);
    assert.equal(readdirSync(curDir(f)).length, 1, 'a refused message leaves no file behind');
    s.storeFlags(inbox.id, [[1, 1]], { mode: 'add', flags: ['\\Deleted'] });
    await s.expunge(inbox.id);
    assert.deepEqual(s.quota(ALICE), { usedBytes: 0, limitBytes: 2000, messages: 0 });
    assert.equal((await s.deliver(ALICE, big, { mailbox: 'Junk' })).ok, true);
  });
});

describe('mailbox names', () => {
  it('refuses names that could escape or confuse the folder layout', async () => {
    const f = await fixture();
    for (const bad of ['..', 'a/../b', 'a/./b', '/abs', 'trailing/', 'a//b', 'wild%', 'star*', 'nul\0x', 'tab\tx', 'x'.repeat(256), 'é'.repeat(100), '', ' lead']) {
      assert.throws(() => f.store.createMailbox(ALICE, bad), (e) => code(e) === 'CANNOT', JSON.stringify(bad));
    }
    assert.throws(() => f.store.createMailbox(ALICE, 'inbox'), (e) => code(e) === 'ALREADYEXISTS');
    const m = f.store.createMailbox(ALICE, 'Ünïcode/Sub.with.dots/日本');
    assert.equal(m.name, 'Ünïcode/Sub.with.dots/日本');
    assert.ok(f.store.getMailbox(ALICE, 'Ünïcode/Sub.with.dots'), 'parents are created');
    const dots = f.store.createMailbox(ALICE, 'a.b');
    const nested = f.store.createMailbox(ALICE, 'a/b');
    await f.store.append(dots.id, message('dots', 'x\r\n'));
    await f.store.append(nested.id, message('nested', 'x\r\n'));
    const account = path.join(f.stateDir, 'mail', 'example.com', 'alice');
    const folders = readdirSync(account).filter((d) => d.startsWith('.')).sort();
    assert.deepEqual(folders, ['.a%2Eb', '.a.b'], '"a.b" and "a/b" get distinct folders (folders appear with their first message)');
    assert.equal(f.store.getMailbox(ALICE, 'INBOX/child')?.name, undefined);
    assert.equal(f.store.createMailbox(ALICE, 'inbox/child').name, 'INBOX/child');
  });

  it('renames a mailbox with its children and keeps their messages', async () => {
    const f = await fixture();
    const s = f.store;
    const parent = s.createMailbox(ALICE, 'Work');
    const child = s.createMailbox(ALICE, 'Work/2026');
    await s.append(child.id, message('child mail', 'x\r\n'));
    const events: StoreEvent[] = [];
    s.notifier.subscribe(child.id, (e) => events.push(e));
    await s.renameMailbox(ALICE, 'Work', 'Archive/Work');
    assert.equal(s.getMailbox(ALICE, 'Work'), null);
    assert.equal(s.getMailbox(ALICE, 'Archive/Work')!.id, parent.id);
    assert.equal(s.getMailbox(ALICE, 'Archive/Work/2026')!.id, child.id);
    assert.match((await s.readMessage(child.id, 1))!.toString(), /child mail/);
    assert.deepEqual(events.map((e) => e.type === 'mailbox' && e.name), ['Archive/Work/2026']);
    await assert.rejects(s.deleteMailbox(ALICE, 'Archive/Work'), (e) => code(e) === 'HASCHILDREN');
    await assert.rejects(s.deleteMailbox(ALICE, 'INBOX'), (e) => code(e) === 'CANNOT');
    await assert.rejects(s.renameMailbox(ALICE, 'Archive', 'Archive/Work/x'), (e) => code(e) === 'CANNOT');
    // RFC 3501: renaming INBOX moves its messages and leaves it empty.
    const inbox = s.getMailbox(ALICE, 'INBOX')!;
    await s.append(inbox.id, message('inbox mail', 'x\r\n'));
    await s.renameMailbox(ALICE, 'INBOX', 'Old Inbox');
    assert.equal(s.status(inbox.id).messages, 0);
    assert.equal(s.status(s.getMailbox(ALICE, 'Old Inbox')!.id).messages, 1);
  });
});

describe('messages', () => {
  let f: StoreFixture;

  it('stores flags with modseq, honours UNCHANGEDSINCE and reports changes since a modseq', async () => {
    f = await fixture();
    const s = f.store;
    const inbox = s.getMailbox(ALICE, 'INBOX')!;
    for (let i = 0; i < 3; i++) await s.append(inbox.id, message(`m${i}`, 'x\r\n'));
    const start = s.status(inbox.id).highestModseq;
    const r1 = s.storeFlags(inbox.id, [[1, 2]], { mode: 'add', flags: ['\\Seen', '$Important'] });
    assert.deepEqual(r1.messages.map((m) => [m.uid, m.flags, m.changed]), [[1, ['\\Seen', '$Important'], true], [2, ['\\Seen', '$Important'], true]]);
    const again = s.storeFlags(inbox.id, [[1, 1]], { mode: 'add', flags: ['\\seen'] });
    assert.equal(again.messages[0]!.changed, false, 'no change, no new modseq');
    const r2 = s.storeFlags(inbox.id, [[1, 3]], { mode: 'remove', flags: ['$important'], unchangedSince: start });
    assert.deepEqual(r2.modified, [1, 2]);
    assert.deepEqual(r2.messages.map((m) => m.uid), [3]);
    assert.deepEqual(s.keywords(inbox.id), ['$Important']);
    assert.throws(() => s.storeFlags(inbox.id, [[1, 1]], { mode: 'add', flags: ['bad(flag'] }), (e) => code(e) === 'CANNOT');
    s.storeFlags(inbox.id, [[3, 3]], { mode: 'replace', flags: ['\\Deleted'] });
    await s.expunge(inbox.id);
    const ch = s.changesSince(inbox.id, start);
    assert.deepEqual(ch.changed.map((m) => m.uid), [1, 2]);
    assert.deepEqual(ch.vanished, [3]);
    assert.deepEqual(s.claimRecent(inbox.id), [1, 2]);
    assert.deepEqual(s.claimRecent(inbox.id), []);
    // The counters STATUS reads agree with the messages themselves after all that.
    await s.append(inbox.id, message('m4', 'x\r\n'), { flags: ['\\Deleted'] });
    const msgs = s.listMessages(inbox.id);
    const st = s.status(inbox.id);
    assert.deepEqual([st.messages, st.unseen, st.deleted, st.recent, st.sizeBytes, st.firstUnseenUid],
      [msgs.length, msgs.filter((m) => !m.flags.includes('\\Seen')).length, msgs.filter((m) => m.flags.includes('\\Deleted')).length, 1,
        msgs.reduce((n, m) => n + m.size, 0), 4]);
  });

  it('copies and moves with UID maps and tells other sessions', async () => {
    f = await fixture();
    const s = f.store;
    const inbox = s.getMailbox(ALICE, 'INBOX')!;
    const trash = s.getMailbox(ALICE, 'Trash')!;
    for (let i = 0; i < 4; i++) await s.append(inbox.id, message(`m${i}`, `body ${i}\r\n`), { flags: i === 0 ? ['\\Flagged'] : [] });
    const inboxEvents: string[] = [];
    const trashEvents: string[] = [];
    s.notifier.subscribe(inbox.id, (e) => inboxEvents.push(`${e.type}:${e.type === 'expunge' ? e.uids.join(',') : ''}`));
    s.notifier.subscribe(trash.id, (e) => trashEvents.push(`${e.type}:${e.type === 'exists' ? e.messages.map((m) => m.uid).join(',') : ''}`));
    const c = await s.copy(inbox.id, [[1, 2]], trash.id);
    assert.deepEqual(c.map, [[1, 1], [2, 2]]);
    assert.equal(c.uidValidity, trash.uidValidity);
    const m = await s.move(inbox.id, [[3, Infinity]], trash.id);
    assert.deepEqual(m.map, [[3, 3], [4, 4]]);
    assert.deepEqual(inboxEvents, ['expunge:3,4']);
    assert.deepEqual(trashEvents, ['exists:1,2', 'exists:3,4']);
    assert.deepEqual(s.listMessages(trash.id).map((x) => x.flags), [['\\Flagged'], [], [], []]);
    assert.equal((await s.readMessage(trash.id, 4))!.toString().endsWith('body 3\r\n'), true);
    assert.equal(readdirSync(curDir(f)).length, 2, 'moved files left the source folder');
    assert.equal(s.quota(ALICE).messages, 6, 'copies count, moves do not');
  });

  it('searches text through the index (long and short needles), headers, flags, dates, sizes and UID sets', async () => {
    f = await fixture();
    const s = f.store;
    const inbox = s.getMailbox(ALICE, 'INBOX')!;
    await s.append(inbox.id, message('Quarterly report', 'numbers about the narwhal budget\r\n'), { internalDate: new Date('2026-11-20T12:00:00Z'), internalDateZone: 0 });
    await s.append(inbox.id, message('Lunch', 'see you at 12\r\n', 'Cc: Zoë <zoe@example.net>\r\n'), { flags: ['\\Seen'], internalDate: new Date('2026-11-25T23:30:00Z'), internalDateZone: 0 });
    await s.append(inbox.id, Buffer.from('Subject: =?koi8-r?B?8NLJ18XU?=\r\nDate: Wed, 2 Dec 2026 01:00:00 +0300\r\n\r\n' + 'big '.repeat(500) + '\r\n'));
    const q = (k: Parameters<typeof s.search>[1]) => s.search(inbox.id, k);
    assert.deepEqual(q({ type: 'text', value: 'NARWHAL' }), [1]);
    assert.deepEqual(q({ type: 'body', value: 'report' }), [], 'BODY does not look at headers');
    assert.deepEqual(q({ type: 'text', value: 'report' }), [1]);
    assert.deepEqual(q({ type: 'text', value: '12' }), [2], 'short needle');
    assert.deepEqual(q({ type: 'header', field: 'subject', value: 'привет' }), [3], 'decoded, case-insensitive');
    assert.deepEqual(q({ type: 'header', field: 'cc', value: 'zoë' }), [2]);
    assert.deepEqual(q({ type: 'header', field: 'cc', value: '' }), [2], 'empty value: has the field');
    assert.deepEqual(q({ type: 'flag', flag: '\\Seen', set: false }), [1, 3]);
    assert.deepEqual(q({ type: 'internaldate', op: 'on', date: '2026-11-25' }), [2]);
    assert.deepEqual(q({ type: 'internaldate', op: 'before', date: '2026-11-25' }), [1]);
    assert.deepEqual(q({ type: 'sentdate', op: 'since', date: '2026-12-01' }), [3]);
    assert.deepEqual(q({ type: 'size', op: 'larger', bytes: 1000 }), [3]);
    assert.deepEqual(q({ type: 'or', keys: [{ type: 'uid', set: [[1, 1]] }, { type: 'not', key: { type: 'uid', set: [[1, 2]] } }] }), [1, 3]);
    assert.deepEqual(q({ type: 'uid', set: [[5, Infinity]] }), [3], 'n:* includes the highest UID');
    assert.deepEqual(q({ type: 'and', keys: [{ type: 'text', value: 'see you' }, { type: 'flag', flag: '\\Seen', set: true }] }), [2]);
    assert.throws(() => q({ type: 'sentdate', op: 'on', date: '25-Nov-2026' }), (e) => code(e) === 'CANNOT');
  });

  it('keeps listUids exact through appends, concurrent appends, expunges and moves', async () => {
    f = await fixture();
    const s = f.store;
    const inbox = s.getMailbox(ALICE, 'INBOX')!;
    const other = s.getMailbox(ALICE, 'Archive')!;
    const check = () => {
      assert.deepEqual(s.listUids(inbox.id), s.listMessages(inbox.id).map((m) => m.uid));
      assert.deepEqual(s.listUids(other.id), s.listMessages(other.id).map((m) => m.uid));
    };
    check();
    await s.append(inbox.id, message('a', 'x\r\n'));
    check();
    await Promise.all(Array.from({ length: 8 }, (_, i) => s.append(inbox.id, message(`c${i}`, 'x\r\n'))));
    check();
    s.storeFlags(inbox.id, [[2, 4]], { mode: 'add', flags: ['\\Deleted'] });
    await s.expunge(inbox.id);
    check();
    await s.move(inbox.id, [[5, 6]], other.id);
    check();
    // The list is shared with its holders (a session's view): later appends make a new one.
    const held = s.listUids(inbox.id);
    const snapshot = [...held];
    await s.append(inbox.id, message('later', 'x\r\n'));
    assert.deepEqual(held, snapshot, 'a list handed out never changes under its holder');
    check();
  });

  it('refuses empty and oversized messages and keeps nothing of them', async () => {
    f = await fixture([user(ALICE)], [], 4096);
    const inbox = f.store.getMailbox(ALICE, 'INBOX')!;
    await assert.rejects(f.store.append(inbox.id, Buffer.alloc(0)), (e) => code(e) === 'PARSE');
    await assert.rejects(f.store.append(inbox.id, message('huge', 'x'.repeat(5000))), (e) => code(e) === 'TOOBIG');
    assert.equal(existsSync(curDir(f)) ? readdirSync(curDir(f)).length : 0, 0);
  });
});

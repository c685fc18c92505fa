// deliver() with a deliveryId stores a message once per (account, id): a pipeline re-run after a crash between
// "stored" and "marked delivered in the spool" returns the earlier result instead of storing a duplicate.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import type { SqliteStore } from '../../../src/server/store/sqlite-store.ts';
import { message, storeFixture, user, type StoreFixture } from './fixture.ts';

const ALICE = 'alice@example.com';
const BOB = 'bob@example.com';
const fixtures: StoreFixture[] = [];
after(async () => {
  for (const f of fixtures) await f.cleanup();
});

async function fixture(): Promise<StoreFixture> {
  const f = await storeFixture([user(ALICE), user(BOB)]);
  fixtures.push(f);
  return f;
}

function subjects(f: StoreFixture, account: string, mailbox = 'INBOX'): string[] {
  const mb = f.store.getMailbox(account, mailbox)!;
  return f.store.fetch(mb.id, [[1, Infinity]], { envelope: true }).map((m) => m.envelope!.subject ?? '');
}

function curFiles(f: StoreFixture, local: string, folder = 'INBOX'): string[] {
  try {
    return readdirSync(path.join(f.stateDir, 'mail', 'example.com', local, folder === 'INBOX' ? '' : `.${folder}`, 'cur'));
  } catch {
    return [];
  }
}

/** Edits the index directly while the store is closed, then opens it again. */
async function withIndexClosed(f: StoreFixture, edit: (db: DatabaseSync) => void): Promise<void> {
  await f.store.close();
  const db = new DatabaseSync(path.join(f.stateDir, 'store', 'index.sqlite'));
  try {
    edit(db);
  } finally {
    db.close();
  }
  await f.reopen();
}

describe('idempotent delivery', () => {
  it('stores a delivery id once and returns the earlier mailbox and uid, also after a restart', async () => {
    const f = await fixture();
    const first = await f.store.deliver(ALICE, message('once', 'x\r\n'), { mailbox: 'INBOX', deliveryId: 'spool-1/alice@example.com' });
    assert.deepEqual(first, { ok: true, mailbox: 'INBOX', uid: 1 });
    // The re-run asks for Junk this time (a verdict can change): the earlier copy stands.
    const again = await f.store.deliver(ALICE, message('once', 'x\r\n'), { mailbox: 'Junk', deliveryId: 'spool-1/alice@example.com' });
    assert.deepEqual(again, first);
    const other = await f.store.deliver(ALICE, message('second', 'y\r\n'), { mailbox: 'INBOX', deliveryId: 'spool-2/alice@example.com' });
    assert.deepEqual(other, { ok: true, mailbox: 'INBOX', uid: 2 });
    // Without an id every call stores a copy, as before.
    await f.store.deliver(ALICE, message('anonymous', 'z\r\n'), { mailbox: 'INBOX' });
    await f.store.deliver(ALICE, message('anonymous', 'z\r\n'), { mailbox: 'INBOX' });
    assert.deepEqual(subjects(f, ALICE), ['once', 'second', 'anonymous', 'anonymous']);
    assert.deepEqual(subjects(f, ALICE, 'Junk'), []);
    assert.equal(curFiles(f, 'alice').length, 4, 'no stray message file for the repeated delivery');

    await f.reopen();
    assert.deepEqual(await f.store.deliver(ALICE, message('once', 'x\r\n'), { mailbox: 'INBOX', deliveryId: 'spool-1/alice@example.com' }), first);
    assert.deepEqual(subjects(f, ALICE), ['once', 'second', 'anonymous', 'anonymous']);
    assert.equal(f.store.quota(ALICE).messages, 4, 'a repeated delivery is not charged to the quota');
  });

  it('keeps ids per account and survives concurrent deliveries of the same id', async () => {
    const f = await fixture();
    const id = 'spool-7/shared';
    const [a, b] = await Promise.all([
      f.store.deliver(ALICE, message('same', 'x\r\n'), { mailbox: 'INBOX', deliveryId: id }),
      f.store.deliver(BOB, message('same', 'x\r\n'), { mailbox: 'INBOX', deliveryId: id }),
    ]);
    assert.deepEqual([a, b], [{ ok: true, mailbox: 'INBOX', uid: 1 }, { ok: true, mailbox: 'INBOX', uid: 1 }]);
    // Several re-runs at once: they all commit in one group transaction, one stores, the others see it.
    const burst = await Promise.all(Array.from({ length: 6 }, () =>
      f.store.deliver(ALICE, message('burst', 'y\r\n'), { mailbox: 'INBOX', deliveryId: 'spool-8/alice@example.com' })));
    assert.deepEqual(new Set(burst.map((r) => JSON.stringify(r))), new Set([JSON.stringify({ ok: true, mailbox: 'INBOX', uid: 2 })]));
    assert.deepEqual(subjects(f, ALICE), ['same', 'burst']);
    assert.deepEqual(subjects(f, BOB), ['same']);
    assert.equal(curFiles(f, 'alice').length, 2, 'the redundant copies written by the concurrent re-runs are removed');
  });

  it('a crash between the file and the index row: start-up indexes the file once and remembers its id', async () => {
    const f = await fixture();
    const id = 'spool-9/alice@example.com';
    await f.store.deliver(ALICE, message('crashed', 'x\r\n'), { mailbox: 'INBOX', deliveryId: id });
    // As if the process died after the file's rename, before the transaction committed: file on disk, no rows.
    await withIndexClosed(f, (db) => {
      db.exec('DELETE FROM messages; DELETE FROM deliveries; UPDATE accounts SET used_bytes = 0, message_count = 0;');
    });
    assert.equal(f.store.reconcileReport.indexed.length, 1, 'the file is found and indexed at start');
    const rerun = await f.store.deliver(ALICE, message('crashed', 'x\r\n'), { mailbox: 'INBOX', deliveryId: id });
    assert.equal(rerun.ok, true);
    assert.deepEqual(subjects(f, ALICE), ['crashed'], 'the re-run finds the indexed file instead of storing a second copy');
    assert.equal(curFiles(f, 'alice').length, 1);
  });

  it('opens a version-2 index (no deliveries table) and refuses a newer one', async () => {
    const f = await fixture();
    await f.store.deliver(ALICE, message('old', 'x\r\n'), { mailbox: 'INBOX' });
    await withIndexClosed(f, (db) => {
      db.exec("DROP TABLE deliveries; UPDATE meta SET value = '2' WHERE key = 'schema_version';");
    });
    assert.deepEqual(subjects(f, ALICE), ['old']);
    const r = await f.store.deliver(ALICE, message('new', 'y\r\n'), { mailbox: 'INBOX', deliveryId: 'spool-3/alice@example.com' });
    assert.deepEqual(await f.store.deliver(ALICE, message('new', 'y\r\n'), { mailbox: 'INBOX', deliveryId: 'spool-3/alice@example.com' }), r);
    assert.deepEqual(subjects(f, ALICE), ['old', 'new']);
    const db = new DatabaseSync(path.join(f.stateDir, 'store', 'index.sqlite'));
    try {
      assert.equal((db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value, '6');
      await f.store.close();
      db.exec("UPDATE meta SET value = '7' WHERE key = 'schema_version'");
    } finally {
      db.close();
    }
    await assert.rejects(f.reopen(), /schema version 7, this Postern reads 6/);
    // Leave it openable for cleanup.
    const fix = new DatabaseSync(path.join(f.stateDir, 'store', 'index.sqlite'));
    fix.exec("UPDATE meta SET value = '6' WHERE key = 'schema_version'");
    fix.close();
    await f.reopen();
  });

  it('forgets ids after a week and refuses an unusable id', async () => {
    const f = await fixture();
    const id = 'spool-4/alice@example.com';
    await f.store.deliver(ALICE, message('week', 'x\r\n'), { mailbox: 'INBOX', deliveryId: id });
    const store = f.store as unknown as SqliteStore;
    assert.equal(store.pruneDeliveries(Date.now() + 6 * 24 * 3600 * 1000), 0, 'kept longer than a spool entry lives');
    assert.equal(store.pruneDeliveries(Date.now() + 8 * 24 * 3600 * 1000), 1);
    await f.store.deliver(ALICE, message('week', 'x\r\n'), { mailbox: 'INBOX', deliveryId: id });
    assert.deepEqual(subjects(f, ALICE), ['week', 'week']);
    await assert.rejects(f.store.deliver(ALICE, message('bad', 'x\r\n'), { mailbox: 'INBOX', deliveryId: '' }), /delivery id/);
    await assert.rejects(f.store.deliver(ALICE, message('bad', 'x\r\n'), { mailbox: 'INBOX', deliveryId: 'x'.repeat(1001) }), /delivery id/);
  });
});

// Local delivery on its own thread (store/delivery-thread.ts): what it commits reaches the main thread's store
// (sessions hear of it, SEARCH finds the text the thread indexes), writes from both threads interleave without errors, and a thread that
// dies fails its deliveries instead of leaving them hanging.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { DELIVERY_NICE, DeliveryThread } from '../../../src/server/store/delivery-thread.ts';
import type { StoreEvent } from '../../../src/server/store/types.ts';
import { SqliteStore } from '../../../src/server/store/sqlite-store.ts';
import { storeFixture } from './fixture.ts';

const ALICE = 'alice@example.com';

function message(i: number, extra = ''): Buffer {
  return Buffer.from(`From: <sender${i}@example.net>\r\nTo: <${ALICE}>\r\nSubject: delivery ${i}\r\nMessage-ID: <d${i}@example.net>\r\n\r\nbody of message ${i} word${i}zq ${extra}\r\n`);
}

test('deliveries on the thread reach the main store: sessions are told, UIDs are listed, SEARCH finds the text', async () => {
  const f = await storeFixture();
  try {
    const inbox = f.store.getMailbox(ALICE, 'INBOX')!;
    const before = f.store.listUids(inbox.id); // cached: the thread's deliveries must extend it, not a stale copy
    assert.deepEqual([...before], []);
    const told: StoreEvent[] = [];
    const unsubscribe = f.store.notifier.subscribe(inbox.id, (e) => told.push(e));
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => f.store.deliver(ALICE, message(i), { mailbox: 'INBOX', deliveryId: `thread-${i}` })));
    unsubscribe();
    const uids = results.map((r) => (r.ok ? r.uid : -1));
    assert.equal(new Set(uids).size, 40, 'one UID each');
    // Every change was applied on the main thread before the delivery that made it resolved.
    const toldUids = told.flatMap((e) => (e.type === 'exists' ? e.messages.map((m) => m.uid) : []));
    assert.deepEqual([...toldUids].sort((a, b) => a - b), [...uids].sort((a, b) => a - b));
    assert.deepEqual([...f.store.listUids(inbox.id)], [...uids].sort((a, b) => a - b));
    assert.deepEqual([...before], [], 'a list handed out before is not changed under its holder');
    assert.deepEqual(f.store.search(inbox.id, { type: 'body', value: 'word17zq' }), [uids[17]]);
    // The same delivery id again stores nothing and answers with the first copy.
    assert.deepEqual(await f.store.deliver(ALICE, message(17), { mailbox: 'INBOX', deliveryId: 'thread-17' }), results[17]);
    assert.equal(f.store.listUids(inbox.id).length, 40);
  } finally {
    await f.cleanup();
  }
});

test('the main thread writes while the thread delivers: no busy errors, every message and flag kept', async () => {
  const f = await storeFixture();
  try {
    const inbox = f.store.getMailbox(ALICE, 'INBOX')!;
    const first = await f.store.append(inbox.id, message(1000));
    const deliveries = Array.from({ length: 60 }, (_, i) => f.store.deliver(ALICE, message(i, 'x'.repeat(20_000)), { mailbox: 'INBOX' }));
    const appends: Promise<unknown>[] = [];
    for (let i = 0; i < 30; i++) {
      f.store.storeFlags(inbox.id, [[first.uid, first.uid]], { mode: i % 2 ? 'remove' : 'add', flags: ['\\Flagged'] });
      appends.push(f.store.append(inbox.id, message(2000 + i)));
      await new Promise((r) => setImmediate(r));
    }
    const results = await Promise.all(deliveries);
    await Promise.all(appends);
    assert.ok(results.every((r) => r.ok));
    const listed = f.store.listMessages(inbox.id);
    assert.equal(listed.length, 1 + 60 + 30);
    assert.equal(new Set(listed.map((m) => m.uid)).size, listed.length);
    assert.deepEqual(listed.find((m) => m.uid === first.uid)!.flags.includes('\\Flagged'), false);
    // After a restart the index and the files agree: nothing for the reconciliation to adopt or report.
    const reopened = await f.reopen();
    assert.equal(reopened.listMessages(inbox.id).length, listed.length);
    assert.deepEqual((reopened as unknown as { reconcileReport: { indexed: unknown[]; missing: unknown[] } }).reconcileReport, { indexed: [], missing: [] });
  } finally {
    await f.cleanup();
  }
});

test('a delivery thread that dies fails its deliveries (for the pipeline to retry) instead of leaving them waiting', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'postern-thread-'));
  try {
    // Its index cannot be opened (a file where the store folder should be): the thread throws while starting.
    await writeFile(path.join(dir, 'store'), 'not a folder');
    const errors: string[] = [];
    const logger = pino({ level: 'silent' });
    logger.error = ((obj: { err?: string }) => { errors.push(String(obj.err)); }) as typeof logger.error;
    const thread = new DeliveryThread({ stateDir: dir, maxMessageBytes: 1 << 20 }, { event() {}, logger });
    await assert.rejects(thread.deliver(ALICE, message(1), { mailbox: 'INBOX' }), /delivery thread exited/);
    // The next delivery starts a new thread, which fails the same way: still an error, never a hang.
    await assert.rejects(thread.deliver(ALICE, message(2), { mailbox: 'INBOX' }), /delivery thread exited/);
    assert.ok(errors.length >= 1, 'the failure is logged');
    await thread.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Worker threads of this process, as the kernel lists them (Node names them WorkerThread). */
function workerThreads(): number {
  return readdirSync('/proc/self/task').filter((t) => {
    try { return readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'WorkerThread'; } catch { return false; }
  }).length;
}

/** Nice value of each of this process's threads named `comm` (field 19 of /proc/<pid>/task/<tid>/stat). */
function niceOf(comm: string): number[] {
  return readdirSync('/proc/self/task').flatMap((t) => {
    try {
      if (readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() !== comm) return [];
      const stat = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])];
    } catch { return []; }
  });
}

test('the delivery thread yields the CPU to the sessions: it runs at nice 10, the main thread keeps its priority', async () => {
  const f = await storeFixture();
  try {
    assert.ok((await f.store.deliver(ALICE, message(1), { mailbox: 'INBOX' })).ok);
    assert.deepEqual(niceOf('WorkerThread'), [DELIVERY_NICE]);
    assert.equal(DELIVERY_NICE, 10);
    assert.deepEqual(niceOf('MainThread'), [0], 'the sessions\' thread is left alone');
  } finally {
    await f.cleanup();
  }
});

test('the thread starts with the first delivery and ends when deliveries stop; the next one starts it again', async () => {
  const f = await storeFixture();
  const store = new SqliteStore({ stateDir: f.stateDir, logger: f.logger, maxMessageBytes: 1 << 20 });
  try {
    const before = workerThreads();
    store.deliverOnThread({ idleMs: 300 });
    assert.equal(workerThreads(), before, 'no thread before any delivery');
    const inbox = store.getMailbox(ALICE, 'INBOX')!;
    assert.ok((await store.deliver(ALICE, message(1, 'firstcomer'), { mailbox: 'INBOX' })).ok);
    assert.equal(workerThreads(), before + 1);
    for (let i = 0; i < 100 && workerThreads() > before; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(workerThreads(), before, 'gone after its idle time');
    // What it delivered before it ended is all there: listed and searchable.
    assert.deepEqual(store.search(inbox.id, { type: 'body', value: 'firstcomer' }).length, 1);
    assert.ok((await store.deliver(ALICE, message(2, 'latecomer'), { mailbox: 'INBOX' })).ok);
    assert.deepEqual(store.search(inbox.id, { type: 'body', value: 'latecomer' }).length, 1);
    assert.equal(store.listUids(inbox.id).length, 2);
  } finally {
    await store.close();
    await f.cleanup();
  }
});

// The spool's durability promises: one entry file per message, fsynced before its rename, folder fsync before
// accept resolves (also when concurrent accepts share it), state changes in a durable side file, nothing partial
// visible after a crash (SIGKILL of a real child process mid-write), state that survives a reopen, finished
// leftovers found again, and the last local success removing without a state write.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { SpoolError } from '../../../src/server/queue/api.ts';
import type { SpoolEnvelope } from '../../../src/server/queue/api.ts';
import { FileSpool } from '../../../src/server/queue/spool.ts';
import { FolderSync, tempPathFor } from '../../../src/server/queue/durable.ts';
import { isSpoolId, newSpoolId } from '../../../src/server/queue/spool-id.ts';

const envelope = (to: string[] = ['bob@example.org']): SpoolEnvelope => ({
  from: 'alice@example.com',
  to,
  client: { remoteAddress: '192.0.2.7', helo: 'client.example', tls: true, listener: 'submission' },
  authenticatedUser: 'alice@example.com',
});
const message = (body: string) => Buffer.from(`From: alice@example.com\r\nTo: bob@example.org\r\nMessage-ID: <m1@example.com>\r\nSubject: t\r\n\r\n${body}\r\n`);

/**
 * Records the spool's file operations in order: `open PATH`, `rename FROM -> TO`, `unlink PATH`, `fsync PATH` when
 * an fsync or fdatasync starts and `fsynced PATH` when it ends; `renames` says of each rename whether it ran
 * synchronously or on the thread pool. Patches node:fs (the spool's synchronous calls and its callback creates,
 * renames and fsyncs) until restore().
 */
function recordFs(): { log: string[]; renames: Array<'sync' | 'pool'>; restore: () => void } {
  const log: string[] = [];
  const renames: Array<'sync' | 'pool'> = [];
  const paths = new Map<number, string>();
  const orig = { openSync: fs.openSync, open: fs.open, renameSync: fs.renameSync, rename: fs.rename, unlinkSync: fs.unlinkSync, unlink: fs.unlink, fsync: fs.fsync, fdatasync: fs.fdatasync };
  fs.openSync = ((path: string, ...rest: unknown[]) => {
    const fd = (orig.openSync as (...a: unknown[]) => number)(path, ...rest);
    paths.set(fd, String(path));
    log.push(`open ${String(path)}`);
    return fd;
  }) as typeof fs.openSync;
  fs.open = ((path: string, flags: string, mode: number, cb: (err: NodeJS.ErrnoException | null, fd: number) => void) => {
    (orig.open as (...a: unknown[]) => void)(path, flags, mode, (err: NodeJS.ErrnoException | null, fd: number) => {
      if (!err) {
        paths.set(fd, String(path));
        log.push(`open ${String(path)}`);
      }
      cb(err, fd);
    });
  }) as typeof fs.open;
  fs.renameSync = ((from: string, to: string) => {
    log.push(`rename ${from} -> ${to}`);
    renames.push('sync');
    orig.renameSync(from, to);
  }) as typeof fs.renameSync;
  fs.rename = ((from: string, to: string, cb: (err: NodeJS.ErrnoException | null) => void) => {
    log.push(`rename ${from} -> ${to}`);
    renames.push('pool');
    orig.rename(from, to, cb);
  }) as typeof fs.rename;
  fs.unlinkSync = ((path: string) => {
    log.push(`unlink ${path}`);
    orig.unlinkSync(path);
  }) as typeof fs.unlinkSync;
  fs.unlink = ((path: string, cb: (err: NodeJS.ErrnoException | null) => void) => {
    log.push(`unlink ${path}`);
    orig.unlink(path, cb);
  }) as typeof fs.unlink;
  const syncer = (real: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void) =>
    ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      const path = paths.get(fd);
      log.push(`fsync ${path}`);
      real(fd, (err) => {
        log.push(`fsynced ${path}`);
        cb(err);
      });
    });
  fs.fsync = syncer(orig.fsync) as typeof fs.fsync;
  fs.fdatasync = syncer(orig.fdatasync) as typeof fs.fdatasync;
  syncBuiltinESMExports();
  return {
    log,
    renames,
    restore: () => {
      Object.assign(fs, orig);
      syncBuiltinESMExports();
    },
  };
}

/**
 * Asserts the commit protocol of one accept in `log`: the only rename is a temp file onto `<id>.msg`, fsynced
 * before it; a folder fsync starts after the rename and ends before `resolved`.
 */
function assertCommit(log: string[], dir: string, id: string): void {
  const renames = log.filter((l) => l.startsWith('rename'));
  assert.equal(renames.length, 1, log.join('\n'));
  const [, from, to] = /^rename (\S+) -> (\S+)$/.exec(renames[0]!)!;
  assert.equal(to, join(dir, `${id}.msg`), 'the entry file is the only file put in place before 250');
  const renamedAt = log.indexOf(renames[0]!);
  const syncedAt = log.indexOf(`fsynced ${from}`);
  assert.ok(syncedAt >= 0 && syncedAt < renamedAt, `temp file fsynced before its rename\n${log.join('\n')}`);
  const dirSync = log.indexOf(`fsync ${dir}`, renamedAt);
  const dirSynced = log.indexOf(`fsynced ${dir}`, dirSync);
  assert.ok(dirSync > renamedAt && dirSynced > dirSync && dirSynced < log.indexOf('resolved'), `folder fsynced after the rename, before accept resolved\n${log.join('\n')}`);
  assert.equal(log.filter((l) => l.startsWith('fsync ') && l !== `fsync ${dir}`).length, 1, `one file fsync\n${log.join('\n')}`);
}

let root: string;
before(async () => { root = await mkdtemp(join(tmpdir(), 'postern-spool-')); });
after(async () => { await rm(root, { recursive: true, force: true }); });

describe('spool', () => {
  it('accepts a message, keeps per-recipient state across a reopen, and removes it once every recipient is done', async () => {
    const dir = join(root, 'flow');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const data = message('hello');
    const entry = await spool.accept(envelope(['bob@example.org', 'carol@example.com', 'BOB@example.org']), Readable.from([data]));
    assert.match(entry.id, /^[0-9a-f]{24}$/);
    assert.deepEqual(entry.recipients.map((r) => r.address), ['bob@example.org', 'carol@example.com'], 'duplicate recipient collapsed');
    assert.equal(entry.size, data.length);
    assert.deepEqual(await spool.read(entry.id), data);
    assert.deepEqual((await spool.recoverable()).map((e) => e.id), [entry.id]);

    await spool.markLocal(entry.id, 'carol@example.com', { ok: true, mailbox: 'INBOX' });
    await spool.enqueueRemote(entry.id, ['bob@example.org'], { prependHeaders: 'DKIM-Signature: v=1; a=x\r\n' });
    assert.equal(await spool.removeIfDone(entry.id), false, 'bob is still queued');

    const reopened = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const state = await reopened.load(entry.id);
    assert.ok(state);
    assert.equal(state.messageId, 'm1@example.com');
    assert.deepEqual(state.recipients.map((r) => [r.address, r.status]), [['bob@example.org', 'queued'], ['carol@example.com', 'delivered']]);
    assert.deepEqual(await reopened.recoverable(), [], 'nothing pending for the pipeline');
    assert.equal((await reopened.readOutbound(entry.id)).toString(), `DKIM-Signature: v=1; a=x\r\n${data.toString()}`);

    await reopened.update(entry.id, (e) => { e.recipients[0]!.status = 'sent'; });
    await reopened.enqueueRemote(entry.id, ['bob@example.org']);
    assert.equal((await reopened.load(entry.id))!.recipients[0]!.status, 'sent', 'enqueueing again does not resend');
    assert.equal(await reopened.removeIfDone(entry.id), true);
    assert.deepEqual((await readdir(dir)).filter((n) => !n.startsWith('.')), []);
    await assert.rejects(reopened.markLocal(entry.id, 'carol@example.com', { ok: true, mailbox: 'INBOX' }), /does not exist/);
  });

  it('refuses an oversized message with a permanent SpoolError, reads DATA to the end, and leaves nothing behind', async () => {
    const dir = join(root, 'big');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 4096 });
    let consumed = 0;
    const chunks = (async function* () {
      for (let i = 0; i < 10; i++) { consumed++; yield Buffer.alloc(1000, 0x61); }
    })();
    const err = await spool.accept(envelope(), chunks).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof SpoolError);
    assert.equal(err.reason, 'too-large');
    assert.equal(err.smtpCode, 552);
    assert.equal(err.temporary, false);
    assert.equal(consumed, 10, 'the whole DATA stream was read so the session can answer');
    assert.deepEqual(await readdir(dir), []);
  });

  it('refuses a malformed envelope', async () => {
    const spool = await FileSpool.open({ dir: join(root, 'env'), maxMessageBytes: 4096 });
    for (const to of [[], ['no-at-sign'], ['a b@example.org'], ['x@exa\r\nmple.org']]) {
      const err = await spool.accept(envelope(to), Readable.from([message('x')])).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof SpoolError, `refused ${JSON.stringify(to)}`);
      assert.equal(err.reason, 'bad-envelope');
    }
    await assert.rejects(spool.read('../../etc/passwd'), /not a queue id/);
  });

  it('streams a message into one entry file: fsynced, renamed into place, folder fsynced, then resolved', async () => {
    const dir = join(root, 'order');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const data = message('ordered');
    const fsLog = recordFs();
    let entryId: string;
    try {
      // In pieces, as DATA arrives from a socket.
      entryId = (await spool.accept(envelope(), Readable.from([data.subarray(0, 10), data.subarray(10)]))).id;
      fsLog.log.push('resolved');
    } finally {
      fsLog.restore();
    }
    assertCommit(fsLog.log, dir, entryId);
    assert.deepEqual(await readdir(dir), [`${entryId}.msg`], 'no state file: the entry file holds the envelope and state');
    assert.deepEqual(await spool.read(entryId), data, 'read() gives exactly the message, not the preamble');
    const state = await spool.load(entryId);
    assert.equal(state?.size, data.length);
    assert.equal(state?.messageId, 'm1@example.com');
    assert.deepEqual(state?.recipients, [{ address: 'bob@example.org', status: 'pending', attempts: 0 }]);
  });

  it('accepts a message already in memory (as the SMTP listener passes it) by the same protocol, and refuses an oversized one leaving nothing', async () => {
    const dir = join(root, 'in-memory');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 4096 });
    const prefix = Buffer.from('Received: from test\r\n');
    const body = message('in memory');
    const fsLog = recordFs();
    let entryId: string;
    try {
      entryId = (await spool.accept(envelope(), [prefix, body])).id;
      fsLog.log.push('resolved');
    } finally {
      fsLog.restore();
    }
    assertCommit(fsLog.log, dir, entryId);
    assert.deepEqual(fsLog.renames, ['sync'], 'a lone accept renames without a thread-pool round trip');
    assert.deepEqual(await spool.read(entryId), Buffer.concat([prefix, body]));
    const state = await spool.load(entryId);
    assert.equal(state?.messageId, 'm1@example.com');
    assert.equal(state?.size, prefix.length + body.length);

    const err = await spool.accept(envelope(), [prefix, Buffer.alloc(5000, 0x61)]).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof SpoolError);
    assert.equal(err.reason, 'too-large');
    assert.deepEqual(await readdir(dir), [`${entryId}.msg`], 'the refused message left no file');
  });

  it('reads back large messages (beyond the synchronous-I/O size) and empty ones exactly, whole, streamed and by their head', async () => {
    const dir = join(root, 'large');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 8 << 20 });
    const big = Buffer.concat([message('big'), Buffer.alloc(3 << 20, 0x62), Buffer.from('\r\nEND\r\n')]);
    const inMemory = await spool.accept(envelope(), [big]);
    const streamed = await spool.accept(envelope(), Readable.from([big.subarray(0, 1 << 20), big.subarray(1 << 20)]));
    for (const e of [inMemory, streamed]) {
      assert.ok((await spool.read(e.id)).equals(big), 'read()');
      const parts: Buffer[] = [];
      for await (const c of spool.open(e.id)) parts.push(c as Buffer);
      assert.ok(Buffer.concat(parts).equals(big), 'open()');
      assert.ok((await spool.readHead(e.id)).equals(big.subarray(0, 64 * 1024)), 'readHead()');
    }
    const empty = await spool.accept(envelope(), []);
    assert.deepEqual(await spool.read(empty.id), Buffer.alloc(0));
    const emptyParts: unknown[] = [];
    for await (const c of spool.open(empty.id)) emptyParts.push(c);
    assert.deepEqual(emptyParts, [], 'an empty message streams as nothing');
    await assert.rejects(new Promise((resolve, reject) => spool.open('0123456789abcdef01234567').on('error', reject).on('end', resolve).resume()), /ENOENT/);
    assert.deepEqual(await spool.readHead('0123456789abcdef01234567'), Buffer.alloc(0));
  });

  it('under concurrent accepts, resolves each only after a folder fsync that began after its rename, sharing folder fsyncs', async () => {
    const dir = join(root, 'group');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const fsLog = recordFs();
    const log = fsLog.log;
    const n = 20;
    try {
      await Promise.all(Array.from({ length: n }, async (_, i) => {
        const e = await spool.accept(envelope(), i % 2 ? [message(`concurrent ${i}`)] : Readable.from([message(`concurrent ${i}`)]));
        log.push(`resolved ${e.id}`);
      }));
    } finally {
      fsLog.restore();
    }
    const folderSyncs = log.filter((l) => l === `fsync ${dir}`).length;
    for (const line of log.filter((l) => l.startsWith('resolved '))) {
      const id = line.slice(9);
      const committed = log.findIndex((l) => l.startsWith('rename') && l.endsWith(`${id}.msg`));
      const covering = log.findIndex((l, i) => i > committed && l === `fsync ${dir}`);
      const done = log.findIndex((l, i) => i > covering && l === `fsynced ${dir}`);
      assert.ok(committed >= 0 && covering > committed && done >= 0 && done < log.indexOf(line), `${id}: folder fsync started after its rename and finished before accept resolved\n${log.join('\n')}`);
    }
    assert.ok(folderSyncs < n, `${n} concurrent accepts shared folder fsyncs (${folderSyncs})`);
    assert.ok(fsLog.renames.includes('pool'), `renames with other accepts in flight go to the thread pool (${fsLog.renames.join(' ')})`);
    assert.equal(log.filter((l) => l === `open ${dir}`).length, 1, 'the folder is opened once and kept open');
    assert.equal((await spool.list()).length, n);
  });

  it('group-commits folder fsyncs on one kept fd: callers during a running fsync share the next one; close() waits, a later sync reopens', async () => {
    const dir = join(root, 'folder-sync');
    await mkdir(dir);
    const fsLog = recordFs();
    try {
      const folder = new FolderSync(dir);
      await Promise.all(Array.from({ length: 10 }, () => folder.sync()));
      await folder.sync();
      const pending = folder.sync();
      await folder.close();
      fsLog.log.push('closed');
      await pending;
      await folder.sync();
      await folder.close();
    } finally {
      fsLog.restore();
    }
    const log = fsLog.log;
    // The first call starts one, the nine others wait for the next (they may have renamed after the first began);
    // a later call starts its own.
    assert.equal(log.slice(0, log.indexOf('closed')).filter((l) => l === `fsync ${dir}`).length, 4, log.join('\n'));
    assert.ok(log.indexOf(`fsynced ${dir}`, log.lastIndexOf(`fsync ${dir}`, log.indexOf('closed'))) < log.indexOf('closed'), 'close() waited for the running fsync');
    assert.deepEqual(log.filter((l) => l.startsWith('open')), [`open ${dir}`, `open ${dir}`], 'opened once, and again after close()');
  });

  it('writes state changes after accept to a side file, durably, and reads it back after a reopen', async () => {
    const dir = join(root, 'side');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const e = await spool.accept(envelope(['bob@example.org', 'dave@example.net']), [message('side')]);
    await spool.close(); // the folder fd is opened again, under the recorder
    const fsLog = recordFs();
    try {
      await spool.enqueueRemote(e.id, ['dave@example.net'], { prependHeaders: 'X-Test: 1\r\n' });
      fsLog.log.push('resolved');
    } finally {
      fsLog.restore();
    }
    const log = fsLog.log;
    const renames = log.filter((l) => l.startsWith('rename'));
    assert.equal(renames.length, 1, log.join('\n'));
    const [, from, to] = /^rename (\S+) -> (\S+)$/.exec(renames[0]!)!;
    assert.equal(to, join(dir, `${e.id}.json`));
    assert.ok(log.indexOf(`fsynced ${from}`) < log.indexOf(renames[0]!), `side file fsynced before its rename\n${log.join('\n')}`);
    const dirSynced = log.indexOf(`fsynced ${dir}`, log.indexOf(renames[0]!));
    assert.ok(dirSynced > 0 && dirSynced < log.indexOf('resolved'), `folder fsynced before the change is reported\n${log.join('\n')}`);
    assert.deepEqual((await readdir(dir)).sort(), [`${e.id}.json`, `${e.id}.msg`]);

    const reopened = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const state = await reopened.load(e.id);
    assert.deepEqual(state?.recipients.map((r) => r.status), ['pending', 'queued']);
    assert.equal((await reopened.readOutbound(e.id)).toString(), `X-Test: 1\r\n${message('side').toString()}`);
    assert.deepEqual((await reopened.recoverable()).map((x) => x.id), [e.id], 'bob is still pending for the pipeline');
  });

  it('returns a finished entry that a crash left in the spool from recoverable(), so the pipeline removes it', async () => {
    const dir = join(root, 'leftover');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const done = await spool.accept(envelope(['bob@example.org', 'carol@example.org']), Readable.from([message('done')]));
    const queued = await spool.accept(envelope(['dave@example.net']), Readable.from([message('queued')]));
    const pending = await spool.accept(envelope(), Readable.from([message('pending')]));
    // What a SIGKILL between the last markLocal and removeIfDone leaves: every recipient done, entry still there.
    await spool.markLocal(done.id, 'bob@example.org', { ok: true, mailbox: 'INBOX' });
    await spool.markLocal(done.id, 'carol@example.org', { ok: false, permanent: true, message: '550 5.1.1 No such user' });
    await spool.enqueueRemote(queued.id, ['dave@example.net']);

    const reopened = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    assert.deepEqual((await reopened.recoverable()).map((e) => e.id).sort(), [done.id, pending.id].sort(), 'the finished and the pending entry, not the one waiting for the outbound queue');
    assert.equal(await reopened.removeIfDone(done.id), true);
    assert.deepEqual((await reopened.recoverable()).map((e) => e.id), [pending.id]);
  });

  it('removes an entry on its last local success without writing its final state (removeIfDone), entry file first', async () => {
    const dir = join(root, 'finish');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const removedEvents: string[] = [];
    spool.on('removed', (id) => removedEvents.push(id));
    const e = await spool.accept(envelope(['bob@example.org', 'carol@example.org', 'dave@example.net']), Readable.from([message('finish')]));
    assert.equal(await spool.markLocal(e.id, 'bob@example.org', { ok: true, mailbox: 'INBOX' }, { removeIfDone: true }), false, 'carol still pending');
    assert.equal(await spool.markLocal(e.id, 'carol@example.org', { ok: false, permanent: false, message: '451 4.3.0 busy' }, { removeIfDone: true }), false, 'a temporary failure leaves carol pending');
    await spool.enqueueRemote(e.id, ['dave@example.net']);
    assert.equal(await spool.markLocal(e.id, 'carol@example.org', { ok: true, mailbox: 'INBOX' }, { removeIfDone: true }), false, 'dave is still queued');
    const state = await spool.load(e.id);
    assert.deepEqual(state?.recipients.map((r) => r.status), ['delivered', 'delivered', 'queued'], 'results before the last are durable');

    const local = await spool.accept(envelope(['bob@example.org', 'carol@example.org']), Readable.from([message('local only')]));
    await spool.markLocal(local.id, 'bob@example.org', { ok: true, mailbox: 'INBOX' }, { removeIfDone: true });
    const fsLog = recordFs();
    let removed: boolean;
    try {
      removed = await spool.markLocal(local.id, 'carol@example.org', { ok: true, mailbox: 'INBOX' }, { removeIfDone: true });
    } finally {
      fsLog.restore();
    }
    assert.equal(removed, true);
    const ops = fsLog.log.filter((l) => !l.startsWith('open'));
    assert.equal(ops.length, 2, `no state write, no fsync for the finishing result: ${ops.join('; ')}`);
    // The entry file leaves its name first (kept as a spare for the next accept), then the side file goes.
    assert.match(ops[0]!, new RegExp(`^rename ${join(dir, `${local.id}\\.msg`)} -> ${join(dir, '\\.tmp-')}`), 'the entry file (the commit marker) goes first');
    assert.equal(ops[1], `unlink ${join(dir, `${local.id}.json`)}`);
    assert.equal(await spool.get(local.id), null);
    assert.deepEqual(removedEvents, [local.id]);
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith(local.id)), []);

    const failing = await spool.accept(envelope(), Readable.from([message('failing')]));
    assert.equal(await spool.markLocal(failing.id, 'bob@example.org', { ok: false, permanent: true, message: '552 5.2.2 full' }, { removeIfDone: true }), false, 'a failure stays until its DSN is out');
    assert.equal((await spool.load(failing.id))?.recipients[0]?.status, 'failed');
  });

  it('reuses a removed entry\'s file for the next accept (no file created, nothing of the old message left); spares go at the next open', async () => {
    const dir = join(root, 'recycle');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const first = await spool.accept(envelope(), [message('first message, longer than the second one '.repeat(50))]);
    let fsLog = recordFs();
    try {
      assert.equal(await spool.markLocal(first.id, 'bob@example.org', { ok: true, mailbox: 'INBOX' }, { removeIfDone: true }), true);
    } finally {
      fsLog.restore();
    }
    const spare = /^rename \S+ -> (\S+)$/.exec(fsLog.log.find((l) => l.startsWith('rename'))!)![1]!;
    const firstLength = fs.statSync(spare).size;
    assert.ok(firstLength > 2000, 'the spare keeps its blocks for the next accept to overwrite (no truncate, no discard)');
    assert.equal(await spool.get(first.id), null);

    const secondBody = message('second');
    fsLog = recordFs();
    let second;
    try {
      second = await spool.accept(envelope(['carol@example.org']), Readable.from([secondBody]));
    } finally {
      fsLog.restore();
    }
    assert.deepEqual(fsLog.log.filter((l) => l.startsWith('open') || l.startsWith('rename')).slice(0, 2),
      [`open ${spare}`, `rename ${spare} -> ${join(dir, `${second.id}.msg`)}`], 'the spare became the new entry file');
    assert.deepEqual(await spool.read(second.id), secondBody, 'exactly the new message');
    assert.ok(fs.statSync(join(dir, `${second.id}.msg`)).size < firstLength, 'the longer message\'s tail was cut off');
    assert.deepEqual((await spool.get(second.id))?.envelope.to, ['carol@example.org']);

    // The same for a message already in memory (the SMTP listener's way), into the spare the second one left.
    await spool.markLocal(second.id, 'carol@example.org', { ok: true, mailbox: 'INBOX' }, { removeIfDone: true });
    const short = await spool.accept(envelope(), [Buffer.from('Subject: s\r\n\r\nx\r\n')]);
    assert.equal((await spool.read(short.id)).toString(), 'Subject: s\r\n\r\nx\r\n');

    // Another spare, then a restart: temp files do not outlive the process that kept them.
    await spool.markLocal(short.id, 'bob@example.org', { ok: true, mailbox: 'INBOX' }, { removeIfDone: true });
    assert.equal((await readdir(dir)).filter((n) => n.startsWith('.tmp-')).length, 1);
    await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    assert.deepEqual(await readdir(dir), []);

    // A large entry's file is not kept as a spare: spares hold at most 256 KiB each.
    const large = await spool.accept(envelope(), [message('x'.repeat(300 * 1024))]);
    await spool.markLocal(large.id, 'bob@example.org', { ok: true, mailbox: 'INBOX' }, { removeIfDone: true });
    assert.deepEqual(await readdir(dir), []);

    // A tool next to the server (attach) removes for good: it keeps no spares.
    const third = await spool.accept(envelope(), [message('third')]);
    const tool = FileSpool.attach({ dir, maxMessageBytes: 1 });
    assert.equal(await tool.remove(third.id), true);
    assert.deepEqual(await readdir(dir), []);
  });

  it('drops, at the next open, a side file whose entry file a crash already removed', async () => {
    const dir = join(root, 'half-removed');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const e = await spool.accept(envelope(['bob@example.org', 'dave@example.net']), [message('half')]);
    await spool.enqueueRemote(e.id, ['dave@example.net']);
    // A kill between the two unlinks of a removal.
    await rm(join(dir, `${e.id}.msg`));
    assert.equal(await spool.load(e.id), null, 'without its entry file the entry is gone');
    assert.deepEqual(await spool.list(), []);
    const warnings: string[] = [];
    await FileSpool.open({ dir, maxMessageBytes: 1 << 20, warn: (m) => warnings.push(m) });
    assert.deepEqual(await readdir(dir), []);
    assert.match(warnings.join('\n'), /state without an entry file/);
  });

  it('shows nothing of a message whose writer was killed with SIGKILL mid-write, and keeps every accepted one', async () => {
    const dir = join(root, 'crash');
    const script = fileURLToPath(new URL('./support/spool-writer.ts', import.meta.url));
    const child = spawn(process.execPath, [script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const accepted: string[] = [];
    await new Promise<void>((resolve, reject) => {
      child.on('error', reject);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        for (const line of out.split('\n').slice(0, -1)) {
          if (line.startsWith('accepted ') && !accepted.includes(line.slice(9))) accepted.push(line.slice(9));
          // The child has spooled two whole messages and is in the middle of the third.
          if (line === 'writing' && accepted.length >= 2) resolve();
        }
      });
    });
    const tmpBefore = (await readdir(dir)).filter((n) => n.startsWith('.tmp-'));
    assert.ok(tmpBefore.length >= 1, 'a partial temp file exists while the third message is being written');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const warnings: string[] = [];
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20, warn: (m) => warnings.push(m) });
    const entries = await spool.list();
    assert.deepEqual(entries.map((e) => e.id).sort(), [...accepted].sort(), 'exactly the acknowledged messages');
    for (const e of entries) {
      const body = await spool.read(e.id);
      assert.equal(body.length, e.size);
      assert.match(body.toString(), /^From: alice@example.com[\s\S]*END\r\n$/);
      assert.deepEqual(e.recipients.map((r) => r.status), ['pending']);
    }
    assert.deepEqual((await readdir(dir)).sort(), accepted.map((id) => `${id}.msg`).sort(), 'the partial file is cleaned up at open');
    assert.deepEqual(warnings, [], 'a partial temp file is expected after a crash, not a problem');
  });
});

it('spool ids are valid, distinct across many draws from the random pool, and sort by arrival time; temp names too are distinct', () => {
  const ids = Array.from({ length: 3000 }, (_, i) => newSpoolId(1_700_000_000_000 + Math.floor(i / 7)));
  assert.ok(ids.every(isSpoolId));
  assert.equal(new Set(ids).size, ids.length);
  assert.equal(new Set(ids.map((id) => id.slice(12))).size, ids.length, 'the random halves repeat');
  assert.deepEqual(ids.map((id) => id.slice(0, 12)), [...ids.map((id) => id.slice(0, 12))].sort());
  // Temp names share the pool: distinct from each other, in the folder of their file, hidden from listings.
  const temps = Array.from({ length: 3000 }, () => tempPathFor('/spool/0123.msg'));
  assert.equal(new Set(temps).size, temps.length);
  assert.ok(temps.every((t) => /^\/spool\/\.tmp-0123\.msg-[0-9a-f]{12}$/.test(t)), temps[0]);
});

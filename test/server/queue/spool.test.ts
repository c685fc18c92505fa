// The spool's durability promises: fsync before rename, folder fsync before accept resolves (also when concurrent
// accepts share it), nothing partial visible after a crash (SIGKILL of a real child process mid-write), state that
// survives a reopen, finished leftovers found again, and the last local success removing without a state write.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp, { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { SpoolError } from '../../../src/server/queue/api.ts';
import type { SpoolEnvelope } from '../../../src/server/queue/api.ts';
import { FileSpool } from '../../../src/server/queue/spool.ts';
import { FolderSync } from '../../../src/server/queue/durable.ts';

const envelope = (to: string[] = ['bob@example.org']): SpoolEnvelope => ({
  from: 'alice@example.com',
  to,
  client: { remoteAddress: '192.0.2.7', helo: 'client.example', tls: true, listener: 'submission' },
  authenticatedUser: 'alice@example.com',
});
const message = (body: string) => Buffer.from(`From: alice@example.com\r\nTo: bob@example.org\r\nMessage-ID: <m1@example.com>\r\nSubject: t\r\n\r\n${body}\r\n`);

/**
 * Records the spool's file operations in order: `open PATH`, `rename FROM -> TO`, `fsync PATH` when an fsync
 * starts and `fsynced PATH` when it ends. Patches node:fs/promises (and FileHandle.prototype.sync) until restore().
 */
async function recordFs(): Promise<{ log: string[]; restore: () => void }> {
  const log: string[] = [];
  const paths = new Map<number, string>();
  const origOpen = fsp.open;
  const origRename = fsp.rename;
  const probe = await origOpen(join(root, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
  await probe.close();
  const origSync = proto.sync;
  fsp.open = (async (path: string, ...rest: unknown[]) => {
    const fh = await (origOpen as (...a: unknown[]) => Promise<{ fd: number }>)(path, ...rest);
    paths.set(fh.fd, String(path));
    log.push(`open ${String(path)}`);
    return fh;
  }) as typeof fsp.open;
  fsp.rename = (async (from: string, to: string) => {
    log.push(`rename ${from} -> ${to}`);
    return origRename(from, to);
  }) as typeof fsp.rename;
  proto.sync = async function (this: { fd: number }) {
    const path = paths.get(this.fd);
    log.push(`fsync ${path}`);
    await origSync.call(this);
    log.push(`fsynced ${path}`);
  };
  syncBuiltinESMExports();
  return {
    log,
    restore: () => {
      fsp.open = origOpen;
      fsp.rename = origRename;
      proto.sync = origSync;
      syncBuiltinESMExports();
    },
  };
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
    assert.throws(() => spool.read('../../etc/passwd'), /not a queue id/);
  });

  it('fsyncs the message and state files before renaming them into place, and the folder before resolving', async () => {
    const spool = await FileSpool.open({ dir: join(root, 'order'), maxMessageBytes: 1 << 20 });
    const fsLog = await recordFs();
    const log = fsLog.log;
    let entryId: string;
    try {
      entryId = (await spool.accept(envelope(), Readable.from([message('ordered')]))).id;
      log.push('resolved');
    } finally {
      fsLog.restore();
    }
    const renames = log.filter((l) => l.startsWith('rename'));
    assert.equal(renames.length, 2, log.join('\n'));
    for (const r of renames) {
      const [, from] = /^rename (\S+) -> /.exec(r)!;
      const syncAt = log.indexOf(`fsync ${from}`);
      assert.ok(syncAt >= 0 && syncAt < log.indexOf(r), `temp file fsynced before ${r}\n${log.join('\n')}`);
    }
    assert.ok(renames[0]!.endsWith(`${entryId}.eml`) && renames[1]!.endsWith(`${entryId}.json`), 'message file lands before the state file that commits it');
    const dirSync = log.lastIndexOf(`fsync ${join(root, 'order')}`);
    assert.ok(dirSync > log.indexOf(renames[1]!) && dirSync < log.indexOf('resolved'), `folder fsynced after the last rename, before accept resolved\n${log.join('\n')}`);
  });

  it('accepts a message already in memory (as the SMTP listener passes it) with the same fsync-before-rename order, and refuses an oversized one leaving nothing', async () => {
    const dir = join(root, 'in-memory');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 4096 });
    const prefix = Buffer.from('Received: from test\r\n');
    const body = message('in memory');
    const fsLog = await recordFs();
    const log = fsLog.log;
    let entryId: string;
    try {
      entryId = (await spool.accept(envelope(), [prefix, body])).id;
      log.push('resolved');
    } finally {
      fsLog.restore();
    }
    const renames = log.filter((l) => l.startsWith('rename'));
    assert.equal(renames.length, 2, log.join('\n'));
    for (const r of renames) {
      const [, from] = /^rename (\S+) -> /.exec(r)!;
      const syncedAt = log.indexOf(`fsynced ${from}`);
      assert.ok(syncedAt >= 0 && syncedAt < log.indexOf(r), `temp file fsynced before ${r}\n${log.join('\n')}`);
    }
    assert.ok(renames[0]!.endsWith(`${entryId}.eml`) && renames[1]!.endsWith(`${entryId}.json`), 'message file lands before the state file that commits it');
    const dirSynced = log.lastIndexOf(`fsynced ${dir}`);
    assert.ok(log.indexOf(`fsync ${dir}`, log.indexOf(renames[1]!)) > 0 && dirSynced < log.indexOf('resolved'), `folder fsynced after the last rename, before accept resolved\n${log.join('\n')}`);
    assert.deepEqual(await spool.read(entryId), Buffer.concat([prefix, body]));
    const state = await spool.load(entryId);
    assert.equal(state?.messageId, 'm1@example.com');
    assert.equal(state?.size, prefix.length + body.length);

    const err = await spool.accept(envelope(), [prefix, Buffer.alloc(5000, 0x61)]).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof SpoolError);
    assert.equal(err.reason, 'too-large');
    assert.deepEqual((await readdir(dir)).sort(), [`${entryId}.eml`, `${entryId}.json`], 'the refused message left no file');
  });

  it('under concurrent accepts, resolves each only after a folder fsync that began after its renames, sharing folder fsyncs', async () => {
    const dir = join(root, 'group');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const fsLog = await recordFs();
    const log = fsLog.log;
    const n = 20;
    try {
      await Promise.all(Array.from({ length: n }, async (_, i) => {
        const e = await spool.accept(envelope(), Readable.from([message(`concurrent ${i}`)]));
        log.push(`resolved ${e.id}`);
      }));
    } finally {
      fsLog.restore();
    }
    const folderSyncs = log.filter((l) => l === `fsync ${dir}`).length;
    for (const line of log.filter((l) => l.startsWith('resolved '))) {
      const id = line.slice(9);
      const committed = log.findIndex((l) => l.startsWith('rename') && l.endsWith(`${id}.json`));
      const covering = log.findIndex((l, i) => i > committed && l === `fsync ${dir}`);
      const done = log.findIndex((l, i) => i > covering && l === `fsynced ${dir}`);
      assert.ok(committed >= 0 && covering > committed && done >= 0 && done < log.indexOf(line), `${id}: folder fsync started after its state rename and finished before accept resolved\n${log.join('\n')}`);
    }
    assert.ok(folderSyncs < n, `${n} concurrent accepts shared folder fsyncs (${folderSyncs})`);
    assert.equal((await spool.list()).length, n);
  });

  it('group-commits folder fsyncs: callers during a running fsync share the next one', async () => {
    const dir = join(root, 'folder-sync');
    await fsp.mkdir(dir);
    const fsLog = await recordFs();
    try {
      const folder = new FolderSync(dir);
      await Promise.all(Array.from({ length: 10 }, () => folder.sync()));
      await folder.sync();
    } finally {
      fsLog.restore();
    }
    // The first call starts one, the nine others wait for the next (they may have renamed after the first began);
    // a later call starts its own.
    assert.equal(fsLog.log.filter((l) => l === `fsync ${dir}`).length, 3, fsLog.log.join('\n'));
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

  it('removes an entry on its last local success without writing its final state (removeIfDone), and only then', async () => {
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
    const fsLog = await recordFs();
    let removed: boolean;
    try {
      removed = await spool.markLocal(local.id, 'carol@example.org', { ok: true, mailbox: 'INBOX' }, { removeIfDone: true });
    } finally {
      fsLog.restore();
    }
    assert.equal(removed, true);
    assert.deepEqual(fsLog.log.filter((l) => !l.startsWith('open')), [], 'no state write, no fsync for the finishing result');
    assert.equal(await spool.get(local.id), null);
    assert.deepEqual(removedEvents, [local.id]);
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith(local.id)), []);

    const failing = await spool.accept(envelope(), Readable.from([message('failing')]));
    assert.equal(await spool.markLocal(failing.id, 'bob@example.org', { ok: false, permanent: true, message: '552 5.2.2 full' }, { removeIfDone: true }), false, 'a failure stays until its DSN is out');
    assert.equal((await spool.load(failing.id))?.recipients[0]?.status, 'failed');
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

    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const entries = await spool.list();
    assert.deepEqual(entries.map((e) => e.id).sort(), [...accepted].sort(), 'exactly the acknowledged messages');
    for (const e of entries) {
      const body = await spool.read(e.id);
      assert.equal(body.length, e.size);
      assert.match(body.toString(), /^From: alice@example.com[\s\S]*END\r\n$/);
    }
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('.tmp-')), [], 'the partial file is cleaned up at open');
    assert.equal((await readdir(dir)).length, accepted.length * 2);
    assert.ok((await readFile(join(dir, `${accepted[0]}.json`), 'utf8')).includes('"pending"'));
  });
});

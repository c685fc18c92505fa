// A spool written by the previous layout (`<id>.eml` raw message + `<id>.json` state) after an upgrade: tools see
// its entries, the server's start converts them durably and delivers what was pending; and entry files that
// cannot be read are reported and kept aside at start, never dropped and never stopping the start.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { retryNow } from '../../../src/server/queue/admin.ts';
import { FileSpool } from '../../../src/server/queue/spool.ts';
import type { StoredEntry } from '../../../src/server/queue/spool.ts';
import { startPostern } from '../../support/smtp-harness.ts';

let root: string;
before(async () => { root = await mkdtemp(join(tmpdir(), 'postern-spool-upgrade-')); });
after(async () => { await rm(root, { recursive: true, force: true }); });

const client = { remoteAddress: '192.0.2.7', helo: 'client.example', tls: true, listener: 'mx' as const };
const message = (tag: string) => Buffer.from(`From: carol@sender.example.net\r\nTo: bob@example.com\r\nMessage-ID: <${tag}@sender.example.net>\r\nSubject: ${tag}\r\n\r\nbody of ${tag}\r\n`);

/** What the previous spool wrote for one accepted entry: the message file, and the state file that committed it. */
async function writeOldEntry(dir: string, id: string, tag: string, recipients: StoredEntry['recipients'], extra: Partial<StoredEntry> = {}): Promise<Buffer> {
  const data = message(tag);
  const entry: StoredEntry = {
    id, envelope: { from: 'carol@sender.example.net', to: recipients.map((r) => r.address), client },
    receivedAt: Date.now() - 60_000, size: data.length, recipients, messageId: `${tag}@sender.example.net`, ...extra,
  };
  await writeFile(join(dir, `${id}.eml`), data);
  await writeFile(join(dir, `${id}.json`), JSON.stringify(entry));
  return data;
}

const id = (n: number) => `0000019a0000${n.toString(16).padStart(12, '0')}`;

describe('spool upgrade from the two-file layout', () => {
  it('lists and acts on old entries from tools, then converts them at the server\'s start, keeping their state', async () => {
    const dir = join(root, 'convert');
    await mkdir(dir);
    const pendingData = await writeOldEntry(dir, id(1), 'pending', [{ address: 'bob@example.com', status: 'pending', attempts: 0 }]);
    const queuedData = await writeOldEntry(dir, id(2), 'queued',
      [{ address: 'dave@example.net', status: 'queued', attempts: 2, nextAttemptAt: Date.now() + 3_600_000, lastResult: '451 4.7.1 try later' }],
      { prependHeaders: 'DKIM-Signature: v=1; a=x\r\n' });
    await writeFile(join(dir, `${id(3)}.eml`), message('never-acknowledged')); // its state file never landed
    await writeFile(join(dir, `${id(4)}.json`), '{"id":"x"}'); // state whose message file was removed first
    await writeOldEntry(dir, id(5), 'removable', [{ address: 'erin@example.net', status: 'queued', attempts: 1, nextAttemptAt: 0 }]);

    // `postern queue` next to a server not yet restarted on the new version.
    const tool = FileSpool.attach({ dir, maxMessageBytes: 1 });
    assert.deepEqual((await tool.list()).map((e) => e.id), [id(1), id(2), id(5)]);
    assert.equal(await retryNow(tool, id(2), 1234), 1);
    assert.equal(await tool.remove(id(5)), true);
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith(id(5))), []);

    const warnings: string[] = [];
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20, warn: (m) => warnings.push(m) });
    assert.deepEqual((await readdir(dir)).sort(), [`${id(1)}.json`, `${id(1)}.msg`, `${id(2)}.json`, `${id(2)}.msg`]);
    assert.deepEqual(await spool.read(id(1)), pendingData);
    assert.deepEqual(await spool.read(id(2)), queuedData);
    const queued = await spool.load(id(2));
    assert.equal(queued?.recipients[0]?.attempts, 2);
    assert.equal(queued?.recipients[0]?.nextAttemptAt, 1234, 'the retry made by the tool before the restart');
    assert.equal((await spool.readOutbound(id(2))).toString(), `DKIM-Signature: v=1; a=x\r\n${queuedData.toString()}`);
    assert.deepEqual((await spool.recoverable()).map((e) => e.id), [id(1)]);
    assert.match(warnings.join('\n'), /converted 2 entries from the previous spool layout/);

    // A conversion interrupted after the entry file landed: the next start only removes the old message file.
    await writeFile(join(dir, `${id(6)}.eml`), message('half-converted'));
    await writeFile(join(dir, `${id(1)}.eml`), pendingData);
    await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    assert.deepEqual((await readdir(dir)).sort(), [`${id(1)}.json`, `${id(1)}.msg`, `${id(2)}.json`, `${id(2)}.msg`]);
    assert.deepEqual(await spool.read(id(1)), pendingData);
  });

  it('delivers a message left pending in an old-layout spool once the upgraded server starts', { timeout: 30_000 }, async () => {
    const dir = join(root, 'deliver');
    await mkdir(dir);
    const data = await writeOldEntry(dir, id(7), 'left-before-upgrade', [{ address: 'bob@example.com', status: 'pending', attempts: 0 }]);
    const p = await startPostern({ spoolDir: dir });
    try {
      const deadline = Date.now() + 20_000;
      while (!p.store.messages('bob@example.com').some((m) => m.includes('<left-before-upgrade@sender.example.net>'))) {
        assert.ok(Date.now() < deadline, 'delivered after the start');
        await new Promise((r) => setTimeout(r, 20));
      }
      const stored = p.store.messages('bob@example.com').find((m) => m.includes('<left-before-upgrade@sender.example.net>'))!;
      assert.ok(stored.includes(data), 'the message as received, with nothing of the spool format in it');
      assert.equal(p.store.messages('bob@example.com').length, 1);
      // Temp files (a spare kept for the next accept) are not entries.
      while ((await readdir(dir)).filter((n) => !n.startsWith('.tmp-')).length) {
        assert.ok(Date.now() < deadline, 'spool emptied');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await p.stop();
    }
  });
});

describe('unreadable entry files', () => {
  it('are reported and kept aside at start, with their side file, while the other entries load', async () => {
    const dir = join(root, 'corrupt');
    const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const good = await spool.accept({ from: 'carol@sender.example.net', to: ['bob@example.com'], client }, [message('good')]);
    const torn = await spool.accept({ from: 'carol@sender.example.net', to: ['bob@example.com', 'dave@example.net'], client }, [message('torn')]);
    await spool.enqueueRemote(torn.id, ['dave@example.net']);
    const headless = await spool.accept({ from: 'carol@sender.example.net', to: ['bob@example.com'], client }, [message('headless')]);
    const bigHeader = await spool.accept({ from: 'carol@sender.example.net', to: ['bob@example.com'], client }, [message('big-header')]);
    // A message cut short, a preamble overwritten with garbage, a preamble announcing more than the file holds.
    await truncate(join(dir, `${torn.id}.msg`), (await readFile(join(dir, `${torn.id}.msg`))).length - 10);
    await writeFile(join(dir, `${headless.id}.msg`), Buffer.concat([Buffer.from('\x00\x17garbage'), message('headless')]));
    await writeFile(join(dir, `${bigHeader.id}.msg`), Buffer.from('POSTERN-SPOOL 1 999999\n{"id":'));

    // At runtime (a tool, or before a restart): reported, skipped, never thrown out of list().
    const warnings: string[] = [];
    const tool = FileSpool.attach({ dir, maxMessageBytes: 1, warn: (m) => warnings.push(m) });
    assert.deepEqual((await tool.list()).map((e) => e.id), [good.id]);
    assert.equal(warnings.length, 3, warnings.join('\n'));
    await assert.rejects(tool.read(torn.id), /message is \d+ bytes, the preamble says \d+/);

    warnings.length = 0;
    const reopened = await FileSpool.open({ dir, maxMessageBytes: 1 << 20, warn: (m) => warnings.push(m) });
    assert.deepEqual((await reopened.list()).map((e) => e.id), [good.id]);
    assert.deepEqual((await readdir(dir)).sort(), [
      `${good.id}.msg`,
      `${torn.id}.json.corrupt`, `${torn.id}.msg.corrupt`,
      `${headless.id}.msg.corrupt`,
      `${bigHeader.id}.msg.corrupt`,
    ].sort());
    assert.equal(warnings.length, 3, warnings.join('\n'));
    assert.match(warnings.find((w) => w.includes(torn.id))!, /message is \d+ bytes, the preamble says \d+.*kept aside as .*\.msg\.corrupt, .*\.json\.corrupt/);
    assert.match(warnings.find((w) => w.includes(headless.id))!, /no spool preamble/);
    assert.match(warnings.find((w) => w.includes(bigHeader.id))!, /ends inside its 999999-byte preamble/);
    assert.deepEqual(await reopened.read(good.id), message('good'));
    // Kept aside, not dropped: the bytes are still there for an operator.
    assert.ok((await readFile(join(dir, `${headless.id}.msg.corrupt`))).includes(message('headless')));
  });
});

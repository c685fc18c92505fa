// `postern queue` as a user runs it: a real child process on a state folder with a spool in it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FileSpool } from '../../src/server/queue/spool.ts';

const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const postern = (...args: string[]) => spawnSync(process.execPath, [main, 'queue', ...args], { encoding: 'utf8', timeout: 60_000 });

let state: string;
let spool: FileSpool;
let queuedId: string;
let pendingId: string;

before(async () => {
  state = await mkdtemp(join(tmpdir(), 'postern-cli-queue-'));
  spool = await FileSpool.open({ dir: join(state, 'queue'), maxMessageBytes: 1 << 20 });
  const client = { remoteAddress: '127.0.0.1', helo: 'c', tls: true, listener: 'submission' as const };
  const a = await spool.accept({ from: 'alice@home.test', to: ['bob@far.test'], client }, Readable.from([Buffer.from('Message-ID: <cli-1@home.test>\r\nSubject: a\r\n\r\nx\r\n')]));
  await spool.enqueueRemote(a.id, ['bob@far.test']);
  await spool.update(a.id, (e) => {
    e.recipients[0]!.attempts = 3;
    e.recipients[0]!.nextAttemptAt = Date.now() + 3_600_000;
    e.recipients[0]!.lastResult = '451 4.7.1 greylisted';
  });
  queuedId = a.id;
  pendingId = (await spool.accept({ from: '', to: ['carol@home.test'], client }, Readable.from([Buffer.from('Subject: b\r\n\r\ny\r\n')]))).id;
});

after(async () => { await rm(state, { recursive: true, force: true }); });

describe('postern queue', () => {
  it('lists entries with recipients, attempts, next attempt and the last remote reply', () => {
    const r = postern('list', '--state', state);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${queuedId} .* from <alice@home\\.test>  <cli-1@home\\.test>$`, 'm'));
    assert.match(r.stdout, /^ {2}queued {4}bob@far\.test, attempts 3, next attempt in 60m$/m);
    assert.match(r.stdout, /last: 451 4\.7\.1 greylisted/);
    assert.match(r.stdout, new RegExp(`^${pendingId} .* from <>$`, 'm'));
    const j = postern('list', '--json', '--state', state);
    assert.deepEqual((JSON.parse(j.stdout) as { id: string }[]).map((e) => e.id), [queuedId, pendingId]);
  });

  it('retry makes a waiting recipient due now', async () => {
    const r = postern('retry', queuedId, '--state', state);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /1 recipient\(s\) due now/);
    const e = await spool.load(queuedId);
    assert.ok(e!.recipients[0]!.nextAttemptAt! <= Date.now());
    assert.match(postern('list', '--state', state).stdout, /bob@far\.test, attempts 3, next attempt now/);
  });

  it('remove deletes the entry and its message file', async () => {
    const r = postern('remove', queuedId, '--state', state);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(await spool.load(queuedId), null);
    assert.deepEqual((await readdir(join(state, 'queue'))).filter((n) => n.startsWith(queuedId)), []);
    const again = postern('remove', queuedId, '--state', state);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /no queue entry/);
  });

  it('refuses a malformed id and a folder without a queue, saying what to do', async () => {
    const bad = postern('retry', '../../etc/passwd', '--state', state);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /not a queue id/);
    const none = postern('list', '--state', join(state, 'nope'));
    assert.notEqual(none.status, 0);
    assert.match(none.stderr, /no queue in .*--state/);
  });
});

// Internal errors answer 4xx, never 5xx, so senders retry: a full disk under the spool (a real tmpfs of a few
// hundred KB), a store whose lookups fail, and a store that fails after the 250 (the message waits in the spool
// and is delivered once the store works again).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebianPackages } from '../../support/debian.ts';
import { openSession } from '../../support/raw-smtp.ts';
import { startPostern } from '../../support/smtp-harness.ts';
import type { RunningPostern } from '../../support/smtp-harness.ts';
import { FileTestStore } from '../../support/smtp-test-store.ts';
import type { RecipientResolution } from '../../../src/server/store/api.ts';

ensureDebianPackages(['openssl']);

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

async function send(p: RunningPostern, body: string, id: string) {
  const c = await openSession(p.ports.mx);
  try {
    await c.command('MAIL FROM:<x@sender.example.net>');
    const rcpt = await c.command('RCPT TO:<bob@example.com>');
    if (rcpt.code !== 250) return rcpt;
    await c.command('DATA');
    c.write(`Message-ID: <${id}>\r\nSubject: s\r\n\r\n${body}\r\n.\r\n`);
    return (await c.read())!;
  } finally {
    c.close();
  }
}

test('a full spool disk answers 452 4.3.1 and accepts again once there is room', async () => {
  const mnt = await mkdtemp(join(tmpdir(), 'postern-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=300k', 'tmpfs', mnt]);
  cleanups.push(async () => { try { execFileSync('umount', [mnt]); } catch { /* not mounted */ } await rm(mnt, { recursive: true, force: true }); });
  const p = await startPostern({ spoolDir: join(mnt, 'queue') });
  cleanups.push(() => p.stop());
  // Fill the disk so the spool's writes fail with ENOSPC (dd itself stops at the full disk).
  spawnSync('dd', ['if=/dev/zero', `of=${join(mnt, 'filler')}`, 'bs=1k', 'count=400'], { stdio: 'ignore' });
  const r = await send(p, 'z'.repeat(60_000), 'full-1@x');
  assert.equal(r.code, 452, JSON.stringify(r));
  assert.match(r.text, /^4\.3\.1 /);
  execFileSync('rm', [join(mnt, 'filler')]);
  const ok = await send(p, 'fits now', 'full-2@x');
  assert.equal(ok.code, 250);
});

test('a failing recipient lookup answers 451 4.3.0', async () => {
  class BrokenLookups extends FileTestStore {
    override resolveRecipient(): RecipientResolution { throw new Error('database is locked'); }
  }
  const p = await startPostern({ store: (d, u, a) => new BrokenLookups(d, u, a) });
  cleanups.push(() => p.stop());
  const r = await send(p, 'x', 'lookup@x');
  assert.equal(r.code, 451);
  assert.match(r.text, /^4\.3\.0 /);
});

test('a store failing after the 250 keeps the message in the spool until it works again', async () => {
  const p = await startPostern({ extra: { sweepIntervalMs: 100 } });
  cleanups.push(() => p.stop());
  p.store.failWith = new Error('SQLITE_BUSY: database is locked');
  const r = await send(p, 'patience', 'later@x');
  assert.equal(r.code, 250);
  await new Promise((res) => setTimeout(res, 400));
  assert.equal(p.store.messages('bob@example.com').length, 0);
  assert.equal((await p.spool.recoverable()).length, 1, 'still in the spool, recipient pending');
  assert.ok(p.trace.find('later@x')[0]!.events.some((e) => e.kind === 'error' && /will retry/.test(e.detail)));
  p.store.failWith = null;
  for (let i = 0; i < 100 && p.store.messages('bob@example.com').length === 0; i++) await new Promise((res) => setTimeout(res, 50));
  assert.equal(p.store.messages('bob@example.com').length, 1);
  for (let i = 0; i < 100 && (await p.spool.recoverable()).length > 0; i++) await new Promise((res) => setTimeout(res, 50));
  assert.deepEqual(await p.spool.recoverable(), []);
});

test('DATA held in memory by all sessions is bounded: over the budget answers 452 4.3.1, and the budget comes back', async () => {
  const p = await startPostern({ extra: { memoryBudgetBytes: 100_000 } });
  cleanups.push(() => p.stop());
  const big = await send(p, ('b'.repeat(998) + '\r\n').repeat(150), 'budget-big@x');
  assert.equal(big.code, 452, JSON.stringify(big));
  assert.match(big.text, /^4\.3\.1 /);
  for (let i = 0; i < 3; i++) assert.equal((await send(p, ('s'.repeat(998) + '\r\n').repeat(60), `budget-${i}@x`)).code, 250, 'memory was given back');
});

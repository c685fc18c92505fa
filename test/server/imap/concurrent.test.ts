// Two clients on one mailbox: what one does (append, flag, move, expunge) reaches the other at once while it
// idles, and at the points the RFCs allow while it runs commands (no EXPUNGE in the middle of FETCH/STORE/
// SEARCH by sequence number).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { ImapFlow } from 'imapflow';
import { taggedLine } from './raw-client.ts';
import { USER, startImap, type ImapHarness } from './harness.ts';
import { clientPool } from './clients.ts';

let h: ImapHarness;
let actor: ImapFlow;
const { flow, raw, closeAll } = clientPool(() => h);

function msg(n: number): string {
  return `From: x${n}@example.org\r\nTo: ${USER}\r\nSubject: message ${n}\r\n\r\nbody ${n}\r\n`;
}

before(async () => {
  h = await startImap();
  actor = flow();
  await actor.connect();
  for (let i = 1; i <= 5; i++) await actor.append('INBOX', msg(i));
});

after(async () => {
  await closeAll();
  await h.stop();
});

test('an idling client sees appends, flag changes, moves and expunges at once', async () => {
  const watcher = await raw();
  await watcher.command('s', 'SELECT INBOX');
  watcher.write('i IDLE\r\n');
  await watcher.readUntil(/^\+ [^\r\n]*\r\n/m);

  await actor.append('INBOX', msg(6));
  assert.match(await watcher.readUntil(/^\* 6 EXISTS\r\n/m), /\* 6 EXISTS/);

  await actor.mailboxOpen('INBOX');
  await actor.messageFlagsAdd('2', ['\\Flagged', '$Todo']);
  const flags = await watcher.readUntil(/^\* 2 FETCH [^\r\n]*\r\n/m);
  assert.match(flags, /\* 2 FETCH \(UID 2 FLAGS \(\\Flagged \$Todo( \\Recent)?\)\)/);
  assert.match(flags, /\* FLAGS \([^)]*\$Todo[^)]*\)/, 'a new keyword is announced');

  await actor.messageMove('3', 'Archive');
  assert.match(await watcher.readUntil(/^\* 3 EXPUNGE\r\n/m), /\* 3 EXPUNGE/);

  await actor.messageDelete('1');
  assert.match(await watcher.readUntil(/^\* 1 EXPUNGE\r\n/m), /\* 1 EXPUNGE/);

  watcher.write('DONE\r\n');
  assert.match(await watcher.readUntil(/^i (OK|NO|BAD)[^\r\n]*\r\n/m), /^i OK/m);
  const seq = await watcher.command('f', 'FETCH 1:* (UID)');
  assert.deepEqual([...seq.matchAll(/\* (\d+) FETCH \(UID (\d+)\)/g)].map((m) => [Number(m[1]), Number(m[2])]), [[1, 2], [2, 4], [3, 5], [4, 6]]);
  await actor.mailboxClose();
});

test('without IDLE, expunges wait for a command that allows them and never shift numbers mid-FETCH', async () => {
  const reader = await raw();
  const sel = await reader.command('s', 'SELECT INBOX');
  assert.match(sel, /\* 4 EXISTS/);
  await actor.mailboxOpen('INBOX');
  await actor.messageDelete('1', { uid: false });
  // FETCH by sequence number: the expunge is held back, message 1 is still numbered 1 (and may be gone).
  const f = await reader.command('f', 'FETCH 1:4 (UID)');
  assert.doesNotMatch(f, /EXPUNGE/);
  assert.match(f, /\* 4 FETCH \(UID 6\)/);
  const s2 = await reader.command('x', 'SEARCH ALL');
  assert.doesNotMatch(s2, /EXPUNGE/);
  const n = await reader.command('n', 'NOOP');
  assert.match(n, /\* 1 EXPUNGE\r\n/);
  const after = await reader.command('g', 'FETCH 1:* (UID)');
  assert.deepEqual([...after.matchAll(/\* (\d+) FETCH \(UID (\d+)\)/g)].map((m) => [Number(m[1]), Number(m[2])]), [[1, 4], [2, 5], [3, 6]]);
  await actor.mailboxClose();
});

test('imapflow as the watcher: exists, flags and expunge events arrive while it idles', async () => {
  const w = flow();
  await w.connect();
  await w.mailboxOpen('INBOX');
  const exists = once(w, 'exists');
  const idling = w.idle();
  await new Promise((r) => setTimeout(r, 100));
  await actor.append('INBOX', msg(7));
  const [e] = await exists as [{ count: number; prevCount: number }];
  assert.deepEqual([e.prevCount, e.count], [3, 4]);
  const flags = once(w, 'flags');
  await actor.mailboxOpen('INBOX');
  await actor.messageFlagsAdd({ uid: '7' }, ['\\Seen']);
  const [f] = await flags as [{ uid: number; flags: Set<string> }];
  assert.equal(f.uid, 7);
  assert.ok(f.flags.has('\\Seen'));
  const expunge = once(w, 'expunge');
  await actor.messageMove({ uid: '4' }, 'Trash');
  const [x] = await expunge as [{ seq?: number; uid?: number }];
  assert.ok(x.seq === 1 || x.uid === 4);
  await w.noop();
  await idling;
  assert.equal((w.mailbox as { exists: number }).exists, 3);
  await actor.mailboxClose();
  await w.logout();
});

test('QRESYNC: a client that reselects learns what vanished and what changed since its modseq', async () => {
  const r = await raw();
  await r.command('e', 'ENABLE QRESYNC');
  const sel = await r.command('s', 'SELECT INBOX');
  const validity = /UIDVALIDITY (\d+)/.exec(sel)![1];
  const modseq = /HIGHESTMODSEQ (\d+)/.exec(sel)![1];
  await r.command('u', 'UNSELECT');
  await actor.mailboxOpen('INBOX');
  await actor.messageFlagsAdd({ uid: '5' }, ['\\Answered']);
  await actor.messageDelete({ uid: '6' });
  await actor.mailboxClose();
  const re = await r.command('q', `SELECT INBOX (QRESYNC (${validity} ${modseq}))`);
  assert.match(re, /\* VANISHED \(EARLIER\) 6\r\n/);
  assert.match(re, /\* \d+ FETCH \(UID 5 FLAGS \(\\Answered\) MODSEQ \(\d+\)\)/);
  assert.match(taggedLine(re, 'q'), /^q OK \[READ-WRITE\]/);
});

test('a mailbox deleted by another session ends the session that had it selected, with BYE', async () => {
  await actor.mailboxCreate('Doomed');
  const watcher = await raw();
  assert.match(taggedLine(await watcher.command('s', 'SELECT Doomed'), 's'), /^s OK/);
  watcher.write('i IDLE\r\n');
  await watcher.readUntil(/^\+ [^\r\n]*\r\n/m);
  await actor.mailboxDelete('Doomed');
  assert.match(await watcher.readUntil(/^\* BYE[^\r\n]*\r\n/m), /deleted/);
  await watcher.waitClosed();
});

// mbsync (Debian's isync) as the client: syncs a mailbox down into a local Maildir over STARTTLS, then flag
// changes and a deletion made locally go up, and a change made on the server comes down again.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureDebianPackages } from '../../support/debian.ts';
import { PASSWORD, USER, startImap, type ImapHarness } from './harness.ts';

ensureDebianPackages(['isync']);

let h: ImapHarness;
let local: string;
let config: string;

before(async () => {
  h = await startImap();
  local = join(h.dir, 'local');
  await mkdir(local);
  config = join(h.dir, 'mbsyncrc');
  await writeFile(config, [
    'IMAPAccount postern',
    'Host 127.0.0.1',
    `Port ${h.imapPort}`,
    `User ${USER}`,
    `Pass "${PASSWORD}"`,
    'SSLType STARTTLS',
    `CertificateFile ${h.certFile}`,
    'AuthMechs LOGIN',
    '',
    'IMAPStore remote',
    'Account postern',
    '',
    'MaildirStore local',
    `Path ${local}/`,
    `Inbox ${local}/INBOX`,
    'SubFolders Verbatim',
    '',
    'Channel sync',
    'Far :remote:',
    'Near :local:',
    'Patterns INBOX Archive',
    'Create Near',
    'Expunge Both',
    'Sync All',
    'SyncState *',
    '',
  ].join('\n'));
  const inbox = h.store.getMailbox(USER, 'INBOX')!;
  for (let i = 1; i <= 4; i++) {
    await h.store.append(inbox.id, Buffer.from(`From: s${i}@example.org\r\nSubject: mbsync ${i}\r\nMessage-ID: <mb${i}@example.org>\r\n\r\nbody ${i}\r\n`), { flags: i === 1 ? ['\\Seen'] : [] });
  }
});

after(async () => { await h.stop(); });

async function mbsync(): Promise<string> {
  const r = await promisify(execFile)('mbsync', ['-c', config, '-a'], { encoding: 'utf8', timeout: 60000 });
  return r.stdout + r.stderr;
}

async function localFiles(): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ['cur', 'new']) {
    for (const f of await readdir(join(local, 'INBOX', sub)).catch(() => [])) out.push(join(sub, f));
  }
  return out.sort();
}

test('sync down, change flags and delete locally, sync up, then server changes come down', async () => {
  await mbsync();
  const files = await localFiles();
  assert.equal(files.length, 4, files.join('\n'));
  const seen = files.filter((f) => /:2,[A-Z]*S/.test(f));
  assert.equal(seen.length, 1, 'the \\Seen flag came down');

  // Locally: flag message 2 and mark it seen; trash message 3 (mbsync expunges it on both sides).
  const byUid = (uid: number): string => files.find((f) => new RegExp(`,U=${uid}[:,]`).test(f))!;
  const f2 = byUid(2);
  const f3 = byUid(3);
  await rename(join(local, 'INBOX', f2), join(local, 'INBOX', 'cur', `${f2.split('/')[1]!.split(':2,')[0]}:2,FS`));
  await rename(join(local, 'INBOX', f3), join(local, 'INBOX', 'cur', `${f3.split('/')[1]!.split(':2,')[0]}:2,ST`));
  await mbsync();
  const inbox = h.store.getMailbox(USER, 'INBOX')!;
  const server = new Map(h.store.listMessages(inbox.id).map((m) => [m.uid, m.flags.sort()]));
  assert.deepEqual([...server.keys()], [1, 2, 4], 'message 3 was deleted and expunged on the server');
  assert.deepEqual(server.get(2), ['\\Flagged', '\\Seen']);

  // On the server: answer message 4; the flag comes down.
  h.store.storeFlags(inbox.id, [[4, 4]], { mode: 'add', flags: ['\\Answered'] });
  await mbsync();
  const after = await localFiles();
  assert.equal(after.length, 3);
  assert.ok(after.some((f) => /,U=4:2,R/.test(f)), after.join('\n'));
});

// Child process for the crash test: opens the store in argv[2] and appends messages as fast as it can, printing
// `<uid> <sha256> <flags>` after each append resolves — the moment an IMAP server would answer OK.
import { createHash } from 'node:crypto';
import pino from 'pino';
import { createStore } from '../../../src/server/store/create-store.ts';
import { TEST_HASH } from './fixture.ts';

const stateDir = process.argv[2]!;
const store = await createStore({
  stateDir, users: [{ address: 'alice@example.com', name: 'alice', passwordHash: TEST_HASH, quotaBytes: 0 }], aliases: [],
  limits: { maxMessageBytes: 1 << 20, maxRecipients: 10, maxConnectionsPerIp: 10, maxLineBytes: 1000 },
}, pino({ level: 'silent' }));
const inbox = store.getMailbox('alice@example.com', 'INBOX')!;
for (let i = 0; ; i++) {
  const body = `Subject: burst ${i}\r\nFrom: a@example.com\r\n\r\n${'payload '.repeat(50 + (i % 200))}${i}\r\n`;
  const flags = i % 2 ? ['\\Flagged', '$Burst'] : ['\\Seen'];
  // Several appends in flight at once, as several IMAP sessions would have.
  const batch = [0, 1, 2].map(async (k) => {
    const b = Buffer.from(body.replace('burst', `burst-${k}`));
    const r = await store.append(inbox.id, b, { flags });
    process.stdout.write(`${r.uid} ${createHash('sha256').update(b).digest('hex')} ${flags.join(',')}\n`);
  });
  await Promise.all(batch);
}

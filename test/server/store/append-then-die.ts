// Child process for the body-search recovery test: opens the store in argv[2], appends one message whose body
// holds argv[3], and is killed (SIGKILL, by itself) the moment the append resolves — before the queued body
// text reaches the FTS index.
import pino from 'pino';
import { createStore } from '../../../src/server/store/create-store.ts';
import { TEST_HASH, message } from './fixture.ts';

const [stateDir, word] = process.argv.slice(2) as [string, string];
const store = await createStore({
  stateDir, users: [{ address: 'alice@example.com', name: 'alice', passwordHash: TEST_HASH, quotaBytes: 0 }], aliases: [],
  limits: { maxMessageBytes: 1 << 20, maxRecipients: 10, maxConnectionsPerIp: 10, maxLineBytes: 1000 },
}, pino({ level: 'silent' }));
const inbox = store.getMailbox('alice@example.com', 'INBOX')!;
const r = await store.append(inbox.id, message('dies young', `a line about the ${word} and more\r\n`));
process.stdout.write(`${r.uid}\n`);
process.kill(process.pid, 'SIGKILL');

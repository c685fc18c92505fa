// Child process for the crash test: spools two whole messages, then starts a third and stalls in the middle of
// it, so the parent can SIGKILL it with a partial temp file on disk.
import { Readable } from 'node:stream';
import { FileSpool } from '../../../../src/server/queue/spool.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: spool-writer.ts DIR');
const spool = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
const envelope = {
  from: 'alice@example.com',
  to: ['bob@example.org'],
  client: { remoteAddress: '192.0.2.7', helo: 'client.example', tls: false, listener: 'mx' as const },
};
const body = (n: number) => Buffer.from(`From: alice@example.com\r\nSubject: ${n}\r\n\r\n${'x'.repeat(5000)}\r\nEND\r\n`);
for (let n = 1; n <= 2; n++) {
  const e = await spool.accept(envelope, Readable.from([body(n)]));
  process.stdout.write(`accepted ${e.id}\n`);
}
await spool.accept(envelope, (async function* () {
  yield Buffer.from('From: alice@example.com\r\nSubject: 3\r\n\r\n');
  yield Buffer.from('y'.repeat(5000));
  process.stdout.write('writing\n');
  await new Promise(() => setInterval(() => {}, 1000));
})());

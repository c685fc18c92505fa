// Postern's MX as the benchmark runs it: the real mailbox store (SQLite index + Maildir files, fsync), the queue's
// durable spool (fsync before 250), the trace, and the SMTP module with only port 25 on. argv: state dir, port.
// Prints `ready` when it accepts connections; SIGTERM drains and exits. POSTERN_DELIVERY_CONCURRENCY tunes the pipeline.
import { join } from 'node:path';
import pino from 'pino';
import { createStore } from '../../src/server/store/create-store.ts';
import { hashPassword } from '../../src/server/store/password.ts';
import { FileSpool } from '../../src/server/queue/spool.ts';
import { openTrace } from '../../src/server/trace/sqlite-trace.ts';
import { createSmtpModule } from '../../src/server/smtp/service.ts';
import { emptyResolver, makeCert, quietLog, staticTls } from '../../test/support/smtp-harness.ts';

const [dir, portArg] = process.argv.slice(2);
if (!dir || !portArg) throw new Error('usage: postern-mx.ts STATE_DIR PORT');
const limits = { maxMessageBytes: 10 * 1024 * 1024, maxRecipients: 100, maxConnectionsPerIp: 200, maxLineBytes: 65536 };
const users = [{ address: 'bob@example.com', name: 'Bob', passwordHash: hashPassword('bench-password'), quotaBytes: 0 }];
const store = await createStore({ stateDir: dir, users, aliases: [], limits }, pino({ level: 'silent' }));
const spool = await FileSpool.open({ dir: join(dir, 'queue'), maxMessageBytes: limits.maxMessageBytes + 256 * 1024 });
const trace = openTrace(dir);
const cert = await makeCert(dir);
const smtp = createSmtpModule({
  config: { domain: 'example.com', hostname: 'mail.example.com', listenAddress: '127.0.0.1', users, aliases: [], limits, dmarc: { policy: 'none', inboundRejectAction: 'reject' } },
  ports: { mx: Number(portArg), submission: null, submissions: null },
  tls: staticTls(cert), store, spool, trace, log: quietLog, dkimKeys: [],
  // SPF/DKIM/DMARC still run in full; the resolver answers NXDOMAIN at once, so DNS latency is not measured.
  resolver: emptyResolver, reverseDns: false,
  ...(process.env.POSTERN_DELIVERY_CONCURRENCY ? { deliveryConcurrency: Number(process.env.POSTERN_DELIVERY_CONCURRENCY) } : {}),
});
await smtp.service.start();
process.stdout.write('ready\n');
process.on('SIGTERM', () => { void smtp.service.stop(Date.now() + 2000).then(() => { trace.close(); process.exit(0); }); });

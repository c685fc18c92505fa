// Child process for the crash test: runs the outbound queue on a state folder (spooled beforehand by the test)
// against the test's Knot DNS, until the parent kills it with SIGKILL.
import { Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { createQueue } from '../../../../src/server/queue/service.ts';
import { createStore } from '../../../../src/server/store/create-store.ts';
import { openTrace } from '../../../../src/server/trace/sqlite-trace.ts';

const [stateDir, dnsPort, caFile] = process.argv.slice(2);
if (!stateDir || !dnsPort || !caFile) throw new Error('usage: queue-runner.ts STATE_DIR DNS_PORT CA_FILE');
const limits = { maxMessageBytes: 10 * 1024 * 1024, maxRecipients: 100, maxConnectionsPerIp: 20, maxLineBytes: 65536 };
const resolver = new Resolver({ timeout: 2000, tries: 1 });
resolver.setServers([`127.0.0.1:${dnsPort}`]);
const store = await createStore({ stateDir, users: [], aliases: [], limits }, pino({ level: 'silent' }));
const q = createQueue({
  config: { hostname: 'mail.home.test', relay: undefined, limits },
  stateDir, store, trace: openTrace(stateDir), warn: (m) => process.stderr.write(`${m}\n`), resolver,
  stsPolicy: async () => ({ mode: 'none', mx: [] }),
  tuning: { retryScheduleMs: [300], client: { ca: readFileSync(caFile) } },
});
await q.service.start();
process.stdout.write('started\n');

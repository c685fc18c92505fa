// Child process for the MTA-STS test: mailauth's HTTPS fetch trusts only the system CAs plus
// NODE_EXTRA_CA_CERTS, which Node reads at start, so the policy source runs in a process started with it.
import { Resolver } from 'node:dns/promises';
import { mailauthPolicySource } from '../../../../src/server/queue/mta-sts.ts';

const [port, ...domains] = process.argv.slice(2);
const resolver = new Resolver({ timeout: 2000, tries: 1 });
resolver.setServers([`127.0.0.1:${port}`]);
const source = mailauthPolicySource(resolver);
const out: Record<string, unknown> = {};
for (const d of domains) out[d] = await source(d);
process.stdout.write(JSON.stringify(out));

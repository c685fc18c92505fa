// `postern doctor`: checks what makes mail arrive and leave (DNS, reverse DNS, TLS, ports, blocklists, the host)
// and prints one line per check with the exact fix. From a laptop with --stack, on the host with --local.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { rootCertificates } from 'node:tls';
import { loadStack, CliError } from './dns-facts.ts';
import { serverAddress } from './dns-live.ts';
import { loadServerConfigFile } from '../server/main.ts';
import { dkimSelectors, type DkimAlgorithm } from '../plan/dkim.ts';
import type { StackConfig } from '../plan/stack-config.ts';
import type { ServerConfig } from '../plan/server-config.ts';
import { dnsResolver, type DiagnosticResolver } from '../server/diagnostics/resolver.ts';
import { httpsFetcher } from '../server/diagnostics/https-fetch.ts';
import { targetFromServerConfig, targetFromStack, type DiagnosticTarget } from '../server/diagnostics/target.ts';
import { ALL_GROUPS, runDiagnostics, type CheckGroup } from '../server/diagnostics/run.ts';
import { DEFAULT_DNSBLS, type DnsblList } from '../server/diagnostics/dnsbl-lists.ts';
import { DEFAULT_OUTBOUND_TARGETS } from '../server/diagnostics/ports.ts';
import { spoolQueueStats } from '../server/diagnostics/queue-stats.ts';
import { formatResults } from '../server/diagnostics/format.ts';
import { fail, type CheckResult } from '../server/diagnostics/check.ts';

export const DEFAULT_SERVER_CONFIG = '/etc/postern/server.yaml';
const MAX_PEM_BYTES = 256 * 1024;

const PORT_LABELS: Record<keyof ServerConfig['ports'], string> = {
  smtp: 'SMTP MX', submission: 'submission', submissions: 'submissions', imap: 'IMAP', imaps: 'IMAPS',
  pop3: 'POP3', pop3s: 'POP3S', https: 'HTTPS', http: 'HTTP',
};

interface DoctorOptions {
  stack?: string;
  stacksDir: string;
  local?: boolean;
  config: string;
  server?: string;
  dnsblServer?: string;
  dnsbl: string[];
  dnsblDomain: string[];
  ipv4?: string;
  ipv6?: string;
  dkimFile: string[];
  connect?: string;
  portMap?: string;
  ca?: string;
  only?: string;
  timeout: string;
  json?: boolean;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function readPem(what: string, file: string): string {
  const buf = readFileSync(file);
  if (buf.length > MAX_PEM_BYTES) throw new CliError(`${what}: ${file} is larger than ${MAX_PEM_BYTES} bytes`);
  return buf.toString('utf8');
}

function parsePortMap(spec: string | undefined): ((p: number) => number) | undefined {
  if (!spec) return undefined;
  const map = new Map<number, number>();
  for (const pair of spec.split(',')) {
    const m = /^(\d{1,5})=(\d{1,5})$/.exec(pair.trim());
    const from = Number(m?.[1]);
    const to = Number(m?.[2]);
    if (!m || from < 1 || from > 65535 || to < 1 || to > 65535) throw new CliError(`--port-map: expected port=port[,port=port…], like 25=2525,443=8443; got ${JSON.stringify(pair)}`);
    map.set(from, to);
  }
  return (p) => map.get(p) ?? p;
}

function parseGroups(spec: string | undefined, local: boolean): CheckGroup[] {
  // From a laptop, outbound 25 would test the laptop's network and "host" needs the machine itself.
  if (!spec) return local ? [...ALL_GROUPS] : ALL_GROUPS.filter((g) => g !== 'outbound' && g !== 'host');
  const groups = spec.split(',').map((s) => s.trim());
  for (const g of groups) if (!(ALL_GROUPS as readonly string[]).includes(g)) throw new CliError(`--only: unknown check group ${JSON.stringify(g)} (one of ${ALL_GROUPS.join(', ')})`);
  return groups as CheckGroup[];
}

/** The lists to query: the defaults, or the zones given (known ones keep their return-code meanings). */
function blocklists(ipZones: string[], domainZones: string[]): DnsblList[] {
  if (ipZones.length === 0 && domainZones.length === 0) return [...DEFAULT_DNSBLS];
  const one = (z: string, kind: DnsblList['kind'], flag: string): DnsblList => {
    const zone = z.toLowerCase().replace(/\.$/, '');
    if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(zone)) throw new CliError(`${flag}: ${JSON.stringify(z)} is not a DNS zone`);
    return DEFAULT_DNSBLS.find((l) => l.zone === zone) ?? {
      zone, name: zone, kind, ipv6: true, codes: {}, refusals: {}, delistUrl: `the website of the ${zone} operator`,
    };
  };
  return [...ipZones.map((z) => one(z, 'ip', '--dnsbl')), ...domainZones.map((z) => one(z, 'domain', '--dnsbl-domain'))];
}

/** Public keys of the DKIM keys the server signs with (on the host, from the private key files). */
function dkimFromServerConfig(config: ServerConfig): { selector: string; algorithm: DkimAlgorithm; publicKey: string }[] {
  return config.dkim.map((d) => ({
    selector: d.selector, algorithm: d.algorithm,
    publicKey: createPublicKey(readPem(`DKIM key ${d.selector}`, d.privateKeyFile)).export({ type: 'spki', format: 'pem' }).toString(),
  }));
}

function dkimFromFiles(stack: StackConfig, specs: string[]): { selector: string; algorithm: DkimAlgorithm; publicKey: string }[] {
  const selectors = dkimSelectors(stack);
  return specs.map((spec) => {
    const eq = spec.indexOf('=');
    const sel = selectors.find((s) => s.selector === spec.slice(0, eq));
    if (eq <= 0 || !sel) throw new CliError(`--dkim-file: expected <selector>=<key file> with selector one of ${selectors.map((s) => s.selector).join(', ')}; got ${JSON.stringify(spec)}`);
    return { selector: sel.selector, algorithm: sel.algorithm, publicKey: createPublicKey(readPem('--dkim-file', spec.slice(eq + 1))).export({ type: 'spki', format: 'pem' }).toString() };
  });
}

async function address(resolver: DiagnosticResolver, given: string | undefined, hostname: string, family: 4 | 6): Promise<string | undefined> {
  if (given !== undefined) return given;
  return (family === 4 ? await resolver.a(hostname) : await resolver.aaaa(hostname))[0];
}

export async function runDoctor(opts: DoctorOptions): Promise<{ results: CheckResult[]; exitCode: number }> {
  if (!opts.stack && !opts.local) throw new CliError('pass --stack <name> (from your laptop) or --local (on the mail host)');
  const timeoutMs = Number(opts.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 120_000) throw new CliError(`--timeout: expected milliseconds from 100 to 120000, got ${JSON.stringify(opts.timeout)}`);
  const groups = parseGroups(opts.only, !!opts.local);
  const portFor = parsePortMap(opts.portMap);
  if (opts.ipv4 !== undefined && !isIPv4(opts.ipv4)) throw new CliError(`--ipv4: ${JSON.stringify(opts.ipv4)} is not an IPv4 address`);
  if (opts.ipv6 !== undefined && !isIPv6(opts.ipv6)) throw new CliError(`--ipv6: ${JSON.stringify(opts.ipv6)} is not an IPv6 address`);
  const servers = opts.server ? [await serverAddress(opts.server)] : undefined;
  const resolver = dnsResolver({ ...(servers ? { servers } : {}), timeoutMs: Math.min(timeoutMs, 5000) });
  const dnsblResolver = opts.dnsblServer ? dnsResolver({ servers: [await serverAddress(opts.dnsblServer)], timeoutMs: Math.min(timeoutMs, 5000) }) : resolver;
  const stack = opts.stack ? loadStack(opts.stacksDir, opts.stack) : undefined;
  let config: ServerConfig | undefined;
  if (opts.local) {
    const loaded = loadServerConfigFile(opts.config);
    if (!loaded.ok) throw new CliError(`invalid server config ${opts.config}:\n${loaded.errors.map((e) => `  ${e}`).join('\n')}`);
    config = loaded.value;
  }
  const hostname = stack?.hostname ?? config!.hostname;
  const ipv4 = await address(resolver, opts.ipv4, hostname, 4);
  if (!ipv4) {
    const r = fail('dns.host', `${hostname} has no A record, so nothing else can be checked`, stack ? 'publish the planned records with `pulumi up` (see `postern dns diff`), or pass --ipv4' : 'pass --ipv4 <the host\'s public address>');
    return { results: [r], exitCode: 1 };
  }
  const wantsV6 = stack ? stack.ipv6 : true;
  const ipv6 = wantsV6 ? await address(resolver, opts.ipv6, hostname, 6) : undefined;
  const facts = { ipv4, ...(ipv6 ? { ipv6 } : {}) };
  const target: DiagnosticTarget = stack
    ? targetFromStack(stack, { ...facts, dkimPublicKeys: config ? dkimFromServerConfig(config) : dkimFromFiles(stack, opts.dkimFile) })
    : targetFromServerConfig(config!, { ...facts, dkimPublicKeys: dkimFromServerConfig(config!) });

  const connectHost = opts.connect ?? (opts.local ? '127.0.0.1' : ipv4);
  // An extra root is added to the public ones, not substituted for them.
  const ca = opts.ca ? [...rootCertificates, readPem('--ca', opts.ca)].join('\n') : undefined;
  const fetchText = async (url: string) => {
    const host = new URL(url).hostname;
    const dial = opts.connect ?? (await resolver.a(host))[0];
    if (!dial) throw new Error(`${host} has no A record`);
    return httpsFetcher({ ...(ca ? { ca } : {}), timeoutMs, connectTo: { host: dial, port: portFor ? portFor(443) : 443 } })(url);
  };
  const results = await runDiagnostics(target, {
    groups, resolver, dnsblResolver, fetchText, connectHost, ...(portFor ? { portFor } : {}), ...(ca ? { ca } : {}),
    dnsbls: blocklists(opts.dnsbl, opts.dnsblDomain), outboundTargets: DEFAULT_OUTBOUND_TARGETS, now: new Date(), timeoutMs,
    ...(config ? {
      host: {
        listening: (Object.entries(config.ports) as [keyof ServerConfig['ports'], number][])
          .filter(([, port]) => port !== 0).map(([name, port]) => ({ port, label: PORT_LABELS[name] })),
        listenHost: config.listenAddress === '0.0.0.0' || config.listenAddress === '::' ? '127.0.0.1' : config.listenAddress,
        stateDir: config.stateDir, certFile: config.tls.certFile, queueStats: spoolQueueStats(config.stateDir),
        acmeRenewal: { enabled: config.acme?.enabled ?? false },
      },
    } : {}),
  });
  return { results, exitCode: results.some((r) => r.status === 'fail') ? 1 : 0 };
}

export function register(program: Command): void {
  program.command('doctor')
    .description('check DNS, reverse DNS, TLS, ports and blocklists (and the host itself with --local); one line per check with the fix')
    .option('--stack <name>', 'stack to check: reads <stacks-dir>/Pulumi.<name>.yaml')
    .option('--stacks-dir <dir>', 'folder of the stack files', 'stacks')
    .option('--local', 'run on the mail host: also checks listeners, queue, disk, memory, the certificate file and outbound port 25')
    .option('--config <file>', 'server config on the host (with --local)', DEFAULT_SERVER_CONFIG)
    .option('--server <host:port>', 'DNS resolver to ask (default: the system resolver)')
    .option('--dnsbl-server <host:port>', 'resolver for blocklist lookups (default: --server); many blocklists refuse public resolvers')
    .option('--dnsbl <zone>', `IP blocklist zone to check, repeatable (default: ${DEFAULT_DNSBLS.filter((l) => l.kind === 'ip').map((l) => l.zone).join(', ')})`, collect, [])
    .option('--dnsbl-domain <zone>', `domain blocklist zone to check, repeatable (default: ${DEFAULT_DNSBLS.filter((l) => l.kind === 'domain').map((l) => l.zone).join(', ')})`, collect, [])
    .option('--ipv4 <address>', 'the host\'s IPv4 address (default: the A record of the host name)')
    .option('--ipv6 <address>', 'the host\'s IPv6 address (default: its AAAA record)')
    .option('--dkim-file <selector=file>', 'a DKIM key (public or private PEM) to compare the published record with, repeatable', collect, [])
    .option('--connect <host>', 'address to connect to for TLS, port and MTA-STS checks (default: the host\'s IPv4; 127.0.0.1 with --local)')
    .option('--port-map <from=to,...>', 'dial other ports than the standard ones, e.g. for a development server: 25=2525,443=8443')
    .option('--ca <file>', 'also trust this root certificate (PEM) in TLS checks')
    .option('--only <groups>', `comma-separated check groups: ${ALL_GROUPS.join(',')}`)
    .option('--timeout <ms>', 'per connection and lookup', '8000')
    .option('--json', 'machine-readable output')
    .action(async (opts: DoctorOptions) => {
      let outcome;
      try {
        outcome = await runDoctor(opts);
      } catch (err) {
        if (!(err instanceof CliError)) throw err;
        process.stderr.write(`postern doctor: ${err.message}\n`);
        process.exitCode = 2;
        return;
      }
      process.stdout.write(opts.json ? `${JSON.stringify({ ok: outcome.exitCode === 0, results: outcome.results }, null, 2)}\n` : `${formatResults(outcome.results)}\n`);
      process.exitCode = outcome.exitCode;
    });
}

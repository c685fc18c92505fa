// Runs the selected groups of checks against a target, each group guarded so one broken probe cannot hide the
// others' results. Every dependency (resolvers, HTTPS fetcher, addresses, ports, trusted roots, clock) is passed in.
import { guarded, type CheckResult } from './check.ts';
import type { DiagnosticResolver } from './resolver.ts';
import type { TextFetcher } from './https-fetch.ts';
import type { DiagnosticTarget } from './target.ts';
import type { DnsblList } from './dnsbl-lists.ts';
import { checkDnsRecords } from './dns-records.ts';
import { checkSpf } from './spf.ts';
import { checkDkim } from './dkim.ts';
import { checkDmarc } from './dmarc.ts';
import { checkMtaSts } from './mta-sts.ts';
import { checkPtr } from './ptr.ts';
import { checkTls, MAIL_TLS_SERVICES, type TlsService } from './tls.ts';
import { checkInboundPorts, checkOutbound25, MAIL_PORTS, type OutboundTarget, type PortTarget } from './ports.ts';
import { checkDnsbls } from './dnsbl.ts';
import { checkHost, type HostCheckInput } from './host.ts';

export type CheckGroup = 'dns' | 'ptr' | 'tls' | 'ports' | 'outbound' | 'dnsbl' | 'host';
export const ALL_GROUPS: readonly CheckGroup[] = ['dns', 'ptr', 'tls', 'ports', 'outbound', 'dnsbl', 'host'];

export interface RunOptions {
  groups: readonly CheckGroup[];
  resolver: DiagnosticResolver;
  /** Resolver for blocklist lookups (a local unbound on the host); `resolver` when omitted. */
  dnsblResolver?: DiagnosticResolver;
  fetchText: TextFetcher;
  /** Where to connect for TLS and port checks; the target's IPv4 when omitted. */
  connectHost?: string;
  /** Maps a service port to the port actually dialled (tests). */
  portFor?: (port: number) => number;
  tlsServices?: readonly TlsService[];
  ports?: readonly PortTarget[];
  ca?: string | Buffer;
  dnsbls: readonly DnsblList[];
  outboundTargets: readonly OutboundTarget[];
  host?: Omit<HostCheckInput, 'now' | 'hostname'>;
  now: Date;
  timeoutMs?: number;
}

export async function runDiagnostics(t: DiagnosticTarget, o: RunOptions): Promise<CheckResult[]> {
  const want = new Set(o.groups);
  const addresses = [t.ipv4, ...(t.ipv6 ? [t.ipv6] : [])];
  const connectHost = o.connectHost ?? t.ipv4;
  const portFor = o.portFor ? { portFor: o.portFor } : {};
  const jobs: Promise<CheckResult[]>[] = [];
  if (want.has('dns')) {
    const plan = t.dnsPlan;
    if (plan) jobs.push(guarded('dns.records', () => checkDnsRecords(o.resolver, plan)));
    // Without the stack's plan the exact SPF (a relay's include) is unknown: check syntax and lookups only.
    jobs.push(guarded('dns.spf', async () => [await checkSpf(o.resolver, t.domain, plan ? t.spf : undefined)]));
    jobs.push(guarded('dns.dkim', () => checkDkim(o.resolver, t.domain, t.dkim)));
    jobs.push(guarded('dns.dmarc', async () => [await checkDmarc(o.resolver, t.domain, t.dmarc)]));
    jobs.push(guarded('dns.mta-sts', () => checkMtaSts(o.resolver, o.fetchText, t.domain, t.hostname, t.mtaSts)));
  }
  if (want.has('ptr')) jobs.push(guarded('ptr', () => checkPtr(o.resolver, t.hostname, addresses)));
  if (want.has('tls')) {
    jobs.push(guarded('tls', () => checkTls({ host: connectHost, hostname: t.hostname, services: o.tlsServices ?? MAIL_TLS_SERVICES,
      now: o.now, ...portFor, ...(o.ca ? { ca: o.ca } : {}), ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}) })));
  }
  if (want.has('ports')) jobs.push(guarded('port', () => checkInboundPorts(connectHost, o.ports ?? MAIL_PORTS, { ...portFor, ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}) })));
  if (want.has('outbound')) jobs.push(guarded('port.outbound-25', async () => [await checkOutbound25(o.outboundTargets, t.relayConfigured, o.timeoutMs)]));
  if (want.has('dnsbl')) jobs.push(guarded('dnsbl', () => checkDnsbls(o.dnsblResolver ?? o.resolver, { addresses, domain: t.domain, lists: o.dnsbls })));
  if (want.has('host') && o.host) jobs.push(guarded('server', () => checkHost({ ...o.host!, hostname: t.hostname, now: o.now })));
  return (await Promise.all(jobs)).flat();
}

// The monitoring service main.ts runs: every 6 hours, the host's addresses (its host name's A/AAAA records)
// against the default blocklists, the served certificate file and the renewal job's record, through the system resolver (the local
// unbound cloud-init installs, since public resolvers are refused by Spamhaus). Off in development mode and
// when the MX listener is off.
import type { ServiceFactory } from '../context.ts';
import type { ServerConfig } from '../../plan/server-config.ts';
import { dnsResolver, type DiagnosticResolver } from './resolver.ts';
import { checkDnsbls } from './dnsbl.ts';
import { DEFAULT_DNSBLS, type DnsblList } from './dnsbl-lists.ts';
import { checkCertificateFile } from './host.ts';
import { checkAcmeRenewal } from './acme-renewal.ts';
import { Monitor } from './monitor.ts';
import { warn, type CheckResult } from './check.ts';

export const MONITOR_INTERVAL_MS = 6 * 3_600_000;

export async function monitorChecks(config: Pick<ServerConfig, 'domain' | 'hostname' | 'tls'>, resolver: DiagnosticResolver,
  lists: readonly DnsblList[], now: Date, renewal?: { stateDir: string }): Promise<CheckResult[]> {
  const results: CheckResult[] = [await checkCertificateFile(config.tls.certFile, config.hostname, now)];
  // The renewal job's record: a renewal failing close to expiry reaches the postmaster before clients notice.
  if (renewal) results.push(await checkAcmeRenewal({ enabled: true, stateDir: renewal.stateDir, now }));
  let addresses: string[] = [];
  try {
    addresses = [...(await resolver.a(config.hostname)).slice(0, 1), ...(await resolver.aaaa(config.hostname)).slice(0, 1)];
  } catch (err) {
    results.push(warn('monitor.addresses', `cannot resolve ${config.hostname}: ${(err as Error).message}; blocklists not checked`, 'check the local resolver: `systemctl status unbound`'));
    return results;
  }
  if (addresses.length === 0) {
    results.push(warn('monitor.addresses', `${config.hostname} has no A or AAAA record; blocklists not checked`, 'publish the planned records (`pulumi up`)'));
  }
  results.push(...await checkDnsbls(resolver, { addresses, domain: config.domain, lists }));
  return results;
}

export const monitorService: ServiceFactory = (ctx) => {
  // Blocklists matter to a host that exchanges mail: without the MX listener (or in development) there is nothing to watch.
  if (ctx.config.dev || ctx.listenPort('smtp') === null) return null;
  const resolver = dnsResolver();
  const log = ctx.logger.child({ service: 'monitor' });
  const monitor = new Monitor({
    run: () => monitorChecks(ctx.config, resolver, DEFAULT_DNSBLS, new Date(), ctx.config.acme?.enabled ? { stateDir: ctx.stateDir } : undefined),
    store: ctx.store,
    postmaster: `postmaster@${ctx.config.domain}`,
    hostname: ctx.config.hostname,
    stateDir: ctx.stateDir,
    intervalMs: MONITOR_INTERVAL_MS,
    log: (level, message, fields) => log[level](fields ?? {}, message),
  });
  return monitor.asService();
};

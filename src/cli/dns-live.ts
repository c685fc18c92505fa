// Reads what live DNS holds for the names and types of a plan, asking one server directly (the domain's
// authoritative server, or --server), so answers are not stale cache entries.
import { promises as dnsPromises } from 'node:dns';
import { isIP } from 'node:net';
import type { ObservedRecord } from '../plan/dns-records.ts';
import type { OwnedRRset } from '../plan/dns-plan.ts';
import { canonicalIPv6 } from '../plan/names.ts';
import { CliError } from './dns-facts.ts';

const NO_DATA = new Set(['ENODATA', 'ENOTFOUND']);
const MAX_ANSWERS = 100;

const name = (n: string): string => (n === '' || n === '.' ? '.' : n.replace(/\.$/, '').toLowerCase());

/** Parses `host:port`, `host` (port 53), `[v6]:port`; a host name is looked up once. */
export async function serverAddress(spec: string): Promise<string> {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec) ?? /^([^:]+)(?::(\d+))?$/.exec(spec) ?? (isIP(spec) === 6 ? [spec, spec, undefined] : null);
  if (!m) throw new CliError(`--server: expected host:port, got ${JSON.stringify(spec)}`);
  const port = m[2] === undefined ? 53 : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CliError(`--server: port ${JSON.stringify(m[2])} is not 1-65535`);
  let host = m[1]!;
  if (isIP(host) === 0) {
    try { host = (await dnsPromises.lookup(host)).address; } catch { throw new CliError(`--server: cannot resolve ${JSON.stringify(m[1])}`); }
  }
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The first authoritative server of `domain` reachable by address, found through the system resolver. */
export async function authoritativeServer(domain: string): Promise<string> {
  let ns: string[];
  try { ns = await dnsPromises.resolveNs(domain); } catch (e) {
    throw new CliError(`cannot find the name servers of ${domain} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); pass --server host:port`);
  }
  for (const n of ns) {
    try { return `${(await dnsPromises.lookup(n, { family: 4 })).address}:53`; } catch { /* try the next one */ }
  }
  throw new CliError(`no name server of ${domain} has an IPv4 address; pass --server host:port`);
}

async function query<T>(what: string, run: () => Promise<T[]>): Promise<T[]> {
  try {
    return (await run()).slice(0, MAX_ANSWERS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (NO_DATA.has(code)) return [];
    throw new CliError(`DNS query ${what} failed: ${code || (e as Error).message}`);
  }
}

export async function observe(server: string, rrsets: readonly Pick<OwnedRRset, 'name' | 'type'>[]): Promise<ObservedRecord[]> {
  const r = new dnsPromises.Resolver({ timeout: 3000, tries: 2 });
  r.setServers([server]);
  const out: ObservedRecord[] = [];
  const seen = new Set<string>();
  for (const { name: n, type } of rrsets) {
    if (seen.has(`${n} ${type}`)) continue;
    seen.add(`${n} ${type}`);
    const what = `${type} ${n} at ${server}`;
    switch (type) {
      case 'A': for (const a of await query(what, () => r.resolve4(n, { ttl: true }))) out.push({ name: n, type, ttl: a.ttl, value: a.address }); break;
      case 'AAAA': for (const a of await query(what, () => r.resolve6(n, { ttl: true }))) out.push({ name: n, type, ttl: a.ttl, value: canonicalIPv6(a.address) }); break;
      case 'CNAME': for (const c of await query(what, () => r.resolveCname(n))) out.push({ name: n, type, value: name(c) }); break;
      case 'MX': for (const m of await query(what, () => r.resolveMx(n))) out.push({ name: n, type, priority: m.priority, value: name(m.exchange) }); break;
      case 'TXT': for (const t of await query(what, () => r.resolveTxt(n))) out.push({ name: n, type, value: t.join('') }); break;
      case 'SRV': for (const s of await query(what, () => r.resolveSrv(n))) out.push({ name: n, type, priority: s.priority, weight: s.weight, port: s.port, target: name(s.name) }); break;
      case 'CAA':
        for (const c of await query(what, () => r.resolveCaa(n))) {
          const tag = c.issue !== undefined ? 'issue' : c.issuewild !== undefined ? 'issuewild' : c.iodef !== undefined ? 'iodef' : undefined;
          if (tag) out.push({ name: n, type, flags: c.critical, tag, value: (c[tag] ?? '') });
        }
        break;
    }
  }
  return out;
}

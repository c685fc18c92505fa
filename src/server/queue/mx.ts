// Where mail for a domain goes (RFC 5321 section 5): MX records by preference (equal preferences shuffled), or the
// domain's own A/AAAA when it has no MX (implicit MX); a null MX (RFC 7505) means the domain takes no mail.
import type { promises as dnsPromises } from 'node:dns';
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

/** The DNS lookups the queue needs; node:dns's promises Resolver (with settable servers) fits. */
export type QueueResolver = Pick<dnsPromises.Resolver, 'resolveMx' | 'resolve4' | 'resolve6' | 'resolveTxt' | 'resolve'>;

export interface MxHost {
  /** Host name from the MX record (or the domain itself for an implicit MX), lower case, no trailing dot. */
  name: string;
  /** IPv4 and IPv6 addresses, IPv6 first when present. */
  addresses: string[];
}

export type MxRoute =
  | { kind: 'hosts'; hosts: MxHost[]; implicit: boolean }
  /** Permanent: the domain says it takes no mail, or does not exist. */
  | { kind: 'permanent'; reason: string }
  /** DNS trouble: try again later. */
  | { kind: 'temporary'; reason: string };

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62})?)*$/;
const MAX_MX_HOSTS = 10;

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function isNoData(err: unknown): boolean {
  return code(err) === 'ENODATA' || code(err) === 'ENOTFOUND';
}

async function addressesOf(resolver: QueueResolver, name: string): Promise<{ addresses: string[]; error?: string }> {
  const [v6, v4] = await Promise.allSettled([resolver.resolve6(name), resolver.resolve4(name)]);
  const addresses: string[] = [];
  const errors: string[] = [];
  for (const r of [v6, v4]) {
    if (r.status === 'fulfilled') addresses.push(...r.value.filter((a) => isIP(a) !== 0));
    else if (!isNoData(r.reason)) errors.push(`${code(r.reason) ?? (r.reason as Error).message}`);
  }
  return errors.length && !addresses.length ? { addresses, error: errors.join(', ') } : { addresses };
}

function shuffleEqualPreferences<T extends { priority: number }>(records: T[], random: () => number): T[] {
  const withKey = records.map((r) => ({ r, k: random() }));
  withKey.sort((a, b) => a.r.priority - b.r.priority || a.k - b.k);
  return withKey.map((x) => x.r);
}

export async function resolveMxRoute(resolver: QueueResolver, domain: string, random: () => number = Math.random): Promise<MxRoute> {
  // IDN domains (SMTPUTF8 mail) are looked up by their A-label.
  const name = domainToASCII(domain.toLowerCase().replace(/\.$/, ''));
  if (!HOST_NAME.test(name)) return { kind: 'permanent', reason: `${JSON.stringify(domain.slice(0, 80))} is not a domain name we can deliver to` };
  let mx: { exchange: string; priority: number }[];
  try {
    mx = await resolver.resolveMx(name);
  } catch (err) {
    if (code(err) === 'ENOTFOUND') return { kind: 'permanent', reason: `domain ${name} does not exist (NXDOMAIN)` };
    if (code(err) !== 'ENODATA') return { kind: 'temporary', reason: `MX lookup for ${name} failed: ${code(err) ?? (err as Error).message}` };
    mx = [];
  }
  if (mx.length === 0) {
    const { addresses, error } = await addressesOf(resolver, name);
    if (error) return { kind: 'temporary', reason: `address lookup for ${name} failed: ${error}` };
    if (!addresses.length) return { kind: 'permanent', reason: `${name} has no MX and no address records` };
    return { kind: 'hosts', hosts: [{ name, addresses }], implicit: true };
  }
  if (mx.some((r) => r.exchange === '' || r.exchange === '.')) {
    return { kind: 'permanent', reason: `${name} publishes a null MX: it accepts no mail (RFC 7505)` };
  }
  const hosts: MxHost[] = [];
  const errors: string[] = [];
  for (const record of shuffleEqualPreferences(mx, random).slice(0, MAX_MX_HOSTS)) {
    const host = record.exchange.toLowerCase().replace(/\.$/, '');
    if (!HOST_NAME.test(host)) { errors.push(`bad MX host name ${JSON.stringify(host.slice(0, 80))}`); continue; }
    const { addresses, error } = await addressesOf(resolver, host);
    if (error) errors.push(`${host}: ${error}`);
    if (addresses.length) hosts.push({ name: host, addresses });
  }
  if (!hosts.length) return { kind: 'temporary', reason: `no usable address for any MX of ${name}${errors.length ? ` (${errors.join('; ')})` : ''}` };
  return { kind: 'hosts', hosts, implicit: false };
}

// What the ACME provider needs from a DNS host for DNS-01: publish a TXT value, remove it again, and a check
// that the zone's authoritative name servers really serve it before the CA is asked to look.
import type { Resolver } from 'node:dns/promises';

export interface DnsChallengeApi {
  /** Publishes one TXT value at `fqdn` (no trailing dot), next to any other values already there. */
  setTxt(fqdn: string, value: string): Promise<void>;
  /** Removes the TXT value published by setTxt; a value that is already gone is not an error. */
  clearTxt(fqdn: string, value: string): Promise<void>;
}

/** Settings a DnsChallengeApi factory interprets (e.g. Cloudflare's zoneId and apiToken); secret in state. */
export type DnsApiSettings = Record<string, string>;

export type DnsChallengeApiFactory = (settings: DnsApiSettings) => Promise<DnsChallengeApi>;

export interface PropagationSettings {
  /** The zone whose NS records name the servers to ask (e.g. `example.com`). */
  zoneName: string;
  /** Ask these servers (`ip` or `ip:port`) instead of looking up the zone's NS records. */
  nameServers?: string[];
  /** Resolver for the NS lookup itself (`ip` or `ip:port`); default the system's. */
  lookupServers?: string[];
  /** Port the authoritative servers answer on; 53 unless a test runs its own. */
  authoritativePort?: number;
  /** Give up after this long. */
  timeoutSeconds: number;
  /** Pause between rounds of queries. */
  intervalMs?: number;
}

async function newResolver(servers?: string[]): Promise<Resolver> {
  const { Resolver } = await import('node:dns/promises');
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  if (servers) resolver.setServers(servers);
  return resolver;
}

/** The addresses (`ip:port`) of the zone's authoritative name servers, found through its NS records. */
export async function authoritativeServers(zoneName: string, lookupServers?: string[], port = 53): Promise<string[]> {
  const resolver = await newResolver(lookupServers);
  const names = (await resolver.resolveNs(zoneName)).slice(0, 13);
  const addresses: string[] = [];
  for (const ns of names) {
    const v4 = await resolver.resolve4(ns).catch(() => [] as string[]);
    const v6 = await resolver.resolve6(ns).catch(() => [] as string[]);
    addresses.push(...v4.map((a) => `${a}:${port}`), ...v6.map((a) => `[${a}]:${port}`));
  }
  if (addresses.length === 0) throw new Error(`no addresses found for the name servers of ${zoneName} (${names.join(', ') || 'no NS records'})`);
  return addresses;
}

/** Resolves once every server serves `value` at `fqdn`; fails after the timeout naming the servers that did not. */
export async function waitForTxt(fqdn: string, value: string, settings: PropagationSettings): Promise<void> {
  const servers = settings.nameServers?.length ? settings.nameServers
    : await authoritativeServers(settings.zoneName, settings.lookupServers, settings.authoritativePort);
  const deadline = Date.now() + settings.timeoutSeconds * 1000;
  const interval = settings.intervalMs ?? 2000;
  let pending = [...servers];
  let lastError = '';
  for (;;) {
    const still: string[] = [];
    for (const server of pending) {
      const resolver = await newResolver([server]);
      try {
        const records = await resolver.resolveTxt(fqdn);
        if (!records.some((chunks) => chunks.join('') === value)) still.push(server);
      } catch (err) {
        lastError = (err as Error).message;
        still.push(server);
      }
    }
    pending = still;
    if (pending.length === 0) return;
    if (Date.now() + interval > deadline) {
      throw new Error(`TXT ${fqdn} not served by ${pending.join(', ')} after ${settings.timeoutSeconds}s${lastError ? ` (last error: ${lastError})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

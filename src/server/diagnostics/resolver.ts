// The DNS questions the checks ask, behind an interface so tests and the host can point them at a chosen server
// (a local unbound on the host: many DNSBLs refuse public resolvers). "No such name" and "no such record" are
// empty answers; every other failure (timeout, SERVFAIL, REFUSED) throws DnsLookupError, so a broken resolver is
// never mistaken for a missing record or a clean blocklist.
import { Resolver } from 'node:dns/promises';

export class DnsLookupError extends Error {
  override name = 'DnsLookupError';
  readonly code: string;
  constructor(question: string, code: string) {
    super(`DNS lookup ${question} failed: ${code}`);
    this.code = code;
  }
}

export interface DiagnosticResolver {
  /** TXT records, each with its character-strings joined. */
  txt(name: string): Promise<string[]>;
  a(name: string): Promise<string[]>;
  aaaa(name: string): Promise<string[]>;
  mx(name: string): Promise<{ exchange: string; priority: number }[]>;
  /** PTR names of an address (IPv4 or IPv6). */
  ptr(ip: string): Promise<string[]>;
  cname(name: string): Promise<string[]>;
  srv(name: string): Promise<{ priority: number; weight: number; port: number; name: string }[]>;
  caa(name: string): Promise<{ critical: number; tag: string; value: string }[]>;
}

const EMPTY = new Set(['ENOTFOUND', 'ENODATA']);

export interface ResolverOptions {
  /** `ip` or `ip:port` (IPv6 as `[ip]:port`); the system's resolvers when omitted. */
  servers?: string[];
  timeoutMs?: number;
  tries?: number;
}

export function dnsResolver(options: ResolverOptions = {}): DiagnosticResolver {
  const r = new Resolver({ timeout: options.timeoutMs ?? 3000, tries: options.tries ?? 2 });
  if (options.servers?.length) r.setServers(options.servers);
  async function ask<T>(question: string, run: () => Promise<T[]>): Promise<T[]> {
    try {
      return await run();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
      if (EMPTY.has(code)) return [];
      throw new DnsLookupError(question, code);
    }
  }
  return {
    txt: (name) => ask(`TXT ${name}`, async () => (await r.resolveTxt(name)).map((chunks) => chunks.join(''))),
    a: (name) => ask(`A ${name}`, () => r.resolve4(name)),
    aaaa: (name) => ask(`AAAA ${name}`, () => r.resolve6(name)),
    mx: (name) => ask(`MX ${name}`, () => r.resolveMx(name)),
    ptr: (ip) => ask(`PTR ${ip}`, () => r.reverse(ip)),
    cname: (name) => ask(`CNAME ${name}`, () => r.resolveCname(name)),
    srv: (name) => ask(`SRV ${name}`, () => r.resolveSrv(name)),
    caa: (name) => ask(`CAA ${name}`, async () => (await r.resolveCaa(name)).flatMap((c) => {
      const tag = (['issue', 'issuewild', 'iodef', 'contactemail', 'contactphone'] as const).find((t) => c[t] !== undefined);
      return tag ? [{ critical: c.critical, tag, value: String(c[tag]) }] : [];
    })),
  };
}

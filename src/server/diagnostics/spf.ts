// SPF (RFC 7208): syntax, and the number of DNS lookups a receiver must make to evaluate the record, counted
// through include: and redirect= as the receiver would. Over 10 lookups (or 2 void lookups) the receiver
// returns permerror and the domain's SPF fails everywhere.
import type { DiagnosticResolver } from './resolver.ts';
import { fail, ok, warn, type CheckResult } from './check.ts';

export const SPF_LOOKUP_LIMIT = 10;
export const SPF_VOID_LIMIT = 2;

export interface SpfTerm {
  qualifier: '+' | '-' | '~' | '?';
  name: string;
  value: string;
}

export interface ParsedSpf {
  mechanisms: SpfTerm[];
  redirect?: string;
  errors: string[];
}

const MECHANISMS = new Set(['all', 'include', 'a', 'mx', 'ptr', 'ip4', 'ip6', 'exists']);
const LOOKUP_TERMS = new Set(['include', 'a', 'mx', 'ptr', 'exists']);

export function parseSpf(record: string): ParsedSpf {
  const out: ParsedSpf = { mechanisms: [], errors: [] };
  const terms = record.trim().split(/ +/);
  if (terms[0]?.toLowerCase() !== 'v=spf1') {
    out.errors.push('does not start with v=spf1');
    return out;
  }
  for (const term of terms.slice(1)) {
    const mod = /^([a-z][a-z0-9_.-]*)=(.*)$/i.exec(term);
    if (mod) {
      const name = mod[1]!.toLowerCase();
      if (name === 'redirect') {
        if (out.redirect !== undefined) out.errors.push('more than one redirect= modifier');
        out.redirect = mod[2]!;
      }
      continue; // exp= and unknown modifiers are allowed and ignored
    }
    const m = /^([+\-~?]?)([a-z0-9]+)(?:([:/])(.*))?$/i.exec(term);
    const name = m?.[2]?.toLowerCase() ?? '';
    if (!m || !MECHANISMS.has(name)) {
      out.errors.push(`unknown term ${JSON.stringify(term)}`);
      continue;
    }
    const value = m[3] === ':' ? m[4] ?? '' : m[3] === '/' ? `/${m[4] ?? ''}` : '';
    if ((name === 'include' || name === 'exists') && !value) out.errors.push(`${name} needs a domain, like ${name}:_spf.example.net`);
    if ((name === 'ip4' || name === 'ip6') && !value) out.errors.push(`${name} needs an address, like ${name === 'ip4' ? 'ip4:192.0.2.0/24' : 'ip6:2001:db8::/32'}`);
    if (name === 'all' && value) out.errors.push(`"all" takes no argument, found ${JSON.stringify(term)}`);
    out.mechanisms.push({ qualifier: (m[1] || '+') as SpfTerm['qualifier'], name, value });
  }
  return out;
}

export interface SpfEvaluation {
  record: string | null;
  lookups: number;
  voidLookups: number;
  /** How the count adds up: `include:_spf.example.net (4)`. */
  breakdown: string[];
  errors: string[];
}

async function spfRecords(resolver: DiagnosticResolver, domain: string): Promise<string[]> {
  return (await resolver.txt(domain)).filter((t) => /^v=spf1(\s|$)/i.test(t));
}

/** Counts lookups for `domain`'s SPF, recursing through include/redirect; stops early once far over the limit. */
export async function evaluateSpf(resolver: DiagnosticResolver, domain: string): Promise<SpfEvaluation> {
  const ev: SpfEvaluation = { record: null, lookups: 0, voidLookups: 0, breakdown: [], errors: [] };
  const visiting = new Set<string>();
  async function walk(d: string, top: boolean): Promise<number> {
    const key = d.toLowerCase();
    if (visiting.has(key)) {
      ev.errors.push(`loop: ${d} includes itself`);
      return 0;
    }
    visiting.add(key);
    try {
      return await walkRecord(d, top);
    } finally {
      visiting.delete(key);
    }
  }
  async function walkRecord(d: string, top: boolean): Promise<number> {
    const records = await spfRecords(resolver, d);
    if (top) ev.record = records[0] ?? null;
    if (records.length === 0) {
      if (!top) {
        ev.voidLookups++;
        ev.errors.push(`${d} has no SPF record (include/redirect of it is a permerror)`);
      }
      return 0;
    }
    if (records.length > 1) ev.errors.push(`${d} publishes ${records.length} SPF records (exactly one is allowed)`);
    const parsed = parseSpf(records[0]!);
    ev.errors.push(...parsed.errors.map((e) => `${d}: ${e}`));
    let here = 0;
    for (const m of parsed.mechanisms) {
      if (!LOOKUP_TERMS.has(m.name)) continue;
      here++;
      ev.lookups++;
      if (m.name === 'include') {
        if (ev.lookups > SPF_LOOKUP_LIMIT * 3) break;
        const target = m.value;
        if (target.includes('%')) continue; // macro: cannot be expanded without a sender
        const inner = await walk(target, false);
        here += inner;
        if (top) ev.breakdown.push(`include:${target} (${inner + 1})`);
      } else if (top) {
        ev.breakdown.push(`${m.name}${m.value && !m.value.startsWith('/') ? `:${m.value}` : ''} (1)`);
      }
    }
    if (parsed.redirect !== undefined && !parsed.mechanisms.some((m) => m.name === 'all')) {
      here++;
      ev.lookups++;
      const inner = parsed.redirect.includes('%') || ev.lookups > SPF_LOOKUP_LIMIT * 3 ? 0 : await walk(parsed.redirect, false);
      here += inner;
      if (top) ev.breakdown.push(`redirect=${parsed.redirect} (${inner + 1})`);
    }
    return here;
  }
  await walk(domain, true);
  return ev;
}

/**
 * The SPF check. `expected` is the record the plan publishes (used in the fix); without one a minimal
 * `v=spf1 mx -all` is suggested.
 */
export async function checkSpf(resolver: DiagnosticResolver, domain: string, expected?: string): Promise<CheckResult> {
  const id = 'dns.spf';
  const want = expected ?? 'v=spf1 mx -all';
  const ev = await evaluateSpf(resolver, domain);
  if (ev.record === null) return fail(id, `${domain} has no SPF record: receivers treat its mail as unauthenticated`, `publish TXT ${domain} "${want}"`);
  if (ev.lookups > SPF_LOOKUP_LIMIT) {
    return fail(id, `SPF of ${domain} needs ${ev.lookups} DNS lookups, over the RFC 7208 limit of ${SPF_LOOKUP_LIMIT} (receivers return permerror): ${ev.breakdown.join(', ')}`,
      `cut lookups to ${SPF_LOOKUP_LIMIT} or fewer: drop includes of services you no longer use, or replace an include with the ip4:/ip6: ranges it lists; Postern needs only: TXT ${domain} "${want}"`);
  }
  if (ev.errors.length) return fail(id, `SPF of ${domain} is invalid: ${ev.errors.join('; ')}`, `publish TXT ${domain} "${want}" (one SPF record only)`);
  if (ev.voidLookups > SPF_VOID_LIMIT) return fail(id, `SPF of ${domain} has ${ev.voidLookups} lookups that return nothing (limit ${SPF_VOID_LIMIT})`, `remove the includes that point at names without SPF: TXT ${domain} "${want}"`);
  const parsed = parseSpf(ev.record);
  const all = parsed.mechanisms.find((m) => m.name === 'all');
  if (all?.qualifier === '+') return fail(id, `SPF of ${domain} ends in +all: anyone may send as ${domain}`, `publish TXT ${domain} "${want}"`);
  if (!all && parsed.redirect === undefined) return warn(id, `SPF of ${domain} has no "all" term, so unlisted senders are neutral`, `end the record with -all: TXT ${domain} "${want}"`);
  if (all?.qualifier === '?') return warn(id, `SPF of ${domain} ends in ?all (neutral): it does not protect the domain`, `end it with -all or ~all: TXT ${domain} "${want}"`);
  if (expected !== undefined && ev.record !== expected) {
    return warn(id, `SPF of ${domain} is valid (${ev.lookups} lookups) but differs from the planned "${expected}": "${ev.record}"`, `publish TXT ${domain} "${expected}" (run \`pulumi up\`)`);
  }
  return ok(id, `SPF of ${domain} is valid and needs ${ev.lookups} of ${SPF_LOOKUP_LIMIT} DNS lookups`);
}

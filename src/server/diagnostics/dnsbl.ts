// Blocklist lookups for the host's addresses and the mail domain. A refusal answer (Spamhaus 127.255.255.254:
// "public resolver") or a failed lookup is reported as such, never as "not listed".
import { isIPv4, isIPv6 } from 'node:net';
import type { DiagnosticResolver } from './resolver.ts';
import type { DnsblList } from './dnsbl-lists.ts';
import { fail, ok, warn, type CheckResult } from './check.ts';

/** The DNSBL query label for an address: reversed octets (IPv4) or reversed nibbles (IPv6). */
export function reversedIp(ip: string): string {
  if (isIPv4(ip)) return ip.split('.').reverse().join('.');
  if (!isIPv6(ip)) throw new Error(`not an IP address: ${JSON.stringify(ip)}`);
  let [head, tail] = ip.toLowerCase().split('::') as [string, string | undefined];
  // An IPv4-mapped tail (::ffff:192.0.2.1) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(tail ?? head);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    const hex = `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
    if (tail !== undefined) tail = tail.replace(v4[1]!, hex); else head = head.replace(v4[1]!, hex);
  }
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.padStart(4, '0')).join('').split('').reverse().join('.');
}

const RESOLVER_FIX = 'query blocklists through a resolver of your own, not a public one: on the host run `postern doctor --local` (it uses the local unbound that cloud-init installs); from a laptop pass --server 127.0.0.1:53 of a local unbound';

export interface DnsblTarget {
  /** The host's public addresses. */
  addresses: readonly string[];
  domain: string;
  lists: readonly DnsblList[];
}

async function lookup(resolver: DiagnosticResolver, list: DnsblList, subject: string, query: string): Promise<CheckResult> {
  const fam = list.kind === 'domain' ? 'domain' : isIPv6(subject) ? 'ipv6' : 'ipv4';
  const id = `dnsbl.${list.zone}.${fam === "domain" ? "domain" : subject}`;
  let answers: string[];
  try {
    answers = await resolver.a(query);
  } catch (err) {
    return warn(id, `${list.name}: lookup of ${subject} failed (${(err as Error).message}); listing status unknown`, RESOLVER_FIX);
  }
  if (answers.length === 0) return ok(id, `${subject} is not listed on ${list.name}`);
  const refused = answers.filter((a) => list.refusals[a] !== undefined || a.startsWith('127.255.255.'));
  if (refused.length) {
    const code = refused[0]!;
    return warn(id, `${list.name}: lookup refused for ${subject} (${code}: ${list.refusals[code] ?? 'refusal code'}); listing status unknown, not clean`, RESOLVER_FIX);
  }
  const listed = answers.filter((a) => a.startsWith('127.'));
  if (listed.length === 0) {
    return warn(id, `${list.name}: unexpected answer ${answers.join(', ')} for ${subject} (not a 127.x return code: the list may be defunct and answering everything)`, `remove ${list.zone} from the checked lists if it is defunct`);
  }
  const meanings = listed.map((a) => `${a} = ${list.codes[a] ?? 'listed (code not documented here)'}`);
  return fail(id, `${subject} is LISTED on ${list.name} (${list.zone}): ${meanings.join('; ')}`,
    `find and stop the cause (an open relay, a compromised account or form sending spam), then request delisting at ${list.delistUrl}`);
}

export async function checkDnsbls(resolver: DiagnosticResolver, target: DnsblTarget): Promise<CheckResult[]> {
  const jobs: Promise<CheckResult>[] = [];
  for (const list of target.lists) {
    if (list.kind === 'domain') {
      jobs.push(lookup(resolver, list, target.domain, `${target.domain.replace(/\.$/, '')}.${list.zone}`));
      continue;
    }
    for (const ip of target.addresses) {
      if (isIPv6(ip) && !list.ipv6) continue;
      jobs.push(lookup(resolver, list, ip, `${reversedIp(ip)}.${list.zone}`));
    }
  }
  return Promise.all(jobs);
}

// Every record the plan publishes is live and equal: the live records of the names and types Postern owns are
// read through the resolver and compared with the plan's own diff (plan/dns-diff.ts), so `postern dns diff` and
// the doctor can never disagree about what is missing.
import { diffDns, type DnsChange } from '../../plan/dns-diff.ts';
import { describeRecord, type DnsRecordType, type ObservedRecord } from '../../plan/dns-records.ts';
import type { DnsPlan } from '../../plan/dns-plan.ts';
import { canonicalIPv6 } from '../../plan/names.ts';
import type { DiagnosticResolver } from './resolver.ts';
import { fail, ok, warn, type CheckResult } from './check.ts';

const bare = (n: string) => n.toLowerCase().replace(/\.$/, '');

/** The live records of one name and type, shaped like the plan's (TTL unknown, so never compared). */
export async function observeRRset(resolver: DiagnosticResolver, name: string, type: DnsRecordType): Promise<ObservedRecord[]> {
  switch (type) {
    case 'A': return (await resolver.a(name)).map((value) => ({ name, type, value }));
    case 'AAAA': return (await resolver.aaaa(name)).map((value) => ({ name, type, value: canonicalIPv6(value) }));
    case 'CNAME': return (await resolver.cname(name)).map((value) => ({ name, type, value: bare(value) }));
    case 'MX': return (await resolver.mx(name)).map((m) => ({ name, type, priority: m.priority, value: bare(m.exchange) }));
    case 'TXT': return (await resolver.txt(name)).map((value) => ({ name, type, value }));
    case 'SRV': return (await resolver.srv(name)).map((s) => ({ name, type, priority: s.priority, weight: s.weight, port: s.port, target: bare(s.name) || '.' }));
    case 'CAA': return (await resolver.caa(name)).flatMap((c) => (c.tag === 'issue' || c.tag === 'issuewild' || c.tag === 'iodef')
      ? [{ name, type, flags: c.critical, tag: c.tag, value: c.value }] : []);
  }
}

function changeResult(c: DnsChange): CheckResult {
  if (c.op === 'add') {
    return fail(`dns.record.${c.record.name}.${c.record.type}`, `missing: ${describeRecord(c.record)}`, `publish ${describeRecord(c.record)} (\`pulumi up\` does it)`);
  }
  if (c.op === 'change') {
    return fail(`dns.record.${c.record.name}.${c.record.type}`, `wrong value: ${describeRecord(c.old)}, the plan says ${describeRecord(c.record)}`, `change it to ${describeRecord(c.record)} (\`pulumi up\` does it)`);
  }
  return warn(`dns.record.${c.old.name}.${c.old.type}`, `extra record not in the plan: ${describeRecord(c.old)}`, `remove ${describeRecord(c.old)} (\`pulumi up\` does it)`);
}

export async function checkDnsRecords(resolver: DiagnosticResolver, plan: Pick<DnsPlan, 'records' | 'owned'>): Promise<CheckResult[]> {
  const current = (await Promise.all(plan.owned.map((o) => observeRRset(resolver, o.name, o.type)))).flat();
  const changes = diffDns(plan.records, current, plan.owned);
  if (changes.length === 0) return [ok('dns.records', `all ${plan.records.length} planned DNS records are published and equal`)];
  return changes.map(changeResult);
}

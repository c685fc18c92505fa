// DMARC: one v=DMARC1 record at _dmarc.<domain> with a policy, and a report address so problems become visible.
import type { DiagnosticResolver } from './resolver.ts';
import { dkimTags } from './dkim.ts';
import { fail, ok, warn, type CheckResult } from './check.ts';

export async function checkDmarc(resolver: DiagnosticResolver, domain: string, expected?: string): Promise<CheckResult> {
  const id = 'dns.dmarc';
  const name = `_dmarc.${domain}`;
  const want = expected ?? `v=DMARC1; p=quarantine; rua=mailto:postmaster@${domain}`;
  const set = `publish TXT ${name} "${want}"`;
  const records = (await resolver.txt(name)).filter((t) => /^v=DMARC1(\s*;|\s*$)/i.test(t));
  if (records.length === 0) return fail(id, `no DMARC record at ${name}: large receivers (Gmail, Yahoo) require one from bulk senders and mail is easier to spoof`, set);
  if (records.length > 1) return fail(id, `${records.length} DMARC records at ${name}: receivers ignore them all`, set);
  const tags = dkimTags(records[0]!);
  const p = tags.get('p')?.toLowerCase();
  if (!p || !['none', 'quarantine', 'reject'].includes(p)) return fail(id, `DMARC record at ${name} has no valid p= policy: "${records[0]}"`, set);
  if (expected !== undefined && dkimTags(expected).get('p') !== p) {
    return warn(id, `DMARC policy is p=${p}, the plan says "${expected}"`, set);
  }
  if (p === 'none') return warn(id, `DMARC policy is p=none: spoofed mail is still delivered`, `once reports show your own mail passing, publish TXT ${name} "${want.replace(/p=none/, 'p=quarantine')}"`);
  if (!tags.get('rua')) return warn(id, `DMARC record has no rua= address: you get no aggregate reports`, set);
  return ok(id, `DMARC policy p=${p} with reports to ${tags.get('rua')}`);
}

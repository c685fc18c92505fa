// DKIM: every selector the server signs with has its public key published, and it is the right key.
import type { DiagnosticResolver } from './resolver.ts';
import { fail, ok, type CheckResult } from './check.ts';

export interface DkimSelector {
  selector: string;
  /** The TXT value the plan publishes (`v=DKIM1; k=ed25519; p=...`); compared on its p= when given. */
  expectedRecord?: string;
  /** Key type, for the fix when the key itself is not known (doctor run from a laptop). */
  algorithm?: 'rsa-sha256' | 'ed25519-sha256';
}

export function dkimTags(record: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of record.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) tags.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1).replace(/\s+/g, ''));
  }
  return tags;
}

export async function checkDkim(resolver: DiagnosticResolver, domain: string, selectors: readonly DkimSelector[]): Promise<CheckResult[]> {
  return Promise.all(selectors.map(async ({ selector, expectedRecord, algorithm }): Promise<CheckResult> => {
    const id = `dns.dkim.${selector}`;
    const name = `${selector}._domainkey.${domain}`;
    const k = algorithm === 'ed25519-sha256' ? 'ed25519' : algorithm === 'rsa-sha256' ? 'rsa' : '<rsa|ed25519>';
    const set = expectedRecord
      ? `publish TXT ${name} "${expectedRecord}" (run \`pulumi up\`)`
      : `publish TXT ${name} "v=DKIM1; k=${k}; p=<public key>" with the key the server signs with: \`pulumi up\` publishes it, and \`postern doctor --local\` on the host prints the exact record`;
    const records = (await resolver.txt(name)).filter((t) => /^\s*v\s*=\s*DKIM1/i.test(t) || /(^|;)\s*p\s*=/i.test(t));
    if (records.length === 0) return fail(id, `no DKIM key at ${name}: receivers cannot verify mail signed with selector ${selector}, so DMARC fails unless SPF aligns`, set);
    if (records.length > 1) return fail(id, `${records.length} DKIM records at ${name} (exactly one is allowed)`, set);
    const tags = dkimTags(records[0]!);
    const p = tags.get('p') ?? '';
    if (!p) return fail(id, `DKIM key at ${name} is empty (p=): the key is revoked`, set);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(p)) return fail(id, `DKIM key at ${name} is not base64`, set);
    if (expectedRecord !== undefined) {
      const want = dkimTags(expectedRecord).get('p');
      if (want && want !== p) return fail(id, `DKIM key at ${name} differs from the key the server signs with: signatures fail verification`, set);
    }
    return ok(id, `DKIM key for selector ${selector} is published${tags.get('k') ? ` (${tags.get('k')})` : ''}`);
  }));
}

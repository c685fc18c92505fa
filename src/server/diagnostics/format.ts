// Check results as terminal lines: one per check, with the fix indented under anything not ok.
import type { CheckResult } from './check.ts';

const LABEL = { ok: 'ok     ', warn: 'warning', fail: 'FAILURE' } as const;

export function formatResults(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${LABEL[r.status]}  ${r.id}: ${r.message}`);
    if (r.status !== 'ok' && r.fix) lines.push(`         fix: ${r.fix}`);
  }
  const n = (s: CheckResult['status']) => results.filter((r) => r.status === s).length;
  lines.push('', `${n('ok')} ok, ${n('warn')} warning(s), ${n('fail')} failure(s)`);
  return lines.join('\n');
}

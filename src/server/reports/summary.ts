// What the stored reports say, for `postern reports` and the web admin: which sources send as the domain, how
// many pass SPF/DKIM/DMARC, which fail and why, and the TLS failures other MTAs met. Pure.
import type { DmarcAggregateReport, DmarcRecord } from './dmarc-aggregate.ts';
import type { TlsReport } from './tls-rpt.ts';

export interface SourceSummary {
  sourceIp: string;
  headerFrom: string;
  messages: number;
  dmarcPass: number;
  spfAlignedPass: number;
  dkimAlignedPass: number;
  dispositions: Record<string, number>;
  /** Why the failing messages failed, most frequent first. */
  failures: { why: string; messages: number }[];
  reporters: string[];
}

export interface TlsPolicySummary {
  policyDomain: string;
  policyType: string;
  successfulSessions: number;
  failedSessions: number;
  failures: { resultType: string; receivingMx: string; receivingIp: string; sendingIp: string; sessions: number; detail: string; reporters: string[] }[];
}

export interface ReportSummary {
  from: string | null;
  to: string | null;
  reporters: { org: string; dmarcReports: number; tlsReports: number }[];
  dmarc: { domains: string[]; messages: number; dmarcPass: number; spfAlignedPass: number; dkimAlignedPass: number; sources: SourceSummary[] };
  tls: { policies: TlsPolicySummary[] };
  refusedAttachments: number;
}

/** Relaxed alignment as RFC 7489 §3.1 describes it, approximated without a public-suffix list: equal or parent/child. */
function relaxedAligned(a: string, b: string): boolean {
  a = a.toLowerCase();
  b = b.toLowerCase();
  return a === b || a.endsWith(`.${b}`) || b.endsWith(`.${a}`);
}

/** A short human explanation of why one record failed DMARC (or passed only one mechanism). */
export function explainRecord(r: DmarcRecord): string {
  const parts: string[] = [];
  if (r.dkim !== 'pass') {
    if (r.dkimResults.length === 0) parts.push('no DKIM signature');
    for (const d of r.dkimResults) {
      if (d.result === 'pass' && !relaxedAligned(d.domain, r.headerFrom)) parts.push(`DKIM pass for d=${d.domain} (not aligned with ${r.headerFrom})`);
      else parts.push(`DKIM ${d.result} for d=${d.domain}${d.selector ? ` s=${d.selector}` : ''}`);
    }
  }
  if (r.spf !== 'pass') {
    if (r.spfResults.length === 0) parts.push('no SPF result');
    for (const s of r.spfResults) {
      if (s.result === 'pass' && !relaxedAligned(s.domain, r.headerFrom)) parts.push(`SPF pass for ${s.domain} (not aligned with ${r.headerFrom})`);
      else parts.push(`SPF ${s.result} for ${s.domain || '(empty envelope sender)'}`);
    }
  }
  for (const reason of r.reasons) parts.push(`receiver override: ${reason.type}${reason.comment ? ` (${reason.comment})` : ''}`);
  return parts.join('; ');
}

function bump(map: Map<string, number>, key: string, n: number): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

export function summariseReports(dmarc: readonly DmarcAggregateReport[], tls: readonly TlsReport[], refusedAttachments = 0): ReportSummary {
  const times = [...dmarc, ...tls].flatMap((r) => [r.begin.getTime(), r.end.getTime()]);
  const reporters = new Map<string, { dmarcReports: number; tlsReports: number }>();
  const sources = new Map<string, SourceSummary & { failMap: Map<string, number>; reporterSet: Set<string> }>();
  const domains = new Set<string>();
  const totals = { messages: 0, dmarcPass: 0, spfAlignedPass: 0, dkimAlignedPass: 0 };
  for (const report of dmarc) {
    const rep = reporters.get(report.orgName) ?? { dmarcReports: 0, tlsReports: 0 };
    rep.dmarcReports++;
    reporters.set(report.orgName, rep);
    domains.add(report.policy.domain);
    for (const r of report.records) {
      const key = `${r.sourceIp} ${r.headerFrom}`;
      let s = sources.get(key);
      if (!s) {
        s = { sourceIp: r.sourceIp, headerFrom: r.headerFrom, messages: 0, dmarcPass: 0, spfAlignedPass: 0, dkimAlignedPass: 0,
          dispositions: {}, failures: [], reporters: [], failMap: new Map(), reporterSet: new Set() };
        sources.set(key, s);
      }
      const pass = r.dkim === 'pass' || r.spf === 'pass';
      s.messages += r.count;
      totals.messages += r.count;
      if (pass) { s.dmarcPass += r.count; totals.dmarcPass += r.count; }
      if (r.spf === 'pass') { s.spfAlignedPass += r.count; totals.spfAlignedPass += r.count; }
      if (r.dkim === 'pass') { s.dkimAlignedPass += r.count; totals.dkimAlignedPass += r.count; }
      s.dispositions[r.disposition] = (s.dispositions[r.disposition] ?? 0) + r.count;
      if (!pass) bump(s.failMap, explainRecord(r) || 'DMARC fail', r.count);
      s.reporterSet.add(report.orgName);
    }
  }
  const policies = new Map<string, TlsPolicySummary & { failMap: Map<string, TlsPolicySummary['failures'][number] & { reporterSet: Set<string> }> }>();
  for (const report of tls) {
    const rep = reporters.get(report.orgName) ?? { dmarcReports: 0, tlsReports: 0 };
    rep.tlsReports++;
    reporters.set(report.orgName, rep);
    for (const p of report.policies) {
      const key = `${p.policyType} ${p.policyDomain}`;
      let s = policies.get(key);
      if (!s) {
        s = { policyDomain: p.policyDomain, policyType: p.policyType, successfulSessions: 0, failedSessions: 0, failures: [], failMap: new Map() };
        policies.set(key, s);
      }
      s.successfulSessions += p.successfulSessions;
      s.failedSessions += p.failedSessions;
      for (const f of p.failures) {
        const detail = [f.reasonCode, f.additionalInformation].filter(Boolean).join(' — ');
        const fk = [f.resultType, f.receivingMxHostname, f.receivingIp, f.sendingMtaIp, detail].join('|');
        let e = s.failMap.get(fk);
        if (!e) {
          e = { resultType: f.resultType, receivingMx: f.receivingMxHostname ?? '', receivingIp: f.receivingIp ?? '',
            sendingIp: f.sendingMtaIp ?? '', sessions: 0, detail, reporters: [], reporterSet: new Set() };
          s.failMap.set(fk, e);
        }
        e.sessions += f.failedSessions;
        e.reporterSet.add(report.orgName);
      }
    }
  }
  return {
    from: times.length ? new Date(Math.min(...times)).toISOString() : null,
    to: times.length ? new Date(Math.max(...times)).toISOString() : null,
    reporters: [...reporters].map(([org, r]) => ({ org, ...r })).sort((a, b) => a.org.localeCompare(b.org)),
    dmarc: {
      domains: [...domains].sort(),
      ...totals,
      sources: [...sources.values()]
        .map(({ failMap, reporterSet, ...s }) => ({
          ...s,
          failures: [...failMap].map(([why, messages]) => ({ why, messages })).sort((a, b) => b.messages - a.messages),
          reporters: [...reporterSet].sort(),
        }))
        .sort((a, b) => b.messages - a.messages || a.sourceIp.localeCompare(b.sourceIp)),
    },
    tls: {
      policies: [...policies.values()].map(({ failMap, ...p }) => ({
        ...p,
        failures: [...failMap.values()].map(({ reporterSet, ...f }) => ({ ...f, reporters: [...reporterSet].sort() }))
          .sort((a, b) => b.sessions - a.sessions),
      })),
    },
    refusedAttachments,
  };
}

function pct(n: number, of: number): string {
  return of === 0 ? '-' : `${Math.round((n / of) * 100)}%`;
}

/** The summary as the terminal shows it. */
export function formatReportSummary(s: ReportSummary): string {
  const out: string[] = [];
  if (s.reporters.length === 0) {
    out.push('No DMARC or TLS reports stored yet. Receivers send them daily to the rua= address of your DMARC record and the rua= of your TLS-RPT record.');
    if (s.refusedAttachments) out.push(`${s.refusedAttachments} report attachment(s) were refused (malformed or over the size limits).`);
    return out.join('\n');
  }
  out.push(`Reports from ${s.from} to ${s.to}, sent by ${s.reporters.map((r) => r.org).join(', ')}`);
  const d = s.dmarc;
  if (d.messages > 0) {
    out.push('', `DMARC (${d.domains.join(', ')}): ${d.messages} messages, ${d.dmarcPass} pass DMARC (${pct(d.dmarcPass, d.messages)}), ` +
      `SPF aligned ${d.spfAlignedPass} (${pct(d.spfAlignedPass, d.messages)}), DKIM aligned ${d.dkimAlignedPass} (${pct(d.dkimAlignedPass, d.messages)})`);
    out.push('Sources sending as your domain:');
    for (const src of d.sources) {
      const verdict = src.dmarcPass === src.messages ? 'ok  ' : src.dmarcPass === 0 ? 'FAIL' : 'PART';
      out.push(`  ${verdict} ${src.sourceIp.padEnd(39)} From ${src.headerFrom}: ${src.messages} msgs, DMARC pass ${src.dmarcPass}, ` +
        `SPF ${src.spfAlignedPass}, DKIM ${src.dkimAlignedPass}; disposition ${Object.entries(src.dispositions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
      for (const f of src.failures) out.push(`         ${f.messages} failed: ${f.why}`);
    }
  }
  if (s.tls.policies.length) {
    out.push('', 'TLS (reported by sending MTAs):');
    for (const p of s.tls.policies) {
      const total = p.successfulSessions + p.failedSessions;
      out.push(`  ${p.failedSessions ? 'FAIL' : 'ok  '} ${p.policyType} ${p.policyDomain}: ${p.successfulSessions} of ${total} sessions succeeded, ${p.failedSessions} failed`);
      for (const f of p.failures) {
        out.push(`         ${f.sessions} × ${f.resultType}${f.receivingMx ? ` at ${f.receivingMx}` : ''}${f.receivingIp ? ` (${f.receivingIp})` : ''}` +
          `${f.sendingIp ? ` from ${f.sendingIp}` : ''}${f.detail ? `: ${f.detail}` : ''} [${f.reporters.join(', ')}]`);
      }
    }
  }
  if (s.refusedAttachments) out.push('', `${s.refusedAttachments} report attachment(s) were refused (malformed or over the size limits).`);
  return out.join('\n');
}

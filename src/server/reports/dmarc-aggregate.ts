// DMARC aggregate reports (RFC 7489 appendix C, and the DMARCbis 2.0 namespace): XML → a typed report.
// Receivers differ in details (Google omits <version>, Microsoft adds namespaces and <envelope_to>, some send one
// <dkim> per signature), so the reader is lenient about optional fields and strict about the required ones.
import { parseReportXml, decodeXmlText } from './xml.ts';
import { ReportRefused, type ReportLimits } from './limits.ts';

export interface DmarcAuthResult {
  domain: string;
  result: string;
  selector?: string;
  scope?: string;
}

export interface DmarcRecord {
  sourceIp: string;
  count: number;
  disposition: string;
  /** DMARC-aligned DKIM and SPF verdicts as evaluated by the receiver. */
  dkim: string;
  spf: string;
  reasons: { type: string; comment?: string }[];
  headerFrom: string;
  envelopeFrom?: string;
  dkimResults: DmarcAuthResult[];
  spfResults: DmarcAuthResult[];
}

export interface DmarcAggregateReport {
  kind: 'dmarc';
  orgName: string;
  email: string;
  reportId: string;
  begin: Date;
  end: Date;
  policy: { domain: string; p: string; sp?: string; adkim?: string; aspf?: string; pct?: number };
  records: DmarcRecord[];
}

type Node = Record<string, unknown>;

function asArray(v: unknown): unknown[] {
  return v === undefined || v === null || v === '' ? [] : Array.isArray(v) ? v : [v];
}

function obj(v: unknown, path: string): Node {
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as Node;
  throw new ReportRefused(`DMARC report: <${path}> is missing or not an element`);
}

function text(v: unknown, path: string): string {
  const s = optText(v);
  if (s === undefined || s === '') throw new ReportRefused(`DMARC report: <${path}> is missing`);
  return s;
}

function optText(v: unknown): string | undefined {
  if (Array.isArray(v)) v = v[0];
  if (typeof v === 'string') return decodeXmlText(v).slice(0, 1000);
  if (typeof v === 'number') return String(v);
  return undefined;
}

function epoch(v: unknown, path: string): Date {
  const s = text(v, path);
  if (!/^\d{1,12}$/.test(s)) throw new ReportRefused(`DMARC report: <${path}> is not a Unix time: ${JSON.stringify(s)}`);
  return new Date(Number(s) * 1000);
}

function authResults(v: unknown): DmarcAuthResult[] {
  return asArray(v).flatMap((r) => {
    if (!r || typeof r !== 'object') return [];
    const n = r as Node;
    const out: DmarcAuthResult = { domain: optText(n.domain) ?? '', result: (optText(n.result) ?? 'none').toLowerCase() };
    const selector = optText(n.selector);
    if (selector) out.selector = selector;
    const scope = optText(n.scope);
    if (scope) out.scope = scope;
    return [out];
  });
}

export function parseDmarcAggregate(xml: string, limits: ReportLimits): DmarcAggregateReport {
  const doc = obj(parseReportXml(xml, limits.maxDecompressedBytes), '(document)');
  const feedback = obj(doc.feedback, 'feedback');
  const meta = obj(feedback.report_metadata, 'report_metadata');
  const range = obj(meta.date_range, 'report_metadata/date_range');
  const pol = obj(feedback.policy_published, 'policy_published');
  const rawRecords = asArray(feedback.record);
  if (rawRecords.length > limits.maxRecords) throw new ReportRefused(`DMARC report has ${rawRecords.length} records (at most ${limits.maxRecords} accepted)`);
  const records = rawRecords.map((r, i): DmarcRecord => {
    const rec = obj(r, `record[${i}]`);
    const row = obj(rec.row, `record[${i}]/row`);
    const ev = obj(row.policy_evaluated, `record[${i}]/row/policy_evaluated`);
    const ids = obj(rec.identifiers, `record[${i}]/identifiers`);
    const auth = rec.auth_results && typeof rec.auth_results === 'object' ? rec.auth_results as Node : {};
    const countText = text(row.count, `record[${i}]/row/count`);
    if (!/^\d{1,10}$/.test(countText)) throw new ReportRefused(`DMARC report: record[${i}] count is not a number`);
    const out: DmarcRecord = {
      sourceIp: text(row.source_ip, `record[${i}]/row/source_ip`),
      count: Number(countText),
      disposition: (optText(ev.disposition) ?? 'none').toLowerCase(),
      dkim: (optText(ev.dkim) ?? 'none').toLowerCase(),
      spf: (optText(ev.spf) ?? 'none').toLowerCase(),
      reasons: asArray(ev.reason).flatMap((x) => {
        if (!x || typeof x !== 'object') return [];
        const n = x as Node;
        const type = optText(n.type);
        if (!type) return [];
        const comment = optText(n.comment);
        return [comment ? { type, comment } : { type }];
      }),
      headerFrom: text(ids.header_from, `record[${i}]/identifiers/header_from`).toLowerCase(),
      dkimResults: authResults(auth.dkim),
      spfResults: authResults(auth.spf),
    };
    const envelopeFrom = optText(ids.envelope_from);
    if (envelopeFrom) out.envelopeFrom = envelopeFrom.toLowerCase();
    return out;
  });
  const policy: DmarcAggregateReport['policy'] = {
    domain: text(pol.domain, 'policy_published/domain').toLowerCase(),
    p: (optText(pol.p) ?? 'none').toLowerCase(),
  };
  const sp = optText(pol.sp);
  if (sp) policy.sp = sp.toLowerCase();
  const adkim = optText(pol.adkim);
  if (adkim) policy.adkim = adkim;
  const aspf = optText(pol.aspf);
  if (aspf) policy.aspf = aspf;
  const pct = optText(pol.pct);
  if (pct && /^\d{1,3}$/.test(pct)) policy.pct = Number(pct);
  return {
    kind: 'dmarc',
    orgName: text(meta.org_name, 'report_metadata/org_name'),
    email: optText(meta.email) ?? '',
    reportId: text(meta.report_id, 'report_metadata/report_id'),
    begin: epoch(range.begin, 'date_range/begin'),
    end: epoch(range.end, 'date_range/end'),
    policy,
    records,
  };
}

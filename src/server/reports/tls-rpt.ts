// SMTP TLS reports (RFC 8460): JSON → a typed report. JSON.parse has no entity or reference expansion; size and
// the number of policies and failure details are capped.
import { z } from 'zod';
import { ReportRefused, type ReportLimits } from './limits.ts';

const count = z.number().int().min(0).max(1e12);
const str = z.string().max(2000);

const schema = z.looseObject({
  'organization-name': str.min(1),
  'date-range': z.looseObject({ 'start-datetime': str, 'end-datetime': str }),
  'contact-info': str.optional(),
  'report-id': str.min(1),
  policies: z.array(z.looseObject({
    policy: z.looseObject({
      'policy-type': str,
      'policy-domain': str,
      'mx-host': z.union([z.array(str), str]).optional(),
    }),
    summary: z.looseObject({ 'total-successful-session-count': count, 'total-failure-session-count': count }),
    'failure-details': z.array(z.looseObject({
      'result-type': str,
      'sending-mta-ip': str.optional(),
      'receiving-mx-hostname': str.optional(),
      'receiving-mx-helo': str.optional(),
      'receiving-ip': str.optional(),
      'failed-session-count': count,
      'additional-information': str.optional(),
      'failure-reason-code': str.optional(),
    })).optional(),
  })),
});

export interface TlsFailureDetail {
  resultType: string;
  sendingMtaIp?: string;
  receivingMxHostname?: string;
  receivingIp?: string;
  failedSessions: number;
  reasonCode?: string;
  additionalInformation?: string;
}

export interface TlsPolicyResult {
  policyType: string;
  policyDomain: string;
  mxHosts: string[];
  successfulSessions: number;
  failedSessions: number;
  failures: TlsFailureDetail[];
}

export interface TlsReport {
  kind: 'tlsrpt';
  orgName: string;
  contact: string;
  reportId: string;
  begin: Date;
  end: Date;
  policies: TlsPolicyResult[];
}

function date(s: string, what: string): Date {
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) throw new ReportRefused(`TLS report: ${what} is not a date: ${JSON.stringify(s.slice(0, 60))}`);
  return d;
}

export function parseTlsReport(json: string, limits: ReportLimits): TlsReport {
  if (Buffer.byteLength(json) > limits.maxDecompressedBytes) throw new ReportRefused(`TLS report larger than ${limits.maxDecompressedBytes} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ReportRefused(`TLS report is not JSON: ${(err as Error).message}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new ReportRefused(`TLS report is not RFC 8460 JSON: ${first ? `${first.path.join('.')}: ${first.message}` : 'invalid'}`);
  }
  const doc = r.data;
  const details = doc.policies.reduce((n, p) => n + 1 + (p['failure-details']?.length ?? 0), 0);
  if (details > limits.maxRecords) throw new ReportRefused(`TLS report has ${details} policies and failure details (at most ${limits.maxRecords} accepted)`);
  return {
    kind: 'tlsrpt',
    orgName: doc['organization-name'],
    contact: doc['contact-info'] ?? '',
    reportId: doc['report-id'],
    begin: date(doc['date-range']['start-datetime'], 'start-datetime'),
    end: date(doc['date-range']['end-datetime'], 'end-datetime'),
    policies: doc.policies.map((p) => {
      const mx = p.policy['mx-host'];
      return {
        policyType: p.policy['policy-type'],
        policyDomain: p.policy['policy-domain'].toLowerCase(),
        mxHosts: mx === undefined ? [] : Array.isArray(mx) ? mx : [mx],
        successfulSessions: p.summary['total-successful-session-count'],
        failedSessions: p.summary['total-failure-session-count'],
        failures: (p['failure-details'] ?? []).map((f) => {
          const d: TlsFailureDetail = { resultType: f['result-type'], failedSessions: f['failed-session-count'] };
          if (f['sending-mta-ip']) d.sendingMtaIp = f['sending-mta-ip'];
          if (f['receiving-mx-hostname']) d.receivingMxHostname = f['receiving-mx-hostname'];
          if (f['receiving-ip']) d.receivingIp = f['receiving-ip'];
          if (f['failure-reason-code']) d.reasonCode = f['failure-reason-code'];
          if (f['additional-information']) d.additionalInformation = f['additional-information'];
          return d;
        }),
      };
    }),
  };
}

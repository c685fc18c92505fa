// The entry point the pipeline calls for mail addressed to the DMARC rua= or TLS-RPT address: parse the report
// attachments and store them. The message itself is still delivered to the mailbox by the caller.
import { extractReports } from './extract.ts';
import { DEFAULT_REPORT_LIMITS, type ReportLimits } from './limits.ts';
import { ReportStore, type ReportStoreLike } from './report-store.ts';

export interface IngestOutcome {
  stored: { kind: 'dmarc' | 'tlsrpt'; org: string; reportId: string; duplicate: boolean }[];
  refused: string[];
}

/** The report addresses of a server config, lower-cased; mail to any of them is ingested. */
export function reportAddresses(config: { dmarc: { reportAddress?: string | undefined }; tlsRpt: { reportAddress?: string | undefined } }): Set<string> {
  const set = new Set<string>();
  for (const a of [config.dmarc.reportAddress, config.tlsRpt.reportAddress]) {
    if (a) set.add(a.replace(/^mailto:/i, '').toLowerCase());
  }
  return set;
}

export function isReportRecipient(addresses: ReadonlySet<string>, recipients: readonly string[]): boolean {
  return recipients.some((r) => addresses.has(r.toLowerCase()));
}

export async function ingestReportMessage(store: ReportStoreLike, message: Buffer, now: Date,
  limits: ReportLimits = DEFAULT_REPORT_LIMITS): Promise<IngestOutcome> {
  const { reports, refused } = await extractReports(message, limits);
  const outcome: IngestOutcome = { stored: [], refused };
  for (const r of reports) {
    const fresh = store.add(r, now);
    outcome.stored.push({ kind: r.kind, org: r.orgName, reportId: r.reportId, duplicate: !fresh });
  }
  for (const reason of refused) store.addRefusal(reason, now);
  return outcome;
}

/** What the pipeline's local delivery calls for mail to the report addresses (see pipeline/delivery.ts). */
export interface ReportIngest {
  /** Whether any of these envelope recipients is a DMARC rua= or TLS-RPT address. */
  wants(recipients: readonly string[]): boolean;
  /** Parses and stores the reports the message carries; the caller still delivers it to the mailbox. */
  ingest(message: Buffer): Promise<IngestOutcome>;
}

/**
 * Report ingestion for a server config, or undefined when it names no report address. The database is opened per
 * report mail (a few a day) so the pipeline has no extra handle to close.
 */
export function reportIngestFor(config: { stateDir: string; dmarc: { reportAddress?: string | undefined }; tlsRpt: { reportAddress?: string | undefined } },
  now: () => Date = () => new Date()): ReportIngest | undefined {
  const addresses = reportAddresses(config);
  if (addresses.size === 0) return undefined;
  return {
    wants: (recipients) => isReportRecipient(addresses, recipients),
    async ingest(message) {
      const store = new ReportStore(config.stateDir);
      try {
        return await ingestReportMessage(store, message, now());
      } finally {
        store.close();
      }
    },
  };
}

// Finds the reports in a report mail: DMARC aggregate (.xml, .xml.gz, .zip) and TLS-RPT (.json, .json.gz)
// attachments, named and typed as the large receivers send them. The document type is decided by its content
// after decompression, so a mislabelled attachment is still read correctly.
import { simpleParser } from 'mailparser';
import { gunzipCapped, unzipCapped } from './decompress.ts';
import { parseDmarcAggregate, type DmarcAggregateReport } from './dmarc-aggregate.ts';
import { parseTlsReport, type TlsReport } from './tls-rpt.ts';
import { DEFAULT_REPORT_LIMITS, ReportRefused, type ReportLimits } from './limits.ts';

export type ParsedReport = DmarcAggregateReport | TlsReport;

export interface ExtractResult {
  reports: ParsedReport[];
  /** One line per attachment that was refused, with why (a message without report attachments refuses nothing). */
  refused: string[];
}

type Packing = 'zip' | 'gzip' | 'plain';

function packingOf(filename: string, contentType: string): Packing | null {
  const f = filename.toLowerCase();
  const t = contentType.toLowerCase();
  if (f.endsWith('.zip') || t === 'application/zip' || t === 'application/x-zip-compressed') return 'zip';
  if (f.endsWith('.gz') || f.endsWith('.gzip') || t === 'application/gzip' || t === 'application/x-gzip' || t === 'application/tlsrpt+gzip') return 'gzip';
  if (f.endsWith('.xml') || f.endsWith('.json') || t === 'text/xml' || t === 'application/xml' || t === 'application/json' || t === 'application/tlsrpt+json') return 'plain';
  return null;
}

/** Parses one decompressed document, deciding DMARC or TLS-RPT by its first significant character. */
export function parseReportDocument(doc: Buffer, limits: ReportLimits = DEFAULT_REPORT_LIMITS): ParsedReport {
  let text = doc.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const first = text.trimStart()[0];
  if (first === '{') return parseTlsReport(text, limits);
  if (first === '<') return parseDmarcAggregate(text, limits);
  throw new ReportRefused('attachment is neither XML (DMARC) nor JSON (TLS-RPT)');
}

/** Unpacks one attachment into the documents it holds. */
export function unpackAttachment(content: Buffer, packing: Packing, limits: ReportLimits = DEFAULT_REPORT_LIMITS): Buffer[] {
  if (packing === 'zip') {
    const entries = unzipCapped(content, limits, (name) => /\.(xml|json)$/i.test(name));
    if (entries.length === 0) throw new ReportRefused('zip attachment holds no .xml or .json file');
    return entries.map((e) => e.data);
  }
  if (packing === 'gzip') return [gunzipCapped(content, limits)];
  if (content.length > limits.maxDecompressedBytes) throw new ReportRefused(`attachment larger than ${limits.maxDecompressedBytes} bytes`);
  return [content];
}

export async function extractReports(message: Buffer, limits: ReportLimits = DEFAULT_REPORT_LIMITS): Promise<ExtractResult> {
  const mail = await simpleParser(message, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, skipImageLinks: true });
  const result: ExtractResult = { reports: [], refused: [] };
  const candidates = mail.attachments.flatMap((a) => {
    const packing = packingOf(a.filename ?? '', a.contentType ?? '');
    return packing ? [{ name: a.filename ?? `(${a.contentType})`, packing, content: a.content }] : [];
  });
  if (candidates.length > limits.maxAttachments) {
    result.refused.push(`message has ${candidates.length} report attachments; only the first ${limits.maxAttachments} were read`);
  }
  for (const c of candidates.slice(0, limits.maxAttachments)) {
    try {
      if (c.content.length > limits.maxCompressedBytes) throw new ReportRefused(`attachment larger than ${limits.maxCompressedBytes} bytes`);
      for (const doc of unpackAttachment(c.content, c.packing, limits)) result.reports.push(parseReportDocument(doc, limits));
    } catch (err) {
      if (!(err instanceof ReportRefused)) throw err;
      result.refused.push(`${c.name}: ${err.message}`);
    }
  }
  return result;
}

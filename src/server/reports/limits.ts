// Hard limits on report attachments. Reports come from anyone who can send us mail, so every size is capped before
// and while it is decompressed, and the caps are small: a large receiver's daily report is a few hundred kilobytes.

export interface ReportLimits {
  /** Largest attachment accepted as it arrives (compressed or not). */
  maxCompressedBytes: number;
  /**
   * Largest document after decompression; decompression stops when it is reached. Parsing runs on the server's
   * event loop (fast-xml-parser: about 0.6 s per MiB on a loaded 2-core host), so this also bounds the stall.
   */
  maxDecompressedBytes: number;
  /** Largest number of entries looked at in a zip file. */
  maxZipEntries: number;
  /** Largest number of <record> rows (DMARC) or policies×failure details (TLS-RPT) in one report. */
  maxRecords: number;
  /** Largest number of report attachments read from one message. */
  maxAttachments: number;
}

export const DEFAULT_REPORT_LIMITS: ReportLimits = {
  maxCompressedBytes: 5 * 1024 * 1024,
  maxDecompressedBytes: 4 * 1024 * 1024,
  maxZipEntries: 16,
  maxRecords: 50_000,
  maxAttachments: 8,
};

/** A report refused on purpose (hostile or malformed), as opposed to an internal error. */
export class ReportRefused extends Error {
  override name = 'ReportRefused';
}

// Parsed delivery reports, kept in SQLite (node:sqlite) in the state folder. One row per report, the parsed report
// as JSON; a report sent twice (same organisation and report id) is stored once.
import { DatabaseSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DmarcAggregateReport } from './dmarc-aggregate.ts';
import type { TlsReport } from './tls-rpt.ts';
import type { ParsedReport } from './extract.ts';

export interface StoredRefusal {
  at: Date;
  reason: string;
}

export interface ReportStoreLike {
  add(report: ParsedReport, receivedAt: Date): boolean;
  addRefusal(reason: string, at: Date): void;
}

const REVIVE_DATES = new Set(['begin', 'end']);

export class ReportStore implements ReportStoreLike {
  readonly db: DatabaseSync;

  constructor(stateDir: string) {
    mkdirSync(stateDir, { recursive: true });
    this.db = new DatabaseSync(join(stateDir, 'reports.sqlite'));
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS reports (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('dmarc', 'tlsrpt')),
        org TEXT NOT NULL,
        report_id TEXT NOT NULL,
        begin_at INTEGER NOT NULL,
        end_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (kind, org, report_id)
      );
      CREATE INDEX IF NOT EXISTS reports_end ON reports (end_at);
      CREATE TABLE IF NOT EXISTS refusals (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, reason TEXT NOT NULL);
    `);
  }

  /** Stores a report; false when the same report was stored before. */
  add(report: ParsedReport, receivedAt: Date): boolean {
    const r = this.db.prepare(`INSERT OR IGNORE INTO reports (kind, org, report_id, begin_at, end_at, received_at, body)
      VALUES (?, ?, ?, ?, ?, ?, ?)`).run(report.kind, report.orgName, report.reportId, report.begin.getTime(),
      report.end.getTime(), receivedAt.getTime(), JSON.stringify(report));
    return Number(r.changes) === 1;
  }

  addRefusal(reason: string, at: Date): void {
    this.db.prepare('INSERT INTO refusals (at, reason) VALUES (?, ?)').run(at.getTime(), reason.slice(0, 1000));
  }

  /** Reports whose period ends at or after `since`, oldest first. */
  list(since: Date): { dmarc: DmarcAggregateReport[]; tls: TlsReport[] } {
    const rows = this.db.prepare('SELECT body FROM reports WHERE end_at >= ? ORDER BY end_at').all(since.getTime()) as { body: string }[];
    const dmarc: DmarcAggregateReport[] = [];
    const tls: TlsReport[] = [];
    for (const row of rows) {
      const r = JSON.parse(row.body, (k, v) => (REVIVE_DATES.has(k) && typeof v === 'string' ? new Date(v) : v)) as ParsedReport;
      if (r.kind === 'dmarc') dmarc.push(r);
      else tls.push(r);
    }
    return { dmarc, tls };
  }

  refusals(since: Date): StoredRefusal[] {
    const rows = this.db.prepare('SELECT at, reason FROM refusals WHERE at >= ? ORDER BY at').all(since.getTime()) as { at: number; reason: string }[];
    return rows.map((r) => ({ at: new Date(r.at), reason: r.reason }));
  }

  close(): void {
    this.db.close();
  }
}

// `postern reports`: what DMARC aggregate and TLS-RPT reports say about mail sent as the domain.
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ReportStore } from '../server/reports/report-store.ts';
import { summariseReports, formatReportSummary } from '../server/reports/summary.ts';

export const DEFAULT_STATE_DIR = '/var/lib/postern';

export function register(program: Command): void {
  program.command('reports')
    .description('summarise the DMARC aggregate and TLS-RPT reports received: who sends as the domain, what passes, what fails and why')
    .option('--state <dir>', 'server state folder', DEFAULT_STATE_DIR)
    .option('--days <n>', 'only reports whose period ended in the last N days', '30')
    .option('--json', 'machine-readable output')
    .action((opts: { state: string; days: string; json?: boolean }) => {
      const days = Number(opts.days);
      if (!Number.isInteger(days) || days < 1 || days > 3650) throw new Error(`--days must be a whole number from 1 to 3650, not ${JSON.stringify(opts.days)}`);
      if (!existsSync(join(opts.state, 'reports.sqlite'))) {
        process.stderr.write(`no reports database in ${opts.state} (is --state the server's state folder? it appears once the first report arrives)\n`);
        process.exitCode = 2;
        return;
      }
      const store = new ReportStore(opts.state);
      try {
        const since = new Date(Date.now() - days * 86_400_000);
        const { dmarc, tls } = store.list(since);
        const summary = summariseReports(dmarc, tls, store.refusals(since).length);
        process.stdout.write(opts.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatReportSummary(summary)}\n`);
      } finally {
        store.close();
      }
    });
}

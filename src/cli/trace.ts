// `postern trace <address or Message-ID>`: prints what happened to matching messages, as timelines.
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TRACE_FILE_NAME } from '../server/trace/api.ts';
import { openTrace } from '../server/trace/sqlite-trace.ts';
import { formatTimeline } from '../server/trace/format.ts';

export const DEFAULT_STATE_DIR = '/var/lib/postern';

export function register(program: Command): void {
  program.command('trace')
    .description('show what happened to a message: received, checks, where stored, each delivery attempt')
    .argument('<query>', 'an address (sender or recipient) or a Message-ID')
    .option('--state <dir>', 'server state folder', DEFAULT_STATE_DIR)
    .option('--limit <n>', 'at most this many messages, newest first', '20')
    .action((query: string, opts: { state: string; limit: string }) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        program.error(`--limit: expected a whole number from 1 to 1000, got ${JSON.stringify(opts.limit)}`);
      }
      if (!existsSync(join(opts.state, TRACE_FILE_NAME))) {
        program.error(`no trace in ${opts.state} (expected ${TRACE_FILE_NAME}); pass the server's state folder with --state`);
      }
      const trace = openTrace(opts.state, { readOnly: true });
      try {
        const found = trace.find(query, limit);
        if (found.length === 0) {
          process.stdout.write(`no message found for ${JSON.stringify(query)}\n`);
          process.exitCode = 1;
          return;
        }
        process.stdout.write(found.map(formatTimeline).join('\n\n') + '\n');
      } finally {
        trace.close();
      }
    });
}

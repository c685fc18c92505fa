// `postern queue list|retry <id>|remove <id>`: look at and act on the outbound queue in a server's state folder.
import type { Command } from 'commander';
import { join } from 'node:path';
import { formatQueue, retryNow } from '../server/queue/admin.ts';
import { QUEUE_DIR_NAME } from '../server/queue/service.ts';
import { isSpoolId } from '../server/queue/spool-id.ts';
import { FileSpool } from '../server/queue/spool.ts';

const DEFAULT_STATE_DIR = '/var/lib/postern';

function attach(program: Command, state: string): FileSpool {
  const dir = join(state, QUEUE_DIR_NAME);
  try {
    return FileSpool.attach({ dir, maxMessageBytes: 1 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    program.error(`no queue in ${state} (${dir}: ${code ?? (err as Error).message}); pass the server's state folder with --state`);
  }
}

function checkId(program: Command, id: string): string {
  if (!isSpoolId(id)) program.error(`not a queue id: ${JSON.stringify(id.slice(0, 64))} (24 hex digits, as shown by postern queue list)`);
  return id;
}

export function register(program: Command): void {
  const queue = program.command('queue').description('the outbound queue: list entries, retry now, remove');
  queue.command('list')
    .description('every message in the spool with each recipient\'s status, attempts and last remote reply')
    .option('--state <dir>', 'server state folder', DEFAULT_STATE_DIR)
    .option('--json', 'print JSON instead of text')
    .action(async (opts: { state: string; json?: boolean }) => {
      const entries = await attach(program, opts.state).list();
      process.stdout.write((opts.json ? JSON.stringify(entries, null, 2) : formatQueue(entries, Date.now())) + '\n');
    });
  queue.command('retry')
    .description('make the waiting recipients of a message due now (a running server picks this up within 30 s)')
    .argument('<id>', 'queue id')
    .option('--state <dir>', 'server state folder', DEFAULT_STATE_DIR)
    .action(async (id: string, opts: { state: string }) => {
      const n = await retryNow(attach(program, opts.state), checkId(program, id), Date.now());
      if (n === null) program.error(`no queue entry ${id}`);
      process.stdout.write(n ? `${id}: ${n} recipient(s) due now\n` : `${id}: no recipient is waiting for a retry\n`);
    });
  queue.command('remove')
    .description('delete a message from the queue without delivering it further (no bounce is sent)')
    .argument('<id>', 'queue id')
    .option('--state <dir>', 'server state folder', DEFAULT_STATE_DIR)
    .action(async (id: string, opts: { state: string }) => {
      const removed = await attach(program, opts.state).remove(checkId(program, id));
      if (!removed) program.error(`no queue entry ${id}`);
      process.stdout.write(`${id}: removed\n`);
    });
}

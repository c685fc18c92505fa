// Queue size and age for the host check, read from the spool folder without touching it (FileSpool.attach).
import { join } from 'node:path';
import { FileSpool } from '../queue/spool.ts';
import { QUEUE_DIR_NAME } from '../queue/service.ts';
import type { QueueStats } from './host.ts';

export function spoolQueueStats(stateDir: string): () => Promise<QueueStats> {
  return async () => {
    const spool = FileSpool.attach({ dir: join(stateDir, QUEUE_DIR_NAME), maxMessageBytes: 1 });
    const waiting = (await spool.list()).filter((e) => e.recipients.some((r) => r.status === 'queued' || r.status === 'pending'));
    return { size: waiting.length, oldestReceivedAt: waiting.length ? Math.min(...waiting.map((e) => e.receivedAt)) : null };
  };
}

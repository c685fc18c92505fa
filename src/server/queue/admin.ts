// Operator actions behind `postern queue`: list entries, retry now, remove. They work on the spool files directly
// (a running server picks changes up at its next rescan), so they also work while the server is stopped.
import type { RecipientState } from './api.ts';
import type { FileSpool, StoredEntry } from './spool.ts';

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function recipientLine(r: RecipientState, now: number): string {
  const parts = [`  ${r.status.padEnd(9)} ${r.address}`];
  if (r.attempts) parts.push(`attempts ${r.attempts}`);
  if (r.status === 'queued' && r.nextAttemptAt !== undefined) {
    parts.push(r.nextAttemptAt <= now ? 'next attempt now' : `next attempt in ${age(r.nextAttemptAt - now)}`);
  }
  if (r.mailbox) parts.push(`in ${r.mailbox}`);
  let line = parts.join(', ');
  if (r.lastResult) line += `\n            last: ${r.lastResult}`;
  return line;
}

/** Human-readable listing, oldest first. */
export function formatQueue(entries: StoredEntry[], now: number): string {
  if (!entries.length) return 'queue is empty';
  return entries.map((e) => {
    const head = `${e.id}  ${age(now - e.receivedAt).padStart(4)} old  ${e.size} bytes  from <${e.envelope.from}>${e.messageId ? `  <${e.messageId}>` : ''}`;
    return [head, ...e.recipients.map((r) => recipientLine(r, now))].join('\n');
  }).join('\n\n');
}

/** Makes every waiting recipient of `id` due now. Returns how many, or null when there is no such entry. */
export async function retryNow(spool: FileSpool, id: string, now: number): Promise<number | null> {
  let count = 0;
  const entry = await spool.update(id, (e) => {
    for (const r of e.recipients) {
      if (r.status !== 'queued') continue;
      r.nextAttemptAt = now;
      count++;
    }
    if (count === 0) return false;
  });
  return entry ? count : null;
}

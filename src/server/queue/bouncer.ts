// Sends DSNs: into the sender's INBOX when the sender is one of our accounts, otherwise through the outbound
// queue with the null sender. Never a bounce for a bounce: a message from `<>` gets no DSN.
import { Readable } from 'node:stream';
import type { DeliveryStore } from '../store/api.ts';
import type { Trace } from '../trace/api.ts';
import { buildDsn, headerBlock } from './dsn.ts';
import type { DsnRecipient } from './dsn.ts';
import type { FileSpool, StoredEntry } from './spool.ts';

export interface BouncerOptions {
  spool: FileSpool;
  store: DeliveryStore;
  trace: Trace;
  hostname: string;
  now: () => number;
  warn: (message: string) => void;
}

export class Bouncer {
  private readonly o: BouncerOptions;

  constructor(options: BouncerOptions) {
    this.o = options;
  }

  /**
   * Sends one DSN for `recipients` of `entry`; resolves when it is stored or queued. Never throws. `original` is
   * the message's header block when the caller already has it (else it is read from the spool).
   */
  async send(entry: StoredEntry, recipients: DsnRecipient[], options: { willRetryUntil?: Date; original?: Buffer } = {}): Promise<void> {
    const { willRetryUntil } = options;
    const sender = entry.envelope.from;
    const kind = recipients.every((r) => r.action === 'delayed') ? 'delay notice' : 'bounce';
    if (sender === '' || recipients.length === 0) {
      if (sender === '') {
        this.o.trace.record({ traceId: entry.id, kind: 'dsn', detail: `no ${kind}: the message has the null sender`, sender });
      }
      return;
    }
    try {
      const original = options.original ?? await this.o.spool.readHead(entry.id);
      const message = buildDsn({
        reportingMta: this.o.hostname,
        to: sender,
        arrivalDate: new Date(entry.receivedAt),
        now: new Date(this.o.now()),
        recipients,
        originalHeaders: headerBlock(original),
        ...(willRetryUntil ? { willRetryUntil } : {}),
        ...(entry.messageId ? { originalMessageId: entry.messageId } : {}),
      });
      const local = this.o.store.resolveRecipient(sender);
      if (local.kind === 'local') {
        try {
          for (const account of local.accounts) {
            const r = await this.o.store.deliver(account, message, { mailbox: 'INBOX' });
            const detail = r.ok ? `${kind} stored for ${account} in ${r.mailbox}` : `${kind} for ${account} not stored: ${r.message}`;
            this.o.trace.record({ traceId: entry.id, kind: 'dsn', detail, sender, recipient: account });
          }
          return;
        } catch (err) {
          // The store is failing right now (disk, database busy): queue the notice instead, so it is retried
          // like any mail — it reaches the sender through our own MX.
          this.o.warn(`cannot store ${kind} for ${sender}, queueing it: ${(err as Error).message}`);
        }
      }
      const dsnEntry = await this.o.spool.accept(
        { from: '', to: [sender], client: { remoteAddress: '127.0.0.1', helo: this.o.hostname, tls: false, listener: 'internal' } },
        Readable.from([message]),
      );
      await this.o.spool.enqueueRemote(dsnEntry.id, [sender]);
      this.o.trace.record({ traceId: entry.id, kind: 'dsn', detail: `${kind} queued to ${sender} as ${dsnEntry.id}`, sender, data: { dsnId: dsnEntry.id } });
      this.o.trace.record({ traceId: dsnEntry.id, kind: 'queued', detail: `${kind} for ${entry.id}`, sender: '', recipient: sender });
    } catch (err) {
      // The failure is already recorded on the entry; losing the notice is better than looping on it.
      this.o.warn(`cannot send ${kind} for ${entry.id} to ${sender}: ${(err as Error).message}`);
      this.o.trace.record({ traceId: entry.id, kind: 'error', detail: `${kind} to ${sender} failed: ${(err as Error).message}`, sender });
    }
  }
}

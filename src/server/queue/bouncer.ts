// Sends DSNs: into the sender's INBOX when the sender is one of our accounts, otherwise through the outbound
// queue with the null sender. Never a bounce for a bounce: a message from `<>` gets no DSN. A DSN covers only the
// recipients whose NOTIFY (RFC 3461) asks for it; the others are noted in the trace.
import { Readable } from 'node:stream';
import type { DeliveryStore } from '../store/api.ts';
import type { Trace } from '../trace/api.ts';
import { buildDsn, headerBlock, isSevenBit, returnsWholeMessage, wantsNotice } from './dsn.ts';
import type { DsnRecipient, OriginalMessage } from './dsn.ts';
import type { FileSpool, StoredEntry } from './spool.ts';

const SUCCESS = { kind: 'success notice', notify: 'SUCCESS', none: 'no success DSN' } as const;
const NOTICE = {
  failed: { kind: 'bounce', notify: 'FAILURE', none: 'no failure DSN' },
  delayed: { kind: 'delay notice', notify: 'DELAY', none: 'no delay notice' },
  delivered: SUCCESS,
  expanded: SUCCESS,
  relayed: SUCCESS,
} as const;

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
   * Sends one DSN for those of `recipients` (all of one action) whose NOTIFY asks for it; resolves when it is
   * stored or queued. Never throws. `original` is the message as the caller already has it (else it is read from
   * the spool).
   */
  async send(entry: StoredEntry, recipients: DsnRecipient[], options: { willRetryUntil?: Date; original?: OriginalMessage } = {}): Promise<void> {
    const { willRetryUntil } = options;
    const sender = entry.envelope.from;
    const notice = NOTICE[recipients[0]?.action ?? 'failed'];
    const kind = notice.kind;
    if (sender === '' || recipients.length === 0) {
      if (sender === '') {
        this.o.trace.record({ traceId: entry.id, kind: 'dsn', detail: `no ${kind}: the message has the null sender`, sender });
      }
      return;
    }
    const covered: DsnRecipient[] = [];
    for (const r of recipients) {
      const state = entry.recipients.find((x) => x.address === r.address);
      if (state && !wantsNotice(state, notice.notify)) {
        this.o.trace.record({ traceId: entry.id, kind: 'dsn', detail: `${notice.none} for ${r.address}: NOTIFY=${state.notify?.join(',') ?? ''}`, sender, recipient: r.address });
        continue;
      }
      covered.push(state?.orcpt ? { ...r, originalRecipient: state.orcpt } : r);
    }
    if (covered.length === 0) return;
    try {
      const whole = notice.notify === 'FAILURE' && returnsWholeMessage(entry);
      const original = options.original ?? await this.o.spool.readOriginal(entry, whole);
      const full = whole ? this.returnable(entry, original) : {};
      const message = buildDsn({
        reportingMta: this.o.hostname,
        to: sender,
        arrivalDate: new Date(entry.receivedAt),
        now: new Date(this.o.now()),
        recipients: covered,
        originalHeaders: headerBlock(original.bytes),
        ...(full.fullMessage ? { fullMessage: full.fullMessage } : {}),
        ...(full.headersOnlyReason ? { headersOnlyReason: full.headersOnlyReason } : {}),
        ...(willRetryUntil ? { willRetryUntil } : {}),
        ...(entry.messageId ? { originalMessageId: entry.messageId } : {}),
        ...(entry.envelope.dsn?.envid ? { envelopeId: entry.envelope.dsn.envid } : {}),
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

  /** RET=FULL: the whole message when we have it, it fits the cap and needs no encoding; else why not. */
  private returnable(entry: StoredEntry, original: OriginalMessage): { fullMessage?: Buffer; headersOnlyReason?: string } {
    if (entry.size > this.o.spool.maxMessageBytes) return { headersOnlyReason: `the message (${entry.size} bytes) is larger than the ${this.o.spool.maxMessageBytes} bytes returned in full` };
    if (!original.complete) return { headersOnlyReason: 'the message could not be read back from the queue' };
    // DSNs stay 7-bit: a message/rfc822 part cannot be base64-encoded (RFC 2046 5.2.1).
    if (!isSevenBit(original.bytes)) return { headersOnlyReason: 'the message holds 8-bit data or overlong lines, which this notice cannot carry unencoded' };
    return { fullMessage: original.bytes };
  }
}

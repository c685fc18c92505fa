// The message pipeline as one object for the listeners and main.ts: `receive` decides before the 250,
// `accepted` records the trace and schedules delivery, `start` re-runs whatever a crash left in the spool and
// sweeps for entries whose local delivery failed temporarily.
import type { DNSResolver } from 'mailauth';
import type { DeliveryStore } from '../store/api.ts';
import type { Spool, SpoolEntry } from '../queue/api.ts';
import type { Trace } from '../trace/api.ts';
import type { MessageCheck } from './checks.ts';
import type { DkimKey } from './dkim-signer.ts';
import { deliverEntry } from './delivery.ts';
import { receiveInbound, receiveSubmission } from './receive.ts';
import type { ReceiveContext, ReceiveOutcome } from './receive.ts';
import type { ReportIngest } from '../reports/ingest.ts';

export interface PipelineLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface PipelineOptions {
  hostname: string;
  domain: string;
  localDomains: Set<string>;
  store: DeliveryStore;
  spool: Spool;
  trace: Trace;
  /** DNS for SPF/DKIM/DMARC/ARC (mailauth's resolver signature: like dns.promises.resolve). */
  resolver: DNSResolver;
  dkimKeys: DkimKey[];
  /** Content filters (spam, antivirus) run on inbound mail after the authentication checks. */
  checks: MessageCheck[];
  dmarcRejectAction: 'reject' | 'junk';
  log: PipelineLog;
  /** Entries delivered at the same time. */
  concurrency?: number;
  /** Pause before starting deliveries so that several start together (default 20 ms; 0 starts each at once). */
  batchDelayMs?: number;
  /** How often to look for entries left pending (temporary failures, crash leftovers). */
  sweepIntervalMs?: number;
  /** Parses DMARC/TLS-RPT reports sent to the report addresses (reports/ingest.ts); see delivery.ts. */
  reports?: ReportIngest | undefined;
}

/** In-memory backlog cap; beyond it entries wait for the next sweep (they are safe in the spool). */
const MAX_BACKLOG = 10_000;
/**
 * Bytes of just-accepted messages kept for their delivery, so it need not read back what the spool has just
 * written (and fsynced). Beyond this, delivery reads the spool file as after a restart.
 */
const MAX_FRESH_BYTES = 32 * 1024 * 1024;

interface Fresh { entry: SpoolEntry; chunks: readonly Uint8Array[]; bytes: number }

export class Pipeline {
  readonly #o: PipelineOptions;
  readonly #backlog: string[] = [];
  readonly #busy = new Set<string>();
  readonly #queued = new Set<string>();
  readonly #idle: (() => void)[] = [];
  readonly #fresh = new Map<string, Fresh>();
  #freshBytes = 0;
  #sweepTimer: NodeJS.Timeout | undefined;
  #pumpTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: PipelineOptions) {
    this.#o = options;
  }

  receive(message: Buffer, ctx: ReceiveContext): Promise<ReceiveOutcome> {
    const deps = {
      hostname: this.#o.hostname, domain: this.#o.domain, resolver: this.#o.resolver, dkimKeys: this.#o.dkimKeys,
      checks: this.#o.checks, dmarcRejectAction: this.#o.dmarcRejectAction,
      sendable: (account: string) => this.#o.store.sendableAddresses(account),
    };
    return ctx.envelope.client.listener === 'mx' ? receiveInbound(deps, message, ctx) : receiveSubmission(deps, message, ctx);
  }

  /**
   * Called once the spool holds the message: records the trace and schedules delivery. `chunks`, when given, are
   * the bytes the spool holds for it (delivery uses them instead of reading the file back).
   */
  accepted(entry: SpoolEntry, outcome: Extract<ReceiveOutcome, { accept: true }>, ctx: ReceiveContext, chunks?: readonly Uint8Array[]): void {
    const c = entry.envelope.client;
    const base = { traceId: entry.id, messageId: outcome.messageId, sender: entry.envelope.from };
    this.#o.trace.record({
      ...base, kind: 'received',
      detail: `from ${c.hostname ?? c.helo} [${c.remoteAddress}] on ${c.listener}${c.tls ? ` over ${ctx.tls ?? 'TLS'}` : ''}${entry.envelope.authenticatedUser ? ` as ${entry.envelope.authenticatedUser}` : ''}, ${entry.size} bytes, for ${entry.envelope.to.join(', ')}`,
      data: { ip: c.remoteAddress, helo: c.helo, listener: c.listener, size: entry.size },
    });
    for (const r of entry.envelope.to) this.#o.trace.record({ ...base, kind: 'received', recipient: r, detail: 'envelope recipient' });
    for (const ch of outcome.checks) this.#o.trace.record({ ...base, kind: 'check', detail: `${ch.name}: ${ch.detail}`, data: { check: ch.name, action: ch.action } });
    if (c.listener === 'mx') this.#o.trace.record({ ...base, kind: 'verdict', detail: outcome.verdict === 'junk' ? 'file in Junk' : 'file in INBOX' });
    const bytes = chunks?.reduce((n, x) => n + x.length, 0) ?? 0;
    const keep = chunks !== undefined && bytes === entry.size && this.#freshBytes + bytes <= MAX_FRESH_BYTES;
    if (keep) {
      this.#fresh.set(entry.id, { entry, chunks, bytes });
      this.#freshBytes += bytes;
    }
    if (!this.dispatch(entry.id) && keep) this.#dropFresh(entry.id);
  }

  /**
   * Schedules delivery of a spool entry (the queue may call this for the DSNs it spools). False when it was not
   * scheduled now (stopping, already scheduled, backlog full: the sweep finds it).
   */
  dispatch(id: string): boolean {
    if (this.#stopped || this.#queued.has(id) || this.#busy.has(id) || this.#backlog.length >= MAX_BACKLOG) return false;
    this.#queued.add(id);
    this.#backlog.push(id);
    this.#schedulePump();
    return true;
  }

  /** Processes spooled-but-unfinished entries (after a crash) and starts the periodic sweep. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#sweep();
    const every = this.#o.sweepIntervalMs ?? 60_000;
    this.#sweepTimer = setInterval(() => { void this.#sweep(); }, every);
    this.#sweepTimer.unref();
  }

  /** Stops scheduling and waits for deliveries in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#sweepTimer);
    if (this.#pumpTimer) { clearTimeout(this.#pumpTimer); this.#pumpTimer = undefined; }
    this.#backlog.length = 0;
    this.#queued.clear();
    this.#fresh.clear();
    this.#freshBytes = 0;
    await this.idle();
  }

  /** Resolves when nothing is being delivered or waiting. */
  idle(): Promise<void> {
    if (this.#busy.size === 0 && this.#backlog.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  async #sweep(): Promise<void> {
    try {
      for (const e of await this.#o.spool.recoverable()) this.dispatch(e.id);
    } catch (err) {
      this.#o.log.error({ err }, 'could not list the spool for recovery');
    }
  }

  /**
   * Starts deliveries after a short pause (batchDelayMs) unless a full round is waiting: deliveries that start
   * together share their fsyncs (one journal commit for their files, one folder fsync, one index commit), where
   * one at a time each paid for its own while the next message's spool fsync waited behind it.
   */
  #schedulePump(): void {
    const delay = this.#o.batchDelayMs ?? 20;
    if (delay <= 0 || this.#backlog.length >= (this.#o.concurrency ?? 8)) {
      if (this.#pumpTimer) { clearTimeout(this.#pumpTimer); this.#pumpTimer = undefined; }
      this.#pump();
      return;
    }
    this.#pumpTimer ??= setTimeout(() => { this.#pumpTimer = undefined; this.#pump(); }, delay);
  }

  #pump(): void {
    const limit = this.#o.concurrency ?? 8;
    while (this.#busy.size < limit && this.#backlog.length) {
      const id = this.#backlog.shift()!;
      this.#queued.delete(id);
      this.#busy.add(id);
      void this.#run(id).finally(() => {
        this.#busy.delete(id);
        this.#schedulePump();
        if (this.#busy.size === 0 && this.#backlog.length === 0) for (const f of this.#idle.splice(0)) f();
      });
    }
  }

  #dropFresh(id: string): Fresh | undefined {
    const fresh = this.#fresh.get(id);
    if (fresh) {
      this.#fresh.delete(id);
      this.#freshBytes -= fresh.bytes;
    }
    return fresh;
  }

  async #run(id: string): Promise<void> {
    try {
      const fresh = this.#dropFresh(id);
      if (fresh) {
        await deliverEntry(this.#o, fresh.entry, Buffer.concat(fresh.chunks));
        return;
      }
      const entry = await this.#o.spool.get(id);
      if (entry) await deliverEntry(this.#o, entry);
    } catch (err) {
      // The entry stays in the spool with its recipients pending; the sweep tries again.
      this.#o.log.error({ err, id }, 'delivery of a spooled message failed; will retry');
      this.#o.trace.record({ traceId: id, kind: 'error', detail: `delivery interrupted, will retry: ${String(err)}` });
    }
  }
}

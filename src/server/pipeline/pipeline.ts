// The message pipeline as one object for the listeners and main.ts: `checkInbound` and `receiveSubmission`
// decide before the 250, `accepted` records the trace and schedules delivery, `start` re-runs whatever a crash
// left in the spool (checking inbound mail again when its checks' headers were lost with it) and sweeps for
// entries whose local delivery failed temporarily.
import type { DNSResolver } from 'mailauth';
import type { DeliveryStore } from '../store/api.ts';
import type { Spool, SpoolEntry } from '../queue/api.ts';
import type { Trace } from '../trace/api.ts';
import type { MessageCheck } from './checks.ts';
import type { DkimKey } from './dkim-signer.ts';
import { deliverEntry } from './delivery.ts';
import { JUNK_MARKER, checkInbound, receivedHeaderFor, receiveSubmission } from './receive.ts';
import type { CheckEvent, InboundVerdict, ReceiveContext, ReceiveDeps, ReceiveOutcome } from './receive.ts';
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

/** What accepted() records of the pre-250 decision. */
export type AcceptedDecision = Pick<Extract<ReceiveOutcome, { accept: true }>, 'messageId' | 'verdict' | 'checks'>;

/**
 * An inbound entry of this process whose checks' outcome the pipeline has not been told (SpoolEntry.checksPending;
 * its session is between spool and reply) is left to its listener for this long before a periodic sweep takes it
 * as interrupted (the checks' DNS lookups time out well within it). Those from before this process started, and
 * those accepted() was told of, are taken at once.
 */
const CHECKS_GRACE_MS = 10 * 60_000;

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
  /** Entries with checksPending that accepted() was told of and that have not left the spool yet. */
  readonly #settled = new Set<string>();
  #freshBytes = 0;
  #sweepTimer: NodeJS.Timeout | undefined;
  #pumpTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #startedAt = Date.now();
  readonly #deps: ReceiveDeps;

  constructor(options: PipelineOptions) {
    this.#o = options;
    this.#deps = {
      hostname: options.hostname, domain: options.domain, resolver: options.resolver, dkimKeys: options.dkimKeys,
      checks: options.checks, dmarcRejectAction: options.dmarcRejectAction,
      sendable: (account: string) => options.store.sendableAddresses(account),
    };
  }

  /** Our Received header for a message received in `ctx`. */
  receivedHeader(ctx: ReceiveContext): Buffer {
    return Buffer.from(receivedHeaderFor(this.#deps, ctx));
  }

  /** Inbound mail: authentication and content checks on the message as received. */
  checkInbound(message: Buffer, envelope: ReceiveContext['envelope']): Promise<InboundVerdict> {
    return checkInbound(this.#deps, message, envelope);
  }

  /** Submission: sender check, Message-ID and Date when missing, DKIM signatures. */
  receiveSubmission(message: Buffer, ctx: ReceiveContext): Promise<ReceiveOutcome> {
    return receiveSubmission(this.#deps, message, ctx);
  }

  /**
   * Called once the spool holds the message: records the trace and schedules delivery. `chunks`, when given, are
   * the message to deliver: the bytes the spool holds, with the headers of the inbound checks in front (delivery
   * uses them instead of reading the file back and checking it again).
   */
  accepted(entry: SpoolEntry, outcome: AcceptedDecision, ctx: ReceiveContext, chunks?: readonly Uint8Array[]): void {
    const c = entry.envelope.client;
    const base = { traceId: entry.id, messageId: outcome.messageId, sender: entry.envelope.from };
    this.#o.trace.record({
      ...base, kind: 'received',
      detail: `from ${c.hostname ?? c.helo} [${c.remoteAddress}] on ${c.listener}${c.tls ? ` over ${ctx.tls ?? 'TLS'}` : ''}${entry.envelope.authenticatedUser ? ` as ${entry.envelope.authenticatedUser}` : ''}, ${entry.size} bytes, for ${entry.envelope.to.join(', ')}`,
      data: { ip: c.remoteAddress, helo: c.helo, listener: c.listener, size: entry.size },
    });
    for (const r of entry.envelope.to) this.#o.trace.record({ ...base, kind: 'received', recipient: r, detail: 'envelope recipient' });
    this.#recordChecks(base, outcome.checks);
    if (entry.checksPending) this.#settled.add(entry.id);
    if (c.listener === 'mx') this.#o.trace.record({ ...base, kind: 'verdict', detail: outcome.verdict === 'junk' ? 'file in Junk' : 'file in INBOX' });
    const bytes = chunks?.reduce((n, x) => n + x.length, 0) ?? 0;
    const keep = chunks !== undefined && this.#freshBytes + bytes <= MAX_FRESH_BYTES;
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
    this.#startedAt = Date.now();
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
    this.#settled.clear();
    await this.idle();
  }

  /** Resolves when nothing is being delivered or waiting. */
  idle(): Promise<void> {
    if (this.#busy.size === 0 && this.#backlog.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #recordChecks(base: { traceId: string; messageId?: string | undefined; sender: string }, checks: CheckEvent[]): void {
    for (const ch of checks) this.#o.trace.record({ ...base, kind: 'check', detail: `${ch.name}: ${ch.detail}`, data: { check: ch.name, action: ch.action } });
  }

  async #sweep(): Promise<void> {
    try {
      const now = Date.now();
      const entries = await this.#o.spool.recoverable();
      if (this.#settled.size) { // forget entries removed by other hands (`postern queue remove`)
        const present = new Set(entries.map((e) => e.id));
        for (const id of this.#settled) if (!present.has(id) && !this.#busy.has(id) && !this.#queued.has(id)) this.#settled.delete(id);
      }
      for (const e of entries) {
        // Possibly still between spool and reply in a session of this process (see CHECKS_GRACE_MS).
        if (e.checksPending && e.receivedAt >= this.#startedAt && !this.#settled.has(e.id) && now - e.receivedAt < CHECKS_GRACE_MS) continue;
        this.dispatch(e.id);
      }
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
      let gone: boolean;
      if (fresh) {
        gone = await deliverEntry(this.#o, fresh.entry, Buffer.concat(fresh.chunks));
      } else {
        const entry = await this.#o.spool.get(id);
        if (!entry) gone = true;
        else if (entry.checksPending) gone = await deliverEntry(this.#o, entry, await this.#checkedAgain(entry, entry.checksPending.receivedBytes));
        else gone = await deliverEntry(this.#o, entry);
      }
      if (gone) this.#settled.delete(id);
    } catch (err) {
      // The entry stays in the spool with its recipients pending; the sweep tries again.
      this.#o.log.error({ err, id }, 'delivery of a spooled message failed; will retry');
      this.#o.trace.record({ traceId: id, kind: 'error', detail: `delivery interrupted, will retry: ${String(err)}` });
    }
  }

  /**
   * The message of an inbound entry whose checks' headers were lost (a restart between spool and delivery, or a
   * delivery retried from the spool): the checks run again on the message as received. Whether its sender was
   * told 250 is not known any more, so a message they would refuse now is filed in Junk, never dropped; one whose
   * checks fail outright is delivered without their headers.
   */
  async #checkedAgain(entry: SpoolEntry, receivedBytes: number): Promise<Buffer> {
    const spooled = await this.#o.spool.read(entry.id);
    const received = spooled.subarray(0, receivedBytes);
    const original = spooled.subarray(receivedBytes);
    const base = { traceId: entry.id, sender: entry.envelope.from };
    let verdict: InboundVerdict;
    try {
      verdict = await this.checkInbound(original, entry.envelope);
    } catch (err) {
      this.#o.log.warn({ err, id: entry.id }, 'inbound checks of a spooled message failed; delivering it without them');
      this.#o.trace.record({ ...base, kind: 'check', detail: `checks run again from the spool failed (${String(err)}); delivered without them` });
      return spooled;
    }
    this.#recordChecks({ ...base, messageId: verdict.messageId }, verdict.checks);
    if (!verdict.accept) {
      this.#o.trace.record({ ...base, kind: 'verdict', detail: `file in Junk: checked again from the spool, it would be refused now (${verdict.code} ${verdict.reply}), but its sender may have been told 250` });
      return Buffer.concat([Buffer.from(`${JUNK_MARKER}\r\n`), spooled]);
    }
    this.#o.trace.record({ ...base, kind: 'verdict', detail: `${verdict.verdict === 'junk' ? 'file in Junk' : 'file in INBOX'} (checked again from the spool)` });
    return Buffer.concat([verdict.headers, received, verdict.message ?? original]);
  }
}

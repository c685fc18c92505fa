// The outbound scheduler: picks due recipients from the spool, groups them per destination (recipient domain, or
// the relay), delivers with limited concurrency per destination over reused sessions, and records every outcome:
// sent, retried with backoff, or failed with a DSN. All state lives in the spool's files, so a restart resumes.
import type { Trace } from '../trace/api.ts';
import type { RecipientState } from './api.ts';
import { domainOf } from './address.ts';
import type { Bouncer } from './bouncer.ts';
import { statusFromReply, wantsNotice } from './dsn.ts';
import type { DsnRecipient, OriginalMessage } from './dsn.ts';
import type { StsPolicySource } from './mta-sts.ts';
import { resolveRoute } from './route.ts';
import type { RelaySettings, Route } from './route.ts';
import type { QueueResolver } from './mx.ts';
import { isTlsFailure, OutboundSession } from './smtp-client.ts';
import type { OutboundClientOptions, OutboundDsn, OutboundTarget, RecipientOutcome } from './smtp-client.ts';
import { isDone } from './spool.ts';
import type { FileSpool, StoredEntry } from './spool.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Delays after the 1st, 2nd, … failed attempt; the last one repeats. Roughly Postfix's 5 min … 4 h. */
export const DEFAULT_RETRY_SCHEDULE_MS = [5 * MINUTE, 10 * MINUTE, 20 * MINUTE, 40 * MINUTE, HOUR, 2 * HOUR, 4 * HOUR];


export interface SchedulerOptions {
  spool: FileSpool;
  bouncer: Bouncer;
  trace: Trace;
  /** Our host name (EHLO). */
  hostname: string;
  resolver: QueueResolver;
  stsPolicy: StsPolicySource;
  /** All outbound through this smarthost when set. */
  relay?: RelaySettings;
  /** Port of remote MXs; 25 except in tests. */
  mxPort?: number;
  retryScheduleMs?: number[];
  /** Give up after this long in the queue (RFC 5321 4.5.4.1: 4–5 days). */
  maxAgeMs?: number;
  /** Send a "delayed" DSN once a recipient has waited this long. */
  delayNoticeMs?: number;
  /** Parallel sessions per destination (default 5, Postfix's initial destination concurrency). */
  perDestinationConcurrency?: number;
  /** Parallel sessions overall (default 50). */
  totalConcurrency?: number;
  /** Recipients per SMTP transaction. */
  maxRecipientsPerTransaction?: number;
  /** Full rescan of the spool folder (picks up `postern queue retry`). */
  rescanMs?: number;
  /** How long an idle session is kept for reuse. */
  idleSessionMs?: number;
  client?: Pick<OutboundClientOptions, 'ca' | 'connectTimeoutMs' | 'socketTimeoutMs'>;
  now?: () => number;
  warn?: (message: string) => void;
}

interface Job {
  entryId: string;
  recipients: string[];
}

interface Destination {
  key: string;
  /** Recipient domain (MX mode) or null (relay). */
  domain: string | null;
  jobs: Job[];
  workers: number;
}


/**
 * Idle sessions are shared per destination and TLS policy: a session opened without MTA-STS (maybe in plaintext
 * after a failed handshake) must never carry mail once the domain's policy says `enforce`.
 */
function idleKey(d: Destination, route: Route & { kind: 'targets' }): string {
  return `${d.key}|${route.sts}`;
}

/** The DSN parameters of `entry` for these recipients, for a next hop that announces DSN; none when it has none. */
function outboundDsn(entry: StoredEntry, recipients: string[]): OutboundDsn | undefined {
  const perRecipient = new Map<string, { notify?: RecipientState['notify']; orcpt?: string }>();
  for (const r of entry.recipients) {
    if (!recipients.includes(r.address) || (!r.notify && !r.orcpt)) continue;
    perRecipient.set(r.address, { ...(r.notify ? { notify: r.notify } : {}), ...(r.orcpt ? { orcpt: r.orcpt } : {}) });
  }
  const d = entry.envelope.dsn;
  if (!d?.ret && !d?.envid && perRecipient.size === 0) return undefined;
  return { ...(d?.ret ? { ret: d.ret } : {}), ...(d?.envid ? { envid: d.envid } : {}), recipients: perRecipient };
}

export class Scheduler {
  private readonly o: SchedulerOptions;
  private readonly now: () => number;
  private readonly entries = new Map<string, StoredEntry>();
  /** `id\0recipient` currently being delivered. */
  private readonly inFlight = new Set<string>();
  private readonly destinations = new Map<string, Destination>();
  private readonly idle = new Map<string, { session: OutboundSession; timer: NodeJS.Timeout }[]>();
  private readonly running = new Set<Promise<void>>();
  /** Every open session, idle or busy, so stop() can cut them at its deadline. */
  private readonly sessions = new Set<OutboundSession>();
  private activeWorkers = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastRescan = 0;
  private stopping = false;
  private kickPending = false;
  private started = false;
  private readonly onQueued = (id: string): void => { void this.reload(id).then(() => this.kickSoon()); };
  private readonly onFailed = (entry: StoredEntry, recipients: string[], original: OriginalMessage): void => {
    this.reportLocal(entry, recipients, original, (r) => ({ address: r.address, action: 'failed', status: statusFromReply(r.lastResult ?? '', '5.0.0'), diagnostic: r.lastResult ?? 'delivery failed' }));
  };
  /** Stored locally with NOTIFY=SUCCESS: a success DSN (RFC 3464 Action: delivered, or expanded for an alias list). */
  private readonly onDelivered = (entry: StoredEntry, recipients: string[], original: OriginalMessage): void => {
    this.reportLocal(entry, recipients, original, (r) => ({ address: r.address, action: r.expanded ? 'expanded' : 'delivered', status: '2.0.0', diagnostic: '' }));
  };

  /** A DSN for local delivery results the spool reported; the entry goes once it is out, if it is done. */
  private reportLocal(entry: StoredEntry, recipients: string[], original: OriginalMessage, toDsn: (r: RecipientState) => DsnRecipient): void {
    const dsn = entry.recipients.filter((r) => recipients.includes(r.address)).map(toDsn);
    void this.o.bouncer.send(entry, dsn, { original }).then(() => this.o.spool.removeIfDone(entry.id)).catch(() => {});
  }

  constructor(options: SchedulerOptions) {
    this.o = options;
    this.now = options.now ?? Date.now;
  }

  private get retrySchedule(): number[] {
    return this.o.retryScheduleMs?.length ? this.o.retryScheduleMs : DEFAULT_RETRY_SCHEDULE_MS;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.o.spool.on('queued', this.onQueued);
    this.o.spool.on('failed', this.onFailed);
    this.o.spool.on('delivered', this.onDelivered);
    await this.rescan();
    this.kick();
  }

  /** Stops scheduling; lets in-flight deliveries finish until `deadline`, then closes every session. */
  async stop(deadline: number): Promise<void> {
    this.stopping = true;
    this.o.spool.off('queued', this.onQueued);
    this.o.spool.off('failed', this.onFailed);
    this.o.spool.off('delivered', this.onDelivered);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const d of this.destinations.values()) d.jobs.length = 0;
    const wait = Math.max(0, deadline - Date.now());
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.running]),
      new Promise<void>((resolve) => { timeout = setTimeout(resolve, wait); }),
    ]);
    clearTimeout(timeout);
    for (const list of this.idle.values()) for (const { session, timer } of list) { clearTimeout(timer); session.close(); }
    this.idle.clear();
    // Deliveries still running at the deadline are cut; their recipients stay queued and go out after restart.
    for (const session of this.sessions) session.destroy();
    this.sessions.clear();
  }

  /** Loads every entry from disk (start, periodic rescans). */
  private async rescan(): Promise<void> {
    this.lastRescan = this.now();
    const all = await this.o.spool.list();
    const seen = new Set<string>();
    for (const e of all) {
      seen.add(e.id);
      this.entries.set(e.id, e);
    }
    for (const id of this.entries.keys()) if (!seen.has(id)) this.entries.delete(id);
  }

  private async reload(id: string): Promise<void> {
    const e = await this.o.spool.load(id).catch(() => null);
    if (e) this.entries.set(id, e);
    else this.entries.delete(id);
  }

  /** Coalesces the kicks of a burst of events (many messages queued at once) into one scan. */
  private kickSoon(): void {
    if (this.kickPending || this.stopping) return;
    this.kickPending = true;
    setImmediate(() => {
      this.kickPending = false;
      this.kick();
    });
  }

  /** Schedules work now, and a timer for the next due recipient or rescan. */
  private kick(): void {
    if (this.stopping) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const now = this.now();
    let nextDue = Number.POSITIVE_INFINITY;
    for (const e of this.entries.values()) {
      for (const r of e.recipients) {
        if (r.status !== 'queued' || this.inFlight.has(`${e.id}\0${r.address}`)) continue;
        const due = r.nextAttemptAt ?? 0;
        if (due > now) { nextDue = Math.min(nextDue, due); continue; }
        try {
          this.assign(e, r.address);
        } catch (err) {
          // Only a hand-edited state file can hold an address without a domain; leave it for the operator.
          this.warn(`queue entry ${e.id}: cannot route ${JSON.stringify(r.address)}: ${(err as Error).message}`);
          r.nextAttemptAt = now + HOUR; // in memory only: no warning storm
        }
      }
    }
    for (const d of this.destinations.values()) this.spawnWorkers(d);
    const rescanMs = this.o.rescanMs ?? 30_000;
    const wakeAt = Math.min(nextDue, this.lastRescan + rescanMs);
    this.timer = setTimeout(() => {
      this.timer = null;
      const needRescan = this.now() >= this.lastRescan + rescanMs;
      void (needRescan ? this.rescan() : Promise.resolve()).catch((err) => this.warn(`rescan failed: ${(err as Error).message}`)).then(() => this.kick());
    }, Math.max(10, Math.min(wakeAt - now, 2 ** 31 - 1)));
    this.timer.unref?.();
  }

  private destinationKey(recipient: string): { key: string; domain: string | null } {
    if (this.o.relay) return { key: 'relay', domain: null };
    const domain = domainOf(recipient);
    return { key: `mx:${domain}`, domain };
  }

  private assign(entry: StoredEntry, recipient: string): void {
    const { key, domain } = this.destinationKey(recipient);
    let d = this.destinations.get(key);
    if (!d) {
      d = { key, domain, jobs: [], workers: 0 };
      this.destinations.set(key, d);
    }
    this.inFlight.add(`${entry.id}\0${recipient}`);
    const max = this.o.maxRecipientsPerTransaction ?? 50;
    const job = d.jobs.find((j) => j.entryId === entry.id && j.recipients.length < max);
    if (job) job.recipients.push(recipient);
    else d.jobs.push({ entryId: entry.id, recipients: [recipient] });
  }

  private spawnWorkers(d: Destination): void {
    const perDest = this.o.perDestinationConcurrency ?? 5;
    const total = this.o.totalConcurrency ?? 50;
    while (d.jobs.length > d.workers && d.workers < perDest && this.activeWorkers < total) {
      d.workers++;
      this.activeWorkers++;
      const p = this.work(d).catch((err) => this.warn(`delivery worker for ${d.key} failed: ${(err as Error).stack ?? err}`)).finally(() => {
        d.workers--;
        this.activeWorkers--;
        this.running.delete(p);
        if (d.workers === 0 && d.jobs.length === 0) this.destinations.delete(d.key);
        this.kickSoon();
      });
      this.running.add(p);
    }
  }

  private warn(message: string): void {
    this.o.warn?.(message);
  }

  /** One worker: resolves the route once, then delivers jobs for this destination until none are left. */
  private async work(d: Destination): Promise<void> {
    let state: { route: Route | null; session: OutboundSession | null } = { route: null, session: null };
    try {
      while (d.jobs.length && !this.stopping) {
        const job = d.jobs.shift()!;
        try {
          state = await this.deliverJob(d, job, state.route, state.session);
        } catch (err) {
          // Disk or state trouble: keep the recipients queued, but not due again for a minute (no busy loop).
          this.warn(`delivery of ${job.entryId} to ${job.recipients.join(', ')} failed: ${(err as Error).message}`);
          const e = this.entries.get(job.entryId);
          for (const r of e?.recipients ?? []) if (job.recipients.includes(r.address)) r.nextAttemptAt = this.now() + MINUTE;
          state.session?.close();
          state = { route: state.route, session: null };
          this.release(job);
        }
      }
    } finally {
      if (state.session?.usable && state.route?.kind === 'targets') this.putIdle(idleKey(d, state.route), state.session);
      else state.session?.close();
    }
  }

  /** Delivers one job; returns the route and the session to use for the next job of this destination. */
  private async deliverJob(d: Destination, job: Job, knownRoute: Route | null, current: OutboundSession | null): Promise<{ route: Route | null; session: OutboundSession | null }> {
    let session = current;
    const entry = this.entries.get(job.entryId) ?? (await this.o.spool.load(job.entryId));
    if (!entry) {
      this.release(job);
      return { route: knownRoute, session };
    }
    const route = knownRoute ?? await this.route(d, entry);
    if (route.kind !== 'targets') {
      const outcomes = job.recipients.map((address): RecipientOutcome => ({ address, ok: false, permanent: route.kind === 'permanent', reply: route.reason }));
      await this.record(entry, outcomes, null, route.kind === 'permanent' ? route.status : '4.4.3');
      this.release(job);
      return { route, session };
    }
    let connectError = '';
    let reused = Boolean(session?.usable);
    if (!session?.usable) {
      session = this.takeIdle(idleKey(d, route));
      reused = session !== null;
      if (!session) {
        const opened = await this.connect(entry, route.targets);
        session = opened.session;
        connectError = opened.error;
      }
    }
    if (!session) {
      const outcomes = job.recipients.map((address): RecipientOutcome => ({ address, ok: false, permanent: false, reply: connectError }));
      await this.record(entry, outcomes, null, '4.4.1');
      this.release(job);
      // Every host refused us: the other jobs for this destination would fail the same way now.
      for (const other of d.jobs.splice(0)) {
        const e = this.entries.get(other.entryId) ?? (await this.o.spool.load(other.entryId));
        if (e) await this.record(e, other.recipients.map((address) => ({ address, ok: false, permanent: false, reply: connectError })), null, '4.4.1');
        this.release(other);
      }
      return { route, session: null };
    }
    const message = await this.o.spool.readOutbound(entry.id, entry);
    const dsn = outboundDsn(entry, job.recipients);
    let result = await session.send(entry.envelope.from, job.recipients, message, dsn);
    if (result.connectionLost && reused && !result.messageStarted) {
      // A reused session may have been closed by the server while idle; nothing of the message went out,
      // so one fresh connection is tried before this counts as a failed attempt.
      const opened = await this.connect(entry, route.targets);
      if (opened.session) {
        session = opened.session;
        result = await session.send(entry.envelope.from, job.recipients, message, dsn);
      }
    }
    await this.record(entry, result.outcomes, session, '4.0.0', route.sts);
    this.release(job);
    return { route, session: result.connectionLost ? null : session };
  }

  private release(job: Job): void {
    for (const r of job.recipients) this.inFlight.delete(`${job.entryId}\0${r}`);
  }

  private route(d: Destination, entry: StoredEntry): Promise<Route> {
    return resolveRoute({
      resolver: this.o.resolver,
      stsPolicy: this.o.stsPolicy,
      ...(this.o.relay ? { relay: this.o.relay } : {}),
      mxPort: this.o.mxPort ?? 25,
      warn: (m) => this.warn(m),
      note: (detail) => this.o.trace.record({ traceId: entry.id, kind: 'check', detail }),
    }, d.domain);
  }

  private async connect(entry: StoredEntry, targets: OutboundTarget[]): Promise<{ session: OutboundSession | null; error: string }> {
    const errors: string[] = [];
    const tries = targets.slice(0, 10);
    for (let i = 0; i < tries.length; i++) {
      const t = tries[i]!;
      try {
        const session = await OutboundSession.open(t, { heloName: this.o.hostname, ...this.o.client });
        this.sessions.add(session);
        session.onClose(() => this.sessions.delete(session));
        return { session, error: '' };
      } catch (err) {
        const e = err as Error & { response?: string };
        const reason = (e.response ?? e.message).replace(/[\r\n]+/g, ' ').slice(0, 300);
        errors.push(`${t.hostname}[${t.address}]:${t.port}: ${reason}`);
        this.o.trace.record({ traceId: entry.id, kind: 'attempt', detail: `cannot use ${t.hostname} [${t.address}]:${t.port}: ${reason}`, data: { host: t.hostname, address: t.address } });
        // Opportunistic TLS (no MTA-STS enforce): a broken STARTTLS handshake must not block delivery; like
        // Postfix at security level `may`, the same host is tried once more without TLS.
        if (t.tls === 'opportunistic' && isTlsFailure(err)) tries.splice(i + 1, 0, { ...t, tls: 'plaintext' });
      }
    }
    return { session: null, error: errors.join('; ') || 'no target to connect to' };
  }

  private takeIdle(key: string): OutboundSession | null {
    const list = this.idle.get(key);
    while (list?.length) {
      const { session, timer } = list.pop()!;
      clearTimeout(timer);
      if (session.usable) return session;
    }
    return null;
  }

  private putIdle(key: string, session: OutboundSession): void {
    if (this.stopping) { session.close(); return; }
    const list = this.idle.get(key) ?? [];
    this.idle.set(key, list);
    const item = {
      session,
      timer: setTimeout(() => {
        const i = list.indexOf(item);
        if (i >= 0) list.splice(i, 1);
        if (!list.length) this.idle.delete(key);
        session.close();
      }, this.o.idleSessionMs ?? 5000),
    };
    item.timer.unref?.();
    list.push(item);
  }

  /** Writes outcomes to the entry, traces them, sends DSNs, and removes the entry when it is done. */
  private async record(entry: StoredEntry, outcomes: RecipientOutcome[], session: OutboundSession | null, fallbackStatus: string, sts?: string): Promise<void> {
    const now = this.now();
    const maxAge = this.o.maxAgeMs ?? 5 * 24 * HOUR;
    const delayNotice = this.o.delayNoticeMs ?? 4 * HOUR;
    const failures: DsnRecipient[] = [];
    const delays: DsnRecipient[] = [];
    const successes: DsnRecipient[] = [];
    const remote = session?.target.hostname;
    const updated = await this.o.spool.update(entry.id, (e) => {
      for (const out of outcomes) {
        const r = e.recipients.find((x) => x.address === out.address);
        if (!r || r.status !== 'queued') continue;
        r.attempts += 1;
        r.lastResult = out.reply;
        if (out.ok) {
          r.status = 'sent';
          delete r.nextAttemptAt;
          // A next hop that announces DSN got the recipient's NOTIFY and reports success itself (RFC 3461 5.2.2).
          if (wantsNotice(r, 'SUCCESS') && !session?.passesDsn) successes.push({ address: r.address, action: 'relayed', status: '2.0.0', diagnostic: out.reply, ...(remote ? { remoteMta: remote } : {}) });
          continue;
        }
        const status = statusFromReply(out.reply, out.permanent ? fallbackStatus.replace(/^4/, '5') : fallbackStatus);
        const base = { address: r.address, status, diagnostic: out.reply, ...(remote ? { remoteMta: remote } : {}) };
        if (out.permanent) {
          r.status = 'failed';
          delete r.nextAttemptAt;
          failures.push({ ...base, action: 'failed' });
        } else if (now - e.receivedAt >= maxAge) {
          r.status = 'failed';
          delete r.nextAttemptAt;
          r.lastResult = `gave up after ${Math.round((now - e.receivedAt) / HOUR)} h in the queue; last error: ${out.reply}`;
          failures.push({ ...base, status: '4.4.7', action: 'failed', diagnostic: r.lastResult });
        } else {
          const schedule = this.retrySchedule;
          r.nextAttemptAt = now + (schedule[Math.min(r.attempts - 1, schedule.length - 1)] ?? HOUR);
          if (!r.delayNotified && now - e.receivedAt >= delayNotice) {
            r.delayNotified = true;
            delays.push({ ...base, action: 'delayed' });
          }
        }
      }
    }, { skipWriteWhenDone: true });
    if (!updated) return;
    this.entries.set(updated.id, updated);
    for (const out of outcomes) {
      const where = remote ? ` via ${remote}` : '';
      const data: Record<string, string | number | boolean | null> = { secure: session?.secure ?? false };
      if (remote) data.host = remote;
      if (sts) data.mtaSts = sts;
      this.o.trace.record({ traceId: entry.id, kind: 'attempt', detail: `${out.address}${where}${session ? (session.secure ? ' over TLS' : ' without TLS') : ''}: ${out.reply}`, sender: entry.envelope.from, recipient: out.address, data });
      const r = updated.recipients.find((x) => x.address === out.address);
      const kind = r?.status === 'sent' ? 'delivered' : r?.status === 'failed' ? 'failed' : 'deferred';
      const detail = kind === 'deferred' && r?.nextAttemptAt ? `${out.reply} (next attempt ${new Date(r.nextAttemptAt).toISOString()})` : r?.lastResult ?? out.reply;
      this.o.trace.record({ traceId: entry.id, kind, detail, sender: entry.envelope.from, recipient: out.address, ...(updated.messageId ? { messageId: updated.messageId } : {}), data });
      if (r?.status === 'sent' && r.notify && session?.passesDsn) {
        this.o.trace.record({ traceId: entry.id, kind: 'dsn', detail: `NOTIFY=${r.notify.join(',')} passed on to ${remote}, which announces DSN: no success DSN from here`, sender: entry.envelope.from, recipient: out.address });
      }
    }
    if (successes.length) await this.o.bouncer.send(updated, successes);
    if (failures.length) await this.o.bouncer.send(updated, failures);
    if (delays.length) await this.o.bouncer.send(updated, delays, { willRetryUntil: new Date(updated.receivedAt + maxAge) });
    // The final state was not written (skipWriteWhenDone): remove the entry outright once its DSNs are out.
    if (isDone(updated) ? await this.o.spool.remove(updated.id) : await this.o.spool.removeIfDone(updated.id)) {
      this.entries.delete(updated.id);
      this.o.trace.record({ traceId: updated.id, kind: 'removed', detail: 'every recipient done; removed from the queue' });
    }
  }
}

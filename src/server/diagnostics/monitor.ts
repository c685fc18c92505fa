// Host monitoring: runs the blocklist and certificate checks on a schedule, keeps the latest results in the state
// folder, and when a check newly fails (a new listing, a certificate about to expire) delivers ONE notice to the
// postmaster's mailbox. A failure that persists is not re-announced; once it clears and fails again, it is.
import { readFile, rename, open } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { DeliveryStore } from '../store/api.ts';
import type { Service } from '../service.ts';
import type { CheckResult } from './check.ts';

export const MONITOR_STATE_FILE = 'monitor.json';

export interface MonitorRecord {
  checkedAt: string;
  results: CheckResult[];
  /** When the last notice was delivered, and for which check ids. */
  lastNotice?: { at: string; ids: string[] };
}

export interface MonitorOptions {
  /** The checks to run each time (blocklists and certificate). */
  run: () => Promise<CheckResult[]>;
  store: Pick<DeliveryStore, 'resolveRecipient' | 'deliver'>;
  postmaster: string;
  hostname: string;
  stateDir: string;
  intervalMs: number;
  /** Delay before the first run after start. */
  firstRunMs?: number;
  now?: () => Date;
  log?: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

export interface MonitorRun {
  results: CheckResult[];
  /** Checks that newly failed in this run (a notice was sent for them when non-empty). */
  newlyFailing: CheckResult[];
  noticeSent: boolean;
}

/** Reads the last recorded run; null when there is none or it is unreadable (then every failure counts as new). */
export async function readMonitorRecord(stateDir: string): Promise<MonitorRecord | null> {
  try {
    const text = await readFile(join(stateDir, MONITOR_STATE_FILE), 'utf8');
    const r = JSON.parse(text) as MonitorRecord;
    return Array.isArray(r.results) ? r : null;
  } catch {
    return null;
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

export async function composeNotice(o: { postmaster: string; hostname: string; now: Date; newlyFailing: CheckResult[]; stillFailing: CheckResult[] }): Promise<Buffer> {
  const n = o.newlyFailing.length;
  const lines = [
    `The scheduled checks on ${o.hostname} found ${n} new problem${n === 1 ? '' : 's'}:`, '',
    ...o.newlyFailing.flatMap((r) => [`* ${r.id}: ${r.message}`, `  fix: ${r.fix}`, '']),
  ];
  if (o.stillFailing.length) lines.push('Still failing since an earlier notice:', '', ...o.stillFailing.map((r) => `* ${r.id}: ${r.message}`), '');
  lines.push('You get one notice per new problem, not one per check run.', `Run \`postern doctor --local\` on ${o.hostname} for the full picture.`);
  return new MailComposer({
    from: { name: `Postern monitor on ${o.hostname}`, address: o.postmaster },
    to: o.postmaster,
    subject: `[postern] ${o.hostname}: ${n} new problem${n === 1 ? '' : 's'} (${o.newlyFailing.map((r) => r.id).join(', ').slice(0, 150)})`,
    date: o.now,
    messageId: `<monitor.${o.now.getTime()}.${randomBytes(6).toString('hex')}@${o.hostname}>`,
    text: lines.join('\n'),
    headers: { 'Auto-Submitted': 'auto-generated' },
  }).compile().build();
}

export class Monitor {
  private readonly o: MonitorOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<MonitorRun | null> | undefined;
  private stopped = false;

  constructor(options: MonitorOptions) {
    this.o = options;
  }

  /** One run: checks, compare with the last record, notify about new failures, record. */
  async runOnce(): Promise<MonitorRun> {
    const now = (this.o.now ?? (() => new Date()))();
    const previous = await readMonitorRecord(this.o.stateDir);
    const results = await this.o.run();
    const failedBefore = new Set((previous?.results ?? []).filter((r) => r.status === 'fail').map((r) => r.id));
    const failing = results.filter((r) => r.status === 'fail');
    const newlyFailing = failing.filter((r) => !failedBefore.has(r.id));
    const stillFailing = failing.filter((r) => failedBefore.has(r.id));
    const record: MonitorRecord = { checkedAt: now.toISOString(), results, ...(previous?.lastNotice ? { lastNotice: previous.lastNotice } : {}) };
    let noticeSent = false;
    if (newlyFailing.length) {
      // If delivery throws, nothing is recorded: the next run sees the same failures as new and tries again.
      await this.deliverNotice(await composeNotice({ postmaster: this.o.postmaster, hostname: this.o.hostname, now, newlyFailing, stillFailing }));
      record.lastNotice = { at: now.toISOString(), ids: newlyFailing.map((r) => r.id) };
      noticeSent = true;
      this.o.log?.('warn', 'monitor: new problems, notice delivered to the postmaster', { ids: record.lastNotice.ids });
    }
    await writeAtomically(join(this.o.stateDir, MONITOR_STATE_FILE), `${JSON.stringify(record, null, 2)}\n`);
    return { results, newlyFailing, noticeSent };
  }

  private async deliverNotice(message: Buffer): Promise<void> {
    const r = this.o.store.resolveRecipient(this.o.postmaster);
    if (r.kind !== 'local' || r.accounts.length === 0) throw new Error(`monitor: the postmaster address ${this.o.postmaster} is not a local mailbox or alias`);
    for (const account of r.accounts) {
      const d = await this.o.store.deliver(account, message, { mailbox: 'INBOX' });
      if (!d.ok) throw new Error(`monitor: notice to ${account} refused: ${d.message}`);
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.runOnce().catch((err: unknown) => {
        this.o.log?.('error', 'monitor: run failed', { err: (err as Error).message });
        return null;
      }).finally(() => {
        this.running = undefined;
        this.schedule(this.o.intervalMs);
      });
    }, ms);
    this.timer.unref();
  }

  start(): void {
    this.stopped = false;
    this.schedule(this.o.firstRunMs ?? 60_000);
  }

  /** Stops scheduling; waits for a run in progress until `deadline` (ms since epoch). */
  async stop(deadline: number): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.running) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([this.running, new Promise((r) => { t = setTimeout(r, Math.max(0, deadline - Date.now())); })]);
      clearTimeout(t);
    }
  }

  /** The lifecycle main.ts drives; it has no listeners. */
  asService(): Service {
    return {
      name: 'monitor',
      start: async () => { this.start(); return []; },
      stop: (deadline) => this.stop(deadline),
    };
  }
}


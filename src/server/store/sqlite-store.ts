// The MailStore on node:sqlite + Maildir files. Index changes are synchronous transactions; a message file is
// durable (fsynced, renamed, folder fsynced) before the transaction that makes it visible commits, and a file
// is removed only after the transaction that forgot it (through pending_unlink, replayed at start).
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import type { Logger } from 'pino';
import { DeliveryThread } from './delivery-thread.ts';
import { applyFlags, flagList, keywordsColumn, keywordsFromColumn, maildirInfo, parseFlags, sharedFlagList } from './flags.ts';
import { accountDir, deliveryKeyFromFileName, fsyncDir, linkMessageFile, syncPath, writeMessageFile, ensureMaildir } from './maildir.ts';
import { parseMessage, toCrlf, type ParsedMessage } from './mime.ts';
import { envelopeWireText } from './imap-envelope.ts';
import { folderName, normalizeAddress, normalizeMailboxName } from './names.ts';
import { DUMMY_HASH, verifyPasswordHash } from './password.ts';
import { openSchema } from './schema.ts';
import { compileSearch, registerSearchFunctions, uidSetSql, UID_MAX, usesFts } from './search.ts';
import {
  MAILBOX_DELIMITER, StoreError,
  type AccountInfo, type AliasConfig, type AppendOptions, type AppendResult, type ChangesSince, type CopyResult,
  type DeliveryOptions, type DeliveryResult, type ExpungeResult, type FetchedMessage, type FetchWanted, type MailboxInfo,
  type MailboxStatus, type MailStore, type MessageMeta, type OpenedMailbox, type QuotaUsage, type ReconcileReport, type RecipientResolution,
  type SearchKey, type SpecialUse, type StoreEvent, type StoreFlagsOperation, type StoreFlagsResult, type StoreListener,
  type StoreNotifier, type UidSet, type UserConfig,
} from './types.ts';

export const DEFAULT_MAILBOXES: ReadonlyArray<[string, SpecialUse | null]> = [
  ['INBOX', null], ['Drafts', '\\Drafts'], ['Sent', '\\Sent'], ['Junk', '\\Junk'], ['Trash', '\\Trash'], ['Archive', '\\Archive'],
];
const MAX_MAILBOXES_PER_ACCOUNT = 1000;
const MAX_ALIAS_DEPTH = 5;
const UID_CACHE_MAILBOXES = 64;
/** Deliveries are remembered longer than a spool entry can live (the queue gives up after 5 days). */
const DELIVERY_MEMORY_MS = 7 * 24 * 3600 * 1000;
const DELIVERY_PRUNE_EVERY_MS = 3600 * 1000;
const MAX_DELIVERY_ID_LENGTH = 1000;

export interface SqliteStoreOptions {
  stateDir: string;
  logger: Logger;
  /** Largest message append/deliver accepts (bytes). */
  maxMessageBytes: number;
  /** Expunge records kept per mailbox for QRESYNC (default VANISHED_KEEP); older ones are pruned. */
  vanishedKeep?: number;
  /**
   * Set for the delivery thread's store (delivery-worker.ts): every change it commits goes to the main thread's
   * store instead of its own notifier (which no session listens to).
   */
  forward?: { event(event: StoreEvent): void };
}

/**
 * QRESYNC needs to know which UIDs vanished since a client's MODSEQ. Records beyond this many per mailbox are
 * pruned (oldest first) so the table cannot grow forever; a client older than the pruned range is told every
 * UID it may have had that is gone (RFC 7162 3.2.5.1 allows reporting more than vanished since its MODSEQ).
 */
const VANISHED_KEEP = 20_000;

interface MailboxRow {
  id: number; account: string; name: string; folder: string; special_use: string | null;
  uid_validity: number; uid_next: number; highest_modseq: number;
}
interface MessageRow {
  id: number; uid: number; content_id: number; file: string; flags: number; keywords: string; modseq: number;
  size: number; internal_date: number; internal_zone: number;
}
type FtsRow = [number, string, string];

/** Bound of the recipient cache: a dictionary attack's unknown addresses must not grow it without end. */
const MAX_CACHED_RECIPIENTS = 10_000;

// Body text is indexed behind delivery, in batches: FTS5 writes a segment per transaction (and merges them
// later), and the trigram tokenizer is the costliest part of storing a message. Rows wait until deliveries
// pause for FTS_QUIET_MS, at most FTS_MAX_WAIT_MS, or until a batch is full, so a burst of mail is indexed in
// slices of FTS_SLICE_MS after it instead of a small transaction per delivery during it (Dovecot's FTS indexes
// even later, at SEARCH). SEARCH flushes first, so it never misses a message. A crash loses only queued rows,
// which the next start rebuilds from the message files (indexMissingFts).
const FTS_QUIET_MS = 500;
const FTS_MAX_WAIT_MS = 5000;
const FTS_BATCH_ROWS = 2000;
/** Time per FTS transaction when indexing in the background. */
const FTS_SLICE_MS = 10;
const FTS_BATCH_CHARS = 8 * 1024 * 1024;
/** How long a group commit waits for appends still writing their file to join it. */
const COMMIT_GATHER_MS = 10;
/** What a queued append ends as: stored now, or (a delivery whose id was stored already) the earlier copy. */
type CommitOutcome =
  | { kind: 'stored'; result: AppendResult; mailbox: string }
  | { kind: 'earlier'; mailbox: string; uid: number };
interface PendingAppend {
  mailboxId: number; bytes: Buffer; parsed: ParsedMessage; bits: number; keywords: string; date: number; zone: number;
  dir: string; file: string; origin: unknown;
  /** SHA-256 prefix of the caller's delivery id (deliver() only). */
  deliveryKey: string | undefined;
  resolve: (r: CommitOutcome) => void; reject: (err: unknown) => void;
}

/** The key a delivery id is remembered (and its file named) by: fixed length, file-name safe. */
function deliveryKey(deliveryId: string): string {
  return createHash('sha256').update(deliveryId).digest('hex').slice(0, 32);
}
interface AccountRow { address: string; name: string; password_hash: string; quota_bytes: number; used_bytes: number; message_count: number; active: number; initialized: number }

class Notifier implements StoreNotifier {
  private readonly listeners = new Map<number, Set<StoreListener>>();
  private readonly logger: Logger;
  constructor(logger: Logger) {
    this.logger = logger;
  }
  subscribe(mailboxId: number, listener: StoreListener): () => void {
    let set = this.listeners.get(mailboxId);
    if (!set) this.listeners.set(mailboxId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(mailboxId) === set) this.listeners.delete(mailboxId);
    };
  }
  emit(event: StoreEvent): void {
    const set = this.listeners.get(event.mailboxId);
    if (!set) return;
    for (const l of [...set]) {
      try {
        l(event);
      } catch (err) {
        this.logger.error({ err: (err as Error).message, mailboxId: event.mailboxId }, 'store listener threw');
      }
    }
  }
}

/** A fetch() row: uid, flags, keywords, modseq, size, internal date, zone, IMAP envelope, envelope JSON, body structure JSON, header. */
type FetchRow = [number, number, string, number, number, number, number, string | null, string | null, string | null, Uint8Array | null];

function metaOf(r: MessageRow): MessageMeta {
  return { uid: r.uid, flags: flagList(r.flags, r.keywords), modseq: r.modseq, size: r.size, internalDate: r.internal_date, internalDateZone: r.internal_zone };
}

function mailboxInfo(r: MailboxRow, subscribed: boolean): MailboxInfo {
  return {
    id: r.id, account: r.account, name: r.name, specialUse: r.special_use as SpecialUse | null, subscribed,
    uidValidity: r.uid_validity, uidNext: r.uid_next, highestModseq: r.highest_modseq,
  };
}

export class SqliteStore implements MailStore {
  readonly notifier: Notifier;
  reconcileReport: ReconcileReport = { indexed: [], missing: [] };
  readonly db: DatabaseSync;
  private readonly mailRoot: string;
  private readonly logger: Logger;
  private readonly maxMessageBytes: number;
  private readonly locks = new Set<number>();
  private readonly pendingWrites = new Set<Promise<unknown>>();
  private readonly stmts = new Map<string, StatementSync>();
  private readonly commitQueue: PendingAppend[] = [];
  /** UIDs per recently listed mailbox, so SELECT of a big mailbox does not rebuild the list every time. */
  private readonly uidCache = new Map<number, number[]>();
  /** Mailboxes whose cached UID list was returned by listUids() since it last changed. */
  private readonly uidCacheHandedOut = new Set<number>();
  private committing = false;
  /** Appends writing their message file, not yet in commitQueue; the group commit waits for them (bounded). */
  private filesInFlight = 0;
  private filesSettled: Array<() => void> = [];
  private closed = false;
  private readonly vanishedKeep: number;
  /** Text waiting for the FTS index, by content id (a re-used id replaces the row of its deleted predecessor). */
  private readonly ftsQueue = new Map<number, [string, string]>();
  private ftsQueueChars = 0;
  private ftsTimer: NodeJS.Timeout | null = null;
  /** When the oldest queued FTS row was queued (0: none queued). */
  private ftsQueuedSince = 0;
  /** The index's write-ahead log, fsynced off the main thread after a group commit (syncIndexLog). */
  private readonly walPath: string;
  private lastDeliveryPrune = 0;
  private readonly options: SqliteStoreOptions;
  /** resolveRecipient() answers by address as given (see there). */
  private readonly recipients = new Map<string, RecipientResolution>();
  /** Where deliver() runs once deliverOnThread() was called. */
  private deliveryThread: DeliveryThread | null = null;

  constructor(opts: SqliteStoreOptions) {
    this.options = opts;
    this.logger = opts.logger;
    this.maxMessageBytes = opts.maxMessageBytes;
    this.vanishedKeep = opts.vanishedKeep ?? VANISHED_KEEP;
    this.mailRoot = path.join(opts.stateDir, 'mail');
    this.notifier = new Notifier(opts.logger);
    const dbPath = path.join(opts.stateDir, 'store', 'index.sqlite');
    this.walPath = `${dbPath}-wal`;
    this.db = new DatabaseSync(dbPath);
    openSchema(this.db);
    registerSearchFunctions(this.db);
    this.pruneDeliveries();
  }

  /** Forgets delivery ids older than any spool entry can be (run at open and at most hourly on delivery). */
  pruneDeliveries(now = Date.now()): number {
    this.lastDeliveryPrune = now;
    return Number(this.q('DELETE FROM deliveries WHERE created < ?').run(now - DELIVERY_MEMORY_MS).changes);
  }

  private q(sql: string): StatementSync {
    let s = this.stmts.get(sql);
    if (!s) this.stmts.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  /** Runs fn in one IMMEDIATE transaction (so its reads see what it writes and nothing interleaves). */
  tx<T>(fn: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const r = fn();
      this.db.exec('COMMIT');
      return r;
    } catch (err) {
      this.db.exec('ROLLBACK');
      throw err;
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    this.pendingWrites.add(p);
    const done = () => { this.pendingWrites.delete(p); };
    p.then(done, done);
    return p;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Accounts and aliases

  syncAccounts(users: readonly UserConfig[], aliases: readonly AliasConfig[]): void {
    const seen = new Set<string>();
    const normalized = users.map((u) => {
      const address = normalizeAddress(u.address);
      if (!address) throw new Error(`user address ${JSON.stringify(u.address)} is not a valid address`);
      if (seen.has(address)) throw new Error(`user ${address} listed twice`);
      seen.add(address);
      if (!u.passwordHash.startsWith('$argon2id$')) throw new Error(`user ${address}: password hash is not an argon2id PHC string`);
      return { ...u, address };
    });
    const aliasRows = aliases.map((a) => {
      const source = a.from.startsWith('@') ? a.from.length > 1 && normalizeAddress('x' + a.from) ? '@' + normalizeAddress('x' + a.from)!.split('@')[1] : null : normalizeAddress(a.from);
      if (!source) throw new Error(`alias ${JSON.stringify(a.from)} is not an address or @domain`);
      const targets = a.to.map((t) => {
        const n = normalizeAddress(t);
        if (!n) throw new Error(`alias ${a.from}: target ${JSON.stringify(t)} is not a valid address`);
        return n;
      });
      return { source, targets };
    });
    this.tx(() => {
      this.q('UPDATE accounts SET active = 0').run();
      for (const u of normalized) {
        this.q(`INSERT INTO accounts(address, name, password_hash, quota_bytes, active) VALUES (?, ?, ?, ?, 1)
          ON CONFLICT(address) DO UPDATE SET name = excluded.name, password_hash = excluded.password_hash, quota_bytes = excluded.quota_bytes, active = 1`)
          .run(u.address, u.name, u.passwordHash, u.quotaBytes);
      }
      this.q('DELETE FROM aliases').run();
      for (const a of aliasRows) {
        this.q('INSERT INTO aliases(source, targets) VALUES (?, ?) ON CONFLICT(source) DO UPDATE SET targets = excluded.targets')
          .run(a.source, JSON.stringify(a.targets));
      }
      for (const u of normalized) this.initializeAccount(u.address);
    });
    this.recipients.clear();
  }

  /** Default mailboxes, once per account: a user who deletes Trash keeps it deleted. */
  private initializeAccount(address: string): void {
    const row = this.q('SELECT initialized FROM accounts WHERE address = ?').get(address) as { initialized: number } | undefined;
    if (!row || row.initialized) return;
    for (const [name, use] of DEFAULT_MAILBOXES) {
      if (!this.mailboxRow(address, name)) this.insertMailbox(address, name, use);
      if (use || name === 'INBOX') this.q('INSERT OR IGNORE INTO subscriptions(account, name) VALUES (?, ?)').run(address, name);
    }
    this.q('UPDATE accounts SET initialized = 1 WHERE address = ?').run(address);
  }

  private accountRow(address: string): AccountRow | undefined {
    const a = normalizeAddress(address);
    if (!a) return undefined;
    const r = this.q('SELECT * FROM accounts WHERE address = ? AND active = 1').get(a) as AccountRow | undefined;
    return r;
  }

  account(address: string): AccountInfo | null {
    const r = this.accountRow(address);
    return r ? { address: r.address, name: r.name, quotaBytes: r.quota_bytes } : null;
  }

  async verifyPassword(address: string, password: string): Promise<AccountInfo | null> {
    const r = this.accountRow(address);
    let ok = false;
    try {
      ok = await verifyPasswordHash(r?.password_hash ?? DUMMY_HASH, password);
    } catch (err) {
      this.logger.error({ account: r?.address, err: (err as Error).message }, 'unusable password hash');
      return null;
    }
    return r && ok ? { address: r.address, name: r.name, quotaBytes: r.quota_bytes } : null;
  }

  authenticate(address: string, password: string): Promise<AccountInfo | null> {
    return this.verifyPassword(address, password);
  }

  private expand(address: string, depth: number, out: Set<string>): boolean {
    if (depth > MAX_ALIAS_DEPTH) return false;
    if (this.accountRow(address)) { out.add(address); return true; }
    const alias = this.q('SELECT targets FROM aliases WHERE source = ?').get(address) as { targets: string } | undefined;
    if (!alias) return false;
    let any = false;
    for (const t of JSON.parse(alias.targets) as string[]) any = this.expand(t, depth + 1, out) || any;
    return any;
  }

  /**
   * Answered from memory once looked up: RCPT and then delivery ask for every message, and a read of the index on
   * this connection costs tens of µs while the delivery thread commits (its pages are read again). Accounts and
   * aliases change only through syncAccounts(), which empties the cache.
   */
  resolveRecipient(address: string): RecipientResolution {
    let r = this.recipients.get(address);
    if (r) return r;
    r = this.lookUpRecipient(address);
    if (r.kind === 'local') Object.freeze(r.accounts);
    if (this.recipients.size >= MAX_CACHED_RECIPIENTS) this.recipients.clear();
    this.recipients.set(address, r);
    return r;
  }

  private lookUpRecipient(address: string): RecipientResolution {
    const a = normalizeAddress(address);
    if (!a) return { kind: 'unknown' };
    const out = new Set<string>();
    const at = a.lastIndexOf('@');
    const local = a.slice(0, at);
    const domain = a.slice(at + 1);
    const plus = local.indexOf('+');
    const candidates = [a];
    if (plus > 0) candidates.push(`${local.slice(0, plus)}@${domain}`);
    for (const c of candidates) if (this.expand(c, 0, out)) return { kind: 'local', accounts: [...out] };
    const catchAll = this.q('SELECT targets FROM aliases WHERE source = ?').get('@' + domain) as { targets: string } | undefined;
    if (catchAll) for (const t of JSON.parse(catchAll.targets) as string[]) this.expand(t, 1, out);
    return out.size ? { kind: 'local', accounts: [...out] } : { kind: 'unknown' };
  }

  sendableAddresses(account: string): string[] {
    const a = this.accountRow(account);
    if (!a) return [];
    const out = [a.address];
    for (const row of this.q("SELECT source FROM aliases WHERE source NOT LIKE '@%'").all() as Array<{ source: string }>) {
      const r = this.resolveRecipient(row.source);
      if (r.kind === 'local' && r.accounts.length === 1 && r.accounts[0] === a.address) out.push(row.source);
    }
    return out;
  }

  quota(account: string): QuotaUsage {
    const r = this.accountRow(account);
    if (!r) throw new StoreError('NONEXISTENT', 'no such account');
    return { usedBytes: r.used_bytes, limitBytes: r.quota_bytes, messages: r.message_count };
  }

  private chargeQuota(account: string, bytes: number, messages: number, enforce = true): void {
    if (bytes > 0 && enforce) {
      const r = this.q('SELECT quota_bytes, used_bytes FROM accounts WHERE address = ?').get(account) as { quota_bytes: number; used_bytes: number } | undefined;
      if (!r) throw new StoreError('NONEXISTENT', 'no such account');
      if (r.quota_bytes > 0 && r.used_bytes + bytes > r.quota_bytes) {
        throw new StoreError('OVERQUOTA', `quota exceeded (${r.used_bytes + bytes} > ${r.quota_bytes} bytes)`);
      }
    }
    this.q('UPDATE accounts SET used_bytes = max(0, used_bytes + ?), message_count = max(0, message_count + ?) WHERE address = ?').run(bytes, messages, account);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Mailboxes

  private mailboxRow(account: string, name: string): MailboxRow | undefined {
    return this.q('SELECT * FROM mailboxes WHERE account = ? AND name = ?').get(account, name) as MailboxRow | undefined;
  }

  private mailboxById(id: number): MailboxRow {
    const r = this.q('SELECT * FROM mailboxes WHERE id = ?').get(id) as MailboxRow | undefined;
    if (!r) throw new StoreError('NONEXISTENT', 'mailbox does not exist');
    return r;
  }

  private requireAccount(account: string): string {
    const r = this.accountRow(account);
    if (!r) throw new StoreError('NONEXISTENT', 'no such account');
    return r.address;
  }

  private nextUidValidity(): number {
    const r = this.q("SELECT value FROM meta WHERE key = 'last_uid_validity'").get() as { value: string } | undefined;
    const v = Math.min(Math.max(Math.floor(Date.now() / 1000), Number(r?.value ?? 0) + 1), UID_MAX);
    this.q("INSERT INTO meta(key, value) VALUES ('last_uid_validity', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(v));
    return v;
  }

  private insertMailbox(account: string, name: string, use: SpecialUse | null): MailboxRow {
    const count = (this.q('SELECT count(*) AS n FROM mailboxes WHERE account = ?').get(account) as { n: number }).n;
    if (count >= MAX_MAILBOXES_PER_ACCOUNT) throw new StoreError('LIMIT', `an account holds at most ${MAX_MAILBOXES_PER_ACCOUNT} mailboxes`);
    const r = this.q('INSERT INTO mailboxes(account, name, folder, special_use, uid_validity) VALUES (?, ?, ?, ?, ?) RETURNING *')
      .get(account, name, folderName(name), use, this.nextUidValidity()) as unknown as MailboxRow;
    return r;
  }

  private subscribed(account: string, name: string): boolean {
    return this.q('SELECT 1 FROM subscriptions WHERE account = ? AND name = ?').get(account, name) !== undefined;
  }

  listMailboxes(account: string): MailboxInfo[] {
    const a = this.requireAccount(account);
    const subs = new Set(this.listSubscriptions(a));
    return (this.q('SELECT * FROM mailboxes WHERE account = ? ORDER BY name').all(a) as unknown as MailboxRow[]).map((r) => mailboxInfo(r, subs.has(r.name)));
  }

  getMailbox(account: string, name: string): MailboxInfo | null {
    const n = normalizeMailboxName(name);
    // One statement for account, mailbox and subscription (SELECT runs this on every open); the account is looked
    // at alone only when no mailbox row came back, to tell "no such account" from "no such mailbox".
    const a = normalizeAddress(account);
    const r = a === null ? undefined : this.q(`SELECT b.*, EXISTS(SELECT 1 FROM subscriptions s WHERE s.account = b.account AND s.name = b.name) AS subscribed
      FROM accounts a JOIN mailboxes b ON b.account = a.address AND b.name = ? WHERE a.address = ? AND a.active = 1`).get(n, a) as (MailboxRow & { subscribed: number }) | undefined;
    if (r) return mailboxInfo(r, r.subscribed === 1);
    this.requireAccount(account);
    return null;
  }

  getMailboxById(id: number): MailboxInfo | null {
    const r = this.q('SELECT * FROM mailboxes WHERE id = ?').get(id) as MailboxRow | undefined;
    return r ? mailboxInfo(r, this.subscribed(r.account, r.name)) : null;
  }

  createMailbox(account: string, name: string, specialUse: SpecialUse | null = null): MailboxInfo {
    const a = this.requireAccount(account);
    const n = normalizeMailboxName(name);
    return this.tx(() => {
      if (this.mailboxRow(a, n)) throw new StoreError('ALREADYEXISTS', 'mailbox already exists');
      if (specialUse && this.q('SELECT 1 FROM mailboxes WHERE account = ? AND special_use = ?').get(a, specialUse)) {
        throw new StoreError('CANNOT', `another mailbox already has ${specialUse}`);
      }
      const parts = n.split(MAILBOX_DELIMITER);
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join(MAILBOX_DELIMITER);
        if (!this.mailboxRow(a, parent)) this.insertMailbox(a, parent, null);
      }
      return mailboxInfo(this.insertMailbox(a, n, specialUse), this.subscribed(a, n));
    });
  }

  async deleteMailbox(account: string, name: string, origin?: unknown): Promise<void> {
    const a = this.requireAccount(account);
    const n = normalizeMailboxName(name);
    if (n === 'INBOX') throw new StoreError('CANNOT', 'INBOX cannot be deleted');
    const dir = accountDir(this.mailRoot, a);
    const mb = this.tx(() => {
      const r = this.mailboxRow(a, n);
      if (!r) throw new StoreError('NONEXISTENT', 'mailbox does not exist');
      if (this.q("SELECT 1 FROM mailboxes WHERE account = ? AND substr(name, 1, ?) = ?").get(a, n.length + 1, n + MAILBOX_DELIMITER)) {
        throw new StoreError('HASCHILDREN', 'mailbox has children; delete them first');
      }
      const msgs = this.q('SELECT id, content_id, size FROM messages WHERE mailbox_id = ?').all(r.id) as Array<{ id: number; content_id: number; size: number }>;
      this.chargeQuota(a, -msgs.reduce((s, m) => s + m.size, 0), -msgs.length);
      this.q('DELETE FROM messages WHERE mailbox_id = ?').run(r.id);
      this.q('DELETE FROM vanished WHERE mailbox_id = ?').run(r.id);
      this.q('DELETE FROM meta WHERE key = ?').run(`vanished_pruned:${r.id}`);
      this.dropUnreferencedContents(msgs.map((m) => m.content_id));
      this.q('DELETE FROM mailboxes WHERE id = ?').run(r.id);
      // The folder goes as a whole after the commit; recorded first so a crash cannot resurrect it.
      this.q('INSERT OR REPLACE INTO pending_unlink(path, recursive) VALUES (?, 1)').run(path.join(dir, r.folder));
      return r;
    });
    this.emit({ type: 'mailbox', mailboxId: mb.id, change: 'deleted', name: mb.name, origin });
    await this.track(this.processPendingUnlinks());
  }

  async renameMailbox(account: string, from: string, to: string, origin?: unknown): Promise<void> {
    const a = this.requireAccount(account);
    const f = normalizeMailboxName(from);
    const t = normalizeMailboxName(to);
    if (f === t) throw new StoreError('ALREADYEXISTS', 'mailbox already has that name');
    if (t === 'INBOX' || (f === 'INBOX' && t.startsWith('INBOX' + MAILBOX_DELIMITER))) throw new StoreError('CANNOT', 'cannot rename to INBOX');
    if (t.startsWith(f + MAILBOX_DELIMITER)) throw new StoreError('CANNOT', 'cannot rename a mailbox into itself');
    if (f === 'INBOX') return this.renameInbox(a, t, origin);
    const src = this.mailboxRow(a, f);
    if (!src) throw new StoreError('NONEXISTENT', 'mailbox does not exist');
    if (this.mailboxRow(a, t)) throw new StoreError('ALREADYEXISTS', 'target mailbox already exists');
    const family = (this.q("SELECT * FROM mailboxes WHERE account = ? AND (name = ? OR substr(name, 1, ?) = ?)").all(a, f, f.length + 1, f + MAILBOX_DELIMITER) as unknown as MailboxRow[]);
    const renamed = family.map((r) => {
      const name = t + r.name.slice(f.length);
      normalizeMailboxName(name); // length limits of the new names
      return { row: r, name, folder: folderName(name) };
    });
    const dir = accountDir(this.mailRoot, a);
    // Folders first, then the index: after a crash in between, the start-up scan indexes the renamed folders.
    for (const r of renamed) {
      try {
        await fsp.rename(path.join(dir, r.row.folder), path.join(dir, r.folder));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // never received a message: no folder yet
      }
    }
    await fsyncDir(dir).catch(() => undefined);
    this.tx(() => {
      const parents = t.split(MAILBOX_DELIMITER);
      for (let i = 1; i < parents.length; i++) {
        const p = parents.slice(0, i).join(MAILBOX_DELIMITER);
        if (!this.mailboxRow(a, p)) this.insertMailbox(a, p, null);
      }
      for (const r of renamed) {
        this.q('UPDATE mailboxes SET name = ?, folder = ? WHERE id = ?').run(r.name, r.folder, r.row.id);
        if (this.subscribed(a, r.row.name)) {
          this.q('DELETE FROM subscriptions WHERE account = ? AND name = ?').run(a, r.row.name);
          this.q('INSERT OR IGNORE INTO subscriptions(account, name) VALUES (?, ?)').run(a, r.name);
        }
      }
    });
    for (const r of renamed) this.emit({ type: 'mailbox', mailboxId: r.row.id, change: 'renamed', name: r.name, origin });
  }

  /** RFC 3501: renaming INBOX moves its messages to the new mailbox and leaves INBOX empty. */
  private async renameInbox(account: string, to: string, origin: unknown): Promise<void> {
    if (this.mailboxRow(account, to)) throw new StoreError('ALREADYEXISTS', 'target mailbox already exists');
    const inbox = this.mailboxRow(account, 'INBOX');
    if (!inbox) throw new StoreError('NONEXISTENT', 'INBOX does not exist');
    const target = this.createMailbox(account, to);
    await this.move(inbox.id, [[1, Infinity]], target.id, origin);
  }

  setSubscribed(account: string, name: string, subscribed: boolean): void {
    const a = this.requireAccount(account);
    const n = normalizeMailboxName(name);
    if (subscribed) {
      const n2 = (this.q('SELECT count(*) AS n FROM subscriptions WHERE account = ?').get(a) as { n: number }).n;
      if (n2 >= MAX_MAILBOXES_PER_ACCOUNT) throw new StoreError('LIMIT', 'too many subscriptions');
      this.q('INSERT OR IGNORE INTO subscriptions(account, name) VALUES (?, ?)').run(a, n);
    } else this.q('DELETE FROM subscriptions WHERE account = ? AND name = ?').run(a, n);
  }

  listSubscriptions(account: string): string[] {
    const a = this.requireAccount(account);
    return (this.q('SELECT name FROM subscriptions WHERE account = ? ORDER BY name').all(a) as Array<{ name: string }>).map((r) => r.name);
  }

  status(mailboxId: number): MailboxStatus {
    // The first unseen UID in the same statement (the partial index messages_unseen answers it at once).
    const mb = this.q(`SELECT *, CASE WHEN n_unseen > 0 THEN (SELECT min(uid) FROM messages WHERE mailbox_id = b.id AND (flags & 1) = 0) END AS first_unseen
      FROM mailboxes b WHERE id = ?`).get(mailboxId) as (MailboxRow & { n_messages: number; n_unseen: number; n_deleted: number; n_recent: number; total_size: number; first_unseen: number | null }) | undefined;
    if (!mb) throw new StoreError('NONEXISTENT', 'mailbox does not exist');
    const first = mb.first_unseen;
    return {
      messages: mb.n_messages, unseen: mb.n_unseen, recent: mb.n_recent, deleted: mb.n_deleted, sizeBytes: mb.total_size, firstUnseenUid: first,
      uidNext: mb.uid_next, uidValidity: mb.uid_validity, highestModseq: mb.highest_modseq,
    };
  }

  keywords(mailboxId: number): string[] {
    const out = new Map<string, string>();
    for (const r of this.q("SELECT DISTINCT keywords FROM messages WHERE mailbox_id = ? AND keywords != ''").all(mailboxId) as Array<{ keywords: string }>) {
      for (const k of keywordsFromColumn(r.keywords)) if (!out.has(k.toLowerCase())) out.set(k.toLowerCase(), k);
    }
    return [...out.values()].sort();
  }

  openMailbox(account: string, name: string): OpenedMailbox | null {
    return this.read(() => {
      const info = this.getMailbox(account, name);
      if (!info) return null;
      return { info, status: this.status(info.id), uids: this.listUids(info.id), keywords: this.keywords(info.id) };
    });
  }

  /**
   * Runs several reads in one read transaction: one snapshot, and one shared lock taken and dropped instead of
   * one per statement (each autocommit read costs a few system calls in WAL mode). Inside a transaction already,
   * just runs them.
   */
  private read<T>(fn: () => T): T {
    if (this.db.isTransaction) return fn();
    this.q('BEGIN').run();
    try {
      return fn();
    } finally {
      this.q('COMMIT').run();
    }
  }

  claimRecent(mailboxId: number): number[] {
    const n = this.q('SELECT n_recent FROM mailboxes WHERE id = ?').get(mailboxId) as { n_recent: number } | undefined;
    if (!n || n.n_recent === 0) return []; // the usual case: no write transaction at all
    return this.tx(() => {
      const uids = (this.q('SELECT uid FROM messages WHERE mailbox_id = ? AND recent = 1 ORDER BY uid').all(mailboxId) as Array<{ uid: number }>).map((r) => r.uid);
      if (uids.length) {
        this.q('UPDATE messages SET recent = 0 WHERE mailbox_id = ? AND recent = 1').run(mailboxId);
        this.q('UPDATE mailboxes SET n_recent = n_recent - ? WHERE id = ?').run(uids.length, mailboxId);
      }
      return uids;
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Reading messages

  /** `n:*` means up to the highest UID (and includes it even when n is larger, RFC 3501 §6.4.8). */
  private resolveSet(mailboxId: number, set: UidSet): UidSet {
    if (!set.some(([lo, hi]) => hi === Infinity || lo === Infinity)) return set;
    const max = (this.q('SELECT max(uid) AS m FROM messages WHERE mailbox_id = ?').get(mailboxId) as { m: number | null }).m ?? 0;
    return set.map(([lo, hi]) => {
      const l = lo === Infinity ? max : lo;
      const h = hi === Infinity ? max : hi;
      return [Math.min(l, h), Math.max(l, h)] as const;
    });
  }

  private uidWhere(mailboxId: number, uids: UidSet | undefined, params: SQLInputValue[]): string {
    if (!uids) return '1';
    return uidSetSql(this.resolveSet(mailboxId, uids), params);
  }

  /** The cached list itself (no 50,000-element copy per SELECT): once handed out it is never changed, see emit(). */
  listUids(mailboxId: number): readonly number[] {
    let uids = this.uidCache.get(mailboxId);
    if (!uids) {
      // One JSON array from SQLite instead of one row object per message: several times faster on big mailboxes.
      const r = this.q('SELECT json_group_array(uid) AS uids FROM (SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid)').get(mailboxId) as { uids: string };
      uids = JSON.parse(r.uids) as number[];
      if (this.uidCache.size >= UID_CACHE_MAILBOXES) this.uidCache.delete(this.uidCache.keys().next().value!);
      this.uidCache.set(mailboxId, uids);
    }
    this.uidCacheHandedOut.add(mailboxId);
    return uids;
  }

  /**
   * Every committed change passes here: the UID cache follows it (appends extend a cached list, anything that
   * removes messages drops it), then sessions are told.
   */
  private emit(event: StoreEvent): void {
    if (this.options.forward) {
      this.options.forward.event(event);
      return;
    }
    let cached = this.uidCache.get(event.mailboxId);
    if (cached) {
      if (event.type === 'exists') {
        // Copy-on-write: a list some session holds as its view must not grow under it.
        if (this.uidCacheHandedOut.delete(event.mailboxId)) this.uidCache.set(event.mailboxId, (cached = cached.slice()));
        for (const m of event.messages) {
          if (cached.length && cached[cached.length - 1]! >= m.uid) { this.uidCache.delete(event.mailboxId); break; }
          cached.push(m.uid);
        }
      } else if (event.type === 'expunge' || event.type === 'mailbox') this.uidCache.delete(event.mailboxId);
    }
    this.notifier.emit(event);
  }

  listMessages(mailboxId: number, uids?: UidSet): MessageMeta[] {
    const params: SQLInputValue[] = [mailboxId];
    const where = this.uidWhere(mailboxId, uids, params);
    const rows = this.db.prepare(`SELECT uid, flags, keywords, modseq, size, internal_date, internal_zone FROM messages m WHERE mailbox_id = ? AND ${where} ORDER BY uid`)
      .all(...params) as unknown as MessageRow[];
    return rows.map(metaOf);
  }

  fetch(mailboxId: number, uids: UidSet, wanted: FetchWanted): FetchedMessage[] {
    const params: SQLInputValue[] = [mailboxId];
    const where = this.uidWhere(mailboxId, uids, params);
    // Fixed column positions: rows come back as arrays (no per-row object with named keys: this runs per message).
    const cols = ['m.uid', 'm.flags', 'm.keywords', 'm.modseq', 'm.size', 'm.internal_date', 'm.internal_zone'];
    let from = 'messages m';
    // The usual client sync (FLAGS, ENVELOPE) reads only the covering index of cached envelope texts, never the wide
    // contents rows; metadata alone needs no contents at all.
    const narrow = !wanted.bodyStructure && !wanted.header && !wanted.envelope;
    if (narrow) {
      cols.push(wanted.envelopeImap ? 'c.envelope_imap' : 'NULL', 'NULL', 'NULL', 'NULL');
      if (wanted.envelopeImap) from = 'messages m JOIN contents c INDEXED BY contents_envelope_imap ON c.id = m.content_id';
    } else {
      cols.push(wanted.envelopeImap ? 'c.envelope_imap' : 'NULL', wanted.envelope ? 'c.envelope' : 'NULL');
      cols.push(wanted.bodyStructure ? 'c.body_structure' : 'NULL', wanted.header ? 'c.header' : 'NULL');
      from = 'messages m JOIN contents c ON c.id = m.content_id';
    }
    const sql = `SELECT ${cols.join(', ')} FROM ${from} WHERE m.mailbox_id = ? AND ${where} ORDER BY m.uid`;
    // FETCH asks batch after batch with one UID range, so that shape is prepared once; other shapes are too many to keep.
    const stmt = params.length <= 3 ? this.q(sql) : this.db.prepare(sql);
    stmt.setReturnArrays(true);
    const out: FetchedMessage[] = [];
    // all() over iterate(): one native call per batch instead of one per row, about a third less time per row.
    for (const r of stmt.all(...params) as unknown as FetchRow[]) {
      // Every field in the literal, absent ones undefined: one object shape for all rows, no property added later.
      out.push({
        uid: r[0], flags: sharedFlagList(r[1], r[2]), modseq: r[3], size: r[4], internalDate: r[5], internalDateZone: r[6],
        envelopeImap: r[7] ?? undefined,
        envelope: r[8] === null ? undefined : JSON.parse(r[8]),
        bodyStructure: r[9] === null ? undefined : JSON.parse(r[9]),
        header: r[10] === null ? undefined : Buffer.from(r[10].buffer, r[10].byteOffset, r[10].byteLength),
      });
    }
    return out;
  }

  private messagePath(mailboxId: number, uid: number): string | null {
    const r = this.q('SELECT m.file, b.account, b.folder FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE m.mailbox_id = ? AND m.uid = ?')
      .get(mailboxId, uid) as { file: string; account: string; folder: string } | undefined;
    return r ? path.join(accountDir(this.mailRoot, r.account), r.folder, 'cur', r.file) : null;
  }

  async readMessage(mailboxId: number, uid: number): Promise<Buffer | null> {
    const p = this.messagePath(mailboxId, uid);
    if (!p) return null;
    return toCrlf(await fsp.readFile(p));
  }

  async openMessage(mailboxId: number, uid: number): Promise<Readable | null> {
    const bytes = await this.readMessage(mailboxId, uid);
    return bytes ? Readable.from([bytes]) : null;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Writing messages

  private bumpModseq(mailboxId: number): number {
    const r = this.q('UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq').get(mailboxId) as { highest_modseq: number } | undefined;
    if (!r) throw new StoreError('NONEXISTENT', 'mailbox does not exist');
    return r.highest_modseq;
  }

  /**
   * Inserts the cached parse; its FTS row is queued in `fts` for flushFts(). FTS5 writes its pending terms out
   * as a new segment at every statement savepoint, so FTS inserts interleaved with other writes cost a segment
   * each; batched at the end of the transaction they cost one.
   */
  private insertContent(bytes: Buffer, parsed: ParsedMessage, fts: FtsRow[]): number {
    const c = this.q('INSERT INTO contents(size, sent_day, header, envelope, body_structure, envelope_imap) VALUES (?, ?, ?, ?, ?, ?) RETURNING id')
      .get(bytes.length, parsed.sentDay, bytes.subarray(0, parsed.headerEnd), JSON.stringify(parsed.envelope), JSON.stringify(parsed.bodyStructure),
        envelopeWireText(parsed.envelope)) as { id: number };
    fts.push([c.id, parsed.headerText.toLowerCase(), parsed.bodyText.toLowerCase()]);
    return c.id;
  }

  private flushFts(rows: FtsRow[]): void {
    const stmt = this.q('INSERT INTO fts(rowid, headers, body) VALUES (?, ?, ?)');
    for (const [id, headers, body] of rows) stmt.run(id, headers, body);
  }

  /** Queues committed contents' text for the FTS index (see FTS_QUIET_MS). */
  private queueFts(rows: FtsRow[]): void {
    if (rows.length === 0) return;
    for (const [id, headers, body] of rows) {
      this.ftsQueue.set(id, [headers, body]);
      this.ftsQueueChars += headers.length + body.length;
    }
    if (this.ftsQueue.size >= FTS_BATCH_ROWS || this.ftsQueueChars >= FTS_BATCH_CHARS) { this.scheduleFtsFlush(0); return; }
    const now = Date.now();
    if (this.ftsQueuedSince === 0) this.ftsQueuedSince = now;
    // Each delivery pushes the flush back by FTS_QUIET_MS, never past FTS_MAX_WAIT_MS after the oldest row.
    this.scheduleFtsFlush(Math.max(0, Math.min(FTS_QUIET_MS, this.ftsQueuedSince + FTS_MAX_WAIT_MS - now)));
  }

  private scheduleFtsFlush(ms: number): void {
    if (this.ftsTimer) clearTimeout(this.ftsTimer);
    this.ftsTimer = setTimeout(() => { if (!this.closed) this.writeFtsQueue(FTS_SLICE_MS); }, ms);
    this.ftsTimer.unref();
  }

  /**
   * Indexes the queued text in one transaction. Rows of contents deleted meanwhile are skipped. synchronous=NORMAL:
   * a power cut may undo the batch, and the next start indexes those contents again from their files.
   */
  flushFtsQueue(): void {
    if (!this.closed) this.writeFtsQueue();
  }

  /**
   * Indexes queued rows (the oldest first) in one transaction, for at most `budgetMs` (at least one row); when
   * rows remain, the next slice follows on a later turn of the event loop, so a backlog never holds the sessions
   * up for longer than a slice (the trigram tokenizer takes about half a millisecond per 10 KB message).
   */
  private writeFtsQueue(budgetMs = Infinity): void {
    if (this.ftsTimer) { clearTimeout(this.ftsTimer); this.ftsTimer = null; }
    if (this.ftsQueue.size === 0) return;
    if (this.db.isTransaction) { // never inside another write: come back shortly
      this.scheduleFtsFlush(FTS_QUIET_MS);
      return;
    }
    const done: Array<[number, [string, string]]> = [];
    const start = performance.now();
    try {
      this.db.exec('PRAGMA synchronous = NORMAL');
      this.tx(() => {
        const stmt = this.q('INSERT INTO fts(rowid, headers, body) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM contents WHERE id = ?)');
        for (const row of this.ftsQueue) {
          stmt.run(row[0], row[1][0], row[1][1], row[0]);
          done.push(row);
          if (performance.now() - start >= budgetMs) break;
        }
      });
    } catch (err) {
      // Still queued for the next try; SEARCH meanwhile finds these messages by their other keys only.
      this.logger.error({ err: (err as Error).message, rows: this.ftsQueue.size }, 'FTS indexing failed; will retry');
      this.ftsQueuedSince ||= Date.now();
      this.scheduleFtsFlush(FTS_MAX_WAIT_MS);
      return;
    } finally {
      this.db.exec('PRAGMA synchronous = FULL');
    }
    for (const [id, [headers, body]] of done) {
      this.ftsQueue.delete(id);
      this.ftsQueueChars -= headers.length + body.length;
    }
    if (this.ftsQueue.size === 0) this.ftsQueuedSince = 0;
    else this.scheduleFtsFlush(0);
  }

  /**
   * Start-up: contents that have no FTS row (their queued text was lost to a crash) are indexed from their files.
   * Returns how many.
   */
  async indexMissingFts(): Promise<number> {
    const rows = this.db.prepare(`SELECT c.id AS id, m.file AS file, mb.account AS account, mb.folder AS folder
      FROM contents c JOIN messages m ON m.content_id = c.id JOIN mailboxes mb ON mb.id = m.mailbox_id
      WHERE NOT EXISTS (SELECT 1 FROM fts_content f WHERE f.id = c.id) GROUP BY c.id`).all() as Array<{ id: number; file: string; account: string; folder: string }>;
    let indexed = 0;
    for (const r of rows) {
      let raw: Buffer;
      try {
        raw = await fsp.readFile(path.join(accountDir(this.mailRoot, r.account), r.folder, 'cur', r.file));
      } catch {
        continue; // a missing file is reported by the reconciliation
      }
      const parsed = parseMessage(toCrlf(raw));
      this.queueFts([[r.id, parsed.headerText.toLowerCase(), parsed.bodyText.toLowerCase()]]);
      indexed++;
    }
    this.flushFtsQueue();
    return indexed;
  }

  private dropUnreferencedContents(ids: Iterable<number>): void {
    for (const id of new Set(ids)) {
      if (this.q('SELECT 1 FROM messages WHERE content_id = ? LIMIT 1').get(id)) continue;
      this.q('DELETE FROM contents WHERE id = ?').run(id);
      this.q('DELETE FROM fts WHERE rowid = ?').run(id);
    }
  }

  private insertMessage(mb: MailboxRow, contentId: number, file: string, bits: number, keywords: string, size: number, date: number, zone: number): MessageMeta {
    const u = this.q('UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING uid_next, highest_modseq').get(mb.id) as { uid_next: number; highest_modseq: number } | undefined;
    if (!u) throw new StoreError('NONEXISTENT', 'mailbox does not exist');
    const uid = u.uid_next - 1;
    this.q('INSERT INTO messages(mailbox_id, uid, content_id, file, flags, keywords, modseq, size, internal_date, internal_zone, recent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)')
      .run(mb.id, uid, contentId, file, bits, keywords, u.highest_modseq, size, date, zone);
    return { uid, flags: flagList(bits, keywords), modseq: u.highest_modseq, size, internalDate: date, internalDateZone: zone };
  }

  async append(mailboxId: number, message: Buffer, options: AppendOptions = {}, origin?: unknown): Promise<AppendResult> {
    const r = await this.track(this.appendInner(mailboxId, message, options, origin, undefined));
    if (r.kind !== 'stored') throw new Error('append without a delivery id found an earlier delivery'); // cannot happen
    return r.result;
  }

  private async appendInner(mailboxId: number, message: Buffer, options: AppendOptions, origin: unknown, deliveryKey: string | undefined): Promise<CommitOutcome> {
    if (message.length === 0) throw new StoreError('PARSE', 'empty message');
    const bytes = toCrlf(message);
    if (bytes.length > this.maxMessageBytes) throw new StoreError('TOOBIG', `message larger than ${this.maxMessageBytes} bytes`);
    const flags = parseFlags(options.flags ?? []);
    const date = options.internalDate ?? new Date();
    if (Number.isNaN(date.getTime())) throw new StoreError('CANNOT', 'invalid internal date');
    const zone = options.internalDateZone ?? -date.getTimezoneOffset();
    const mb = this.mailboxById(mailboxId);
    this.checkQuota(mb.account, bytes.length);
    const parsed = parseMessage(bytes); // outside the write transaction: parsing is the CPU-heavy part
    const dir = path.join(accountDir(this.mailRoot, mb.account), mb.folder);
    this.filesInFlight++;
    let file: string;
    try {
      file = await writeMessageFile(dir, bytes, maildirInfo(flags.bits), false, deliveryKey);
    } finally {
      if (--this.filesInFlight === 0) for (const f of this.filesSettled.splice(0)) f();
    }
    return new Promise<CommitOutcome>((resolve, reject) => {
      this.commitQueue.push({ mailboxId, bytes, parsed, bits: flags.bits, keywords: keywordsColumn(flags.keywords), date: date.getTime(), zone, dir, file, origin, deliveryKey, resolve, reject });
      this.runCommits();
    });
  }

  /**
   * Group commit: appends that finished writing their file while the previous batch was committing, or while this
   * one waited (at most COMMIT_GATHER_MS) for the files other appends are writing, share one folder fsync and one
   * SQLite transaction (each in its own savepoint, so one refusal fails only itself). Deliveries that start
   * together (the pipeline starts them in rounds) so pay for one commit, not one each.
   */
  private runCommits(): void {
    if (this.committing) return;
    this.committing = true;
    void (async () => {
      while (this.commitQueue.length) {
        if (this.filesInFlight > 0) await this.filesWritten(COMMIT_GATHER_MS);
        const batch = this.commitQueue.splice(0);
        try {
          await Promise.all([...new Set(batch.map((b) => path.join(b.dir, 'cur')))].map((d) => fsyncDir(d)));
        } catch (err) {
          await Promise.all(batch.map((b) => fsp.rm(path.join(b.dir, 'cur', b.file), { force: true })));
          for (const b of batch) b.reject(err);
          continue;
        }
        const done: Array<{ b: PendingAppend; meta?: MessageMeta; uidValidity?: number; mailbox?: string; earlier?: { mailbox: string; uid: number }; err?: unknown; kept?: boolean }> = [];
        const fts: FtsRow[] = [];
        let redundant = false;
        let committed = false;
        try {
          // NORMAL for this transaction only: COMMIT writes the log without fsyncing it on the main thread, and
          // syncIndexLog() below fsyncs it on libuv's pool before anyone is told. Every other write stays FULL.
          this.db.exec('PRAGMA synchronous = NORMAL');
          this.db.exec('BEGIN IMMEDIATE');
          for (const b of batch) {
            this.db.exec('SAVEPOINT one_append');
            try {
              const cur = this.mailboxById(b.mailboxId); // still there after the awaits?
              // The same delivery id may have committed while this copy was being written (a concurrent re-run).
              const earlier = b.deliveryKey === undefined ? undefined
                : this.q('SELECT mailbox, uid FROM deliveries WHERE account = ? AND delivery_id = ?').get(cur.account, b.deliveryKey) as { mailbox: string; uid: number } | undefined;
              if (earlier) {
                // Its file goes after the commit; recorded so a crash cannot adopt it as a second copy.
                this.q('INSERT OR REPLACE INTO pending_unlink(path, recursive) VALUES (?, 0)').run(path.join(b.dir, 'cur', b.file));
                redundant = true;
                this.db.exec('RELEASE one_append');
                done.push({ b, earlier: { mailbox: earlier.mailbox, uid: earlier.uid } });
                continue;
              }
              this.chargeQuota(cur.account, b.bytes.length, 1);
              const row: FtsRow[] = [];
              const contentId = this.insertContent(b.bytes, b.parsed, row);
              const meta = this.insertMessage(cur, contentId, b.file, b.bits, b.keywords, b.bytes.length, b.date, b.zone);
              if (b.deliveryKey !== undefined) {
                this.q('INSERT INTO deliveries(account, delivery_id, mailbox, uid, created) VALUES (?, ?, ?, ?, ?)').run(cur.account, b.deliveryKey, cur.name, meta.uid, Date.now());
              }
              this.db.exec('RELEASE one_append');
              fts.push(...row);
              done.push({ b, meta, uidValidity: cur.uid_validity, mailbox: cur.name });
            } catch (err) {
              this.db.exec('ROLLBACK TO one_append');
              this.db.exec('RELEASE one_append');
              done.push({ b, err });
            }
          }
          this.db.exec('COMMIT');
          committed = true;
        } catch (err) {
          if (this.db.isTransaction) this.db.exec('ROLLBACK');
          redundant = false;
          for (const d of done) { d.meta = undefined; d.earlier = undefined; d.err = err; }
          if (done.length < batch.length) for (const b of batch.slice(done.length)) done.push({ b, err });
        } finally {
          this.db.exec('PRAGMA synchronous = FULL');
        }
        if (committed) {
          this.queueFts(fts);
          try {
            await this.syncIndexLog();
          } catch (err) {
            // The rows are committed but maybe not on disk: the callers hear of a failure (a delivery is retried
            // and finds its id; an APPEND gets NO), and the files are on disk for the start-up reconciliation.
            this.logger.error({ err: (err as Error).message }, 'fsync of the store index log failed');
            for (const d of done) if (d.meta || d.earlier) { d.meta = undefined; d.earlier = undefined; d.err = err; d.kept = true; }
          }
        }
        if (redundant) await this.processPendingUnlinks().catch((err: unknown) => this.logger.error({ err: (err as Error).message }, 'removing a redundant delivery copy failed; retried at start'));
        for (const d of done) {
          if (d.meta) {
            this.emit({ type: 'exists', mailboxId: d.b.mailboxId, messages: [d.meta], highestModseq: d.meta.modseq, origin: d.b.origin });
            d.b.resolve({ kind: 'stored', result: { uid: d.meta.uid, uidValidity: d.uidValidity!, modseq: d.meta.modseq }, mailbox: d.mailbox! });
          } else if (d.earlier) {
            d.b.resolve({ kind: 'earlier', mailbox: d.earlier.mailbox, uid: d.earlier.uid });
          } else {
            // A committed row keeps its file; only a refused or rolled-back append removes it.
            if (!d.kept) await fsp.rm(path.join(d.b.dir, 'cur', d.b.file), { force: true });
            d.b.reject(d.err);
          }
        }
      }
      this.committing = false;
    })();
  }

  /** Resolves when no append is writing its file, or after `ms`. */
  private filesWritten(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.filesSettled.push(() => { clearTimeout(timer); resolve(); });
    });
  }

  /**
   * Makes committed index transactions durable: fsyncs the write-ahead log on libuv's pool (synchronous=FULL
   * would do it inside COMMIT, blocking every session for the fsync). A log that is gone was checkpointed into
   * the database, which SQLite fsyncs before it drops the log.
   */
  private async syncIndexLog(): Promise<void> {
    try {
      await syncPath(this.walPath, true);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** Early refusal before writing a file; the transaction checks again. */
  private checkQuota(account: string, bytes: number): void {
    const r = this.q('SELECT quota_bytes, used_bytes FROM accounts WHERE address = ?').get(account) as { quota_bytes: number; used_bytes: number } | undefined;
    if (r && r.quota_bytes > 0 && r.used_bytes + bytes > r.quota_bytes) throw new StoreError('OVERQUOTA', `quota exceeded (${r.used_bytes + bytes} > ${r.quota_bytes} bytes)`);
  }

  /**
   * From now on deliver() runs on a thread of its own (delivery-thread.ts), which this store hears every change
   * from; close() ends it. The runtime's store does this (create-store.ts); tests may use either.
   */
  deliverOnThread(options: { idleMs?: number } = {}): void {
    this.deliveryThread ??= new DeliveryThread(
      { stateDir: this.options.stateDir, maxMessageBytes: this.maxMessageBytes, ...options },
      { event: (e) => this.emit(e), logger: this.logger },
    );
  }

  async deliver(account: string, message: Buffer, options: DeliveryOptions): Promise<DeliveryResult> {
    if (this.deliveryThread) return this.track(this.deliveryThread.deliver(account, message, options));
    const a = this.requireAccount(account);
    let key: string | undefined;
    if (options.deliveryId !== undefined) {
      if (options.deliveryId.length === 0 || options.deliveryId.length > MAX_DELIVERY_ID_LENGTH) {
        throw new StoreError('CANNOT', `delivery id must be 1 to ${MAX_DELIVERY_ID_LENGTH} characters`);
      }
      key = deliveryKey(options.deliveryId);
      if (Date.now() - this.lastDeliveryPrune > DELIVERY_PRUNE_EVERY_MS) this.pruneDeliveries();
      const earlier = this.q('SELECT mailbox, uid FROM deliveries WHERE account = ? AND delivery_id = ?').get(a, key) as { mailbox: string; uid: number } | undefined;
      if (earlier) return { ok: true, mailbox: earlier.mailbox, uid: earlier.uid };
    }
    const mb = this.deliveryMailbox(a, options.mailbox);
    try {
      const r = await this.track(this.appendInner(mb.id, message, { flags: options.flags ?? [], internalDate: options.internalDate ?? new Date() }, undefined, key));
      return r.kind === 'stored' ? { ok: true, mailbox: r.mailbox, uid: r.result.uid } : { ok: true, mailbox: r.mailbox, uid: r.uid };
    } catch (err) {
      if (err instanceof StoreError && (err.code === 'OVERQUOTA' || err.code === 'TOOBIG')) return { ok: false, reason: 'overquota', message: err.message };
      throw err;
    }
  }

  /** INBOX, or the mailbox with the special use (created when the user deleted it). */
  private deliveryMailbox(account: string, which: 'INBOX' | 'Junk' | 'Sent'): MailboxRow {
    if (which !== 'INBOX') {
      const r = this.q('SELECT * FROM mailboxes WHERE account = ? AND special_use = ?').get(account, `\\${which}`) as MailboxRow | undefined;
      if (r) return r;
    }
    const existing = this.mailboxRow(account, which);
    if (existing) return existing;
    return this.tx(() => this.insertMailbox(account, which, which === 'INBOX' ? null : `\\${which}` as SpecialUse));
  }

  storeFlags(mailboxId: number, uids: UidSet, op: StoreFlagsOperation, origin?: unknown): StoreFlagsResult {
    const opFlags = parseFlags(op.flags);
    const result = this.tx(() => {
      this.mailboxById(mailboxId);
      const params: SQLInputValue[] = [mailboxId];
      const where = this.uidWhere(mailboxId, uids, params);
      const rows = this.db.prepare(`SELECT id, uid, flags, keywords, modseq FROM messages m WHERE mailbox_id = ? AND ${where} ORDER BY uid`).all(...params) as unknown as MessageRow[];
      const messages: StoreFlagsResult['messages'] = [];
      const modified: number[] = [];
      let modseq = 0;
      for (const r of rows) {
        if (op.unchangedSince !== undefined && r.modseq > op.unchangedSince) { modified.push(r.uid); continue; }
        const cur = { bits: r.flags, keywords: keywordsFromColumn(r.keywords) };
        const next = applyFlags(op.mode, cur, opFlags);
        const kw = keywordsColumn(next.keywords);
        if (next.bits === r.flags && kw === r.keywords) {
          messages.push({ uid: r.uid, flags: flagList(r.flags, r.keywords), modseq: r.modseq, changed: false });
          continue;
        }
        modseq ||= this.bumpModseq(mailboxId); // one modseq for the whole STORE command
        this.q('UPDATE messages SET flags = ?, keywords = ?, modseq = ? WHERE id = ?').run(next.bits, kw, modseq, r.id);
        messages.push({ uid: r.uid, flags: flagList(next.bits, kw), modseq, changed: true });
      }
      const highest = this.mailboxById(mailboxId).highest_modseq;
      return { messages, modified, highestModseq: highest };
    });
    const changed = result.messages.filter((m) => m.changed).map(({ uid, flags, modseq }) => ({ uid, flags, modseq }));
    if (changed.length) this.emit({ type: 'flags', mailboxId, messages: changed, highestModseq: result.highestModseq, origin });
    return result;
  }

  copy(fromMailboxId: number, uids: UidSet, toMailboxId: number, origin?: unknown): Promise<CopyResult> {
    return this.track(this.copyOrMove(fromMailboxId, uids, toMailboxId, false, origin));
  }

  move(fromMailboxId: number, uids: UidSet, toMailboxId: number, origin?: unknown): Promise<CopyResult> {
    return this.track(this.copyOrMove(fromMailboxId, uids, toMailboxId, true, origin));
  }

  private async copyOrMove(fromId: number, uids: UidSet, toId: number, isMove: boolean, origin: unknown): Promise<CopyResult> {
    const from = this.mailboxById(fromId);
    const to = this.mailboxById(toId);
    if (from.account !== to.account) throw new StoreError('CANNOT', 'copy across accounts');
    if (isMove && fromId === toId) throw new StoreError('CANNOT', 'source and destination are the same mailbox');
    const params: SQLInputValue[] = [fromId];
    const where = this.uidWhere(fromId, uids, params);
    const rows = this.db.prepare(`SELECT * FROM messages m WHERE mailbox_id = ? AND ${where} ORDER BY uid`).all(...params) as unknown as MessageRow[];
    if (rows.length === 0) return { uidValidity: to.uid_validity, map: [] };
    const bytes = rows.reduce((s, r) => s + r.size, 0);
    if (!isMove) this.checkQuota(to.account, bytes);
    const base = accountDir(this.mailRoot, from.account);
    const fromDir = path.join(base, from.folder);
    const toDir = path.join(base, to.folder);
    const links: string[] = [];
    try {
      for (const r of rows) links.push(await linkMessageFile(fromDir, r.file, toDir, r.size, maildirInfo(r.flags)));
      await fsyncDir(path.join(toDir, 'cur'));
    } catch (err) {
      await Promise.all(links.map((l) => fsp.rm(path.join(toDir, 'cur', l), { force: true })));
      throw err;
    }
    let added: MessageMeta[] = [];
    let map: Array<[number, number]> = [];
    let expunged: number[] = [];
    let srcModseq = 0;
    try {
      this.tx(() => {
        const dest = this.mailboxById(toId);
        this.mailboxById(fromId);
        const present = rows.filter((r) => this.q('SELECT 1 FROM messages WHERE id = ?').get(r.id)); // expunged meanwhile?
        if (!isMove) this.chargeQuota(dest.account, present.reduce((s, r) => s + r.size, 0), present.length);
        added = present.map((r) => this.insertMessage(dest, r.content_id, links[rows.indexOf(r)]!, r.flags, r.keywords, r.size, r.internal_date, r.internal_zone));
        map = present.map((r, i) => [r.uid, added[i]!.uid]);
        if (isMove && present.length) {
          srcModseq = this.bumpModseq(fromId);
          for (const r of present) {
            this.q('DELETE FROM messages WHERE id = ?').run(r.id);
            this.q('INSERT OR REPLACE INTO vanished(mailbox_id, uid, modseq) VALUES (?, ?, ?)').run(fromId, r.uid, srcModseq);
            this.q('INSERT OR REPLACE INTO pending_unlink(path, recursive) VALUES (?, 0)').run(path.join(fromDir, 'cur', r.file));
          }
          expunged = present.map((r) => r.uid);
          this.pruneVanished(fromId);
        }
        const dropped = rows.filter((r) => !present.includes(r));
        for (const r of dropped) this.q('INSERT OR REPLACE INTO pending_unlink(path, recursive) VALUES (?, 0)').run(path.join(toDir, 'cur', links[rows.indexOf(r)]!));
      });
    } catch (err) {
      await Promise.all(links.map((l) => fsp.rm(path.join(toDir, 'cur', l), { force: true })));
      throw err;
    }
    const destHighest = added.length ? added[added.length - 1]!.modseq : to.highest_modseq;
    if (added.length) this.emit({ type: 'exists', mailboxId: toId, messages: added, highestModseq: destHighest, origin });
    if (expunged.length) this.emit({ type: 'expunge', mailboxId: fromId, uids: expunged, highestModseq: srcModseq, origin });
    await this.processPendingUnlinks();
    return { uidValidity: to.uid_validity, map };
  }

  expunge(mailboxId: number, uids?: UidSet, origin?: unknown): Promise<ExpungeResult> {
    return this.track(this.expungeInner(mailboxId, uids, origin));
  }

  private async expungeInner(mailboxId: number, uids: UidSet | undefined, origin: unknown): Promise<ExpungeResult> {
    const result = this.tx(() => {
      const mb = this.mailboxById(mailboxId);
      const params: SQLInputValue[] = [mailboxId];
      const where = this.uidWhere(mailboxId, uids, params);
      const rows = this.db.prepare(`SELECT id, uid, content_id, file, size FROM messages m WHERE mailbox_id = ? AND (flags & 8) != 0 AND ${where} ORDER BY uid`)
        .all(...params) as unknown as MessageRow[];
      if (rows.length === 0) return { uids: [], highestModseq: mb.highest_modseq };
      const modseq = this.bumpModseq(mailboxId);
      const dir = path.join(accountDir(this.mailRoot, mb.account), mb.folder, 'cur');
      for (const r of rows) {
        this.q('DELETE FROM messages WHERE id = ?').run(r.id);
        this.q('INSERT OR REPLACE INTO vanished(mailbox_id, uid, modseq) VALUES (?, ?, ?)').run(mailboxId, r.uid, modseq);
        this.q('INSERT OR REPLACE INTO pending_unlink(path, recursive) VALUES (?, 0)').run(path.join(dir, r.file));
      }
      this.chargeQuota(mb.account, -rows.reduce((s, r) => s + r.size, 0), -rows.length);
      this.dropUnreferencedContents(rows.map((r) => r.content_id));
      this.pruneVanished(mailboxId);
      return { uids: rows.map((r) => r.uid), highestModseq: modseq };
    });
    if (result.uids.length) this.emit({ type: 'expunge', mailboxId, uids: result.uids, highestModseq: result.highestModseq, origin });
    await this.processPendingUnlinks();
    return result;
  }

  search(mailboxId: number, key: SearchKey): number[] {
    this.flushFtsQueue();
    if (usesFts(key)) this.deliveryThread?.flushFts();
    const resolved = this.resolveSearchSets(mailboxId, key);
    const { sql, params } = compileSearch(resolved);
    const rows = this.db.prepare(`SELECT m.uid FROM messages m JOIN contents c ON c.id = m.content_id WHERE m.mailbox_id = ? AND ${sql} ORDER BY m.uid`)
      .all(mailboxId, ...params) as Array<{ uid: number }>;
    return rows.map((r) => r.uid);
  }

  private resolveSearchSets(mailboxId: number, key: SearchKey): SearchKey {
    switch (key.type) {
      case 'uid': return { type: 'uid', set: this.resolveSet(mailboxId, key.set) };
      case 'and': case 'or': return { type: key.type, keys: key.keys.map((k) => this.resolveSearchSets(mailboxId, k)) };
      case 'not': return { type: 'not', key: this.resolveSearchSets(mailboxId, key.key) };
      default: return key;
    }
  }

  /**
   * Keeps the newest `vanishedKeep` expunge records of a mailbox (in a write transaction). The MODSEQ up to which
   * records were dropped is kept in `meta`, so changesSince() knows when its answer would be incomplete.
   */
  private pruneVanished(mailboxId: number): void {
    const cut = this.q('SELECT modseq FROM vanished WHERE mailbox_id = ? ORDER BY modseq DESC LIMIT 1 OFFSET ?').get(mailboxId, this.vanishedKeep) as { modseq: number } | undefined;
    if (!cut) return;
    this.q('DELETE FROM vanished WHERE mailbox_id = ? AND modseq <= ?').run(mailboxId, cut.modseq);
    this.q('INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)').run(`vanished_pruned:${mailboxId}`, String(cut.modseq));
  }

  changesSince(mailboxId: number, modseq: number, uids?: UidSet): ChangesSince {
    const p1: SQLInputValue[] = [mailboxId, modseq];
    const w1 = this.uidWhere(mailboxId, uids, p1);
    const changed = (this.db.prepare(`SELECT uid, flags, keywords, modseq, size, internal_date, internal_zone FROM messages m WHERE mailbox_id = ? AND modseq > ? AND ${w1} ORDER BY uid`)
      .all(...p1) as unknown as MessageRow[]).map(metaOf);
    const p2: SQLInputValue[] = [mailboxId, modseq];
    const w2 = uids ? uidSetSql(this.resolveSet(mailboxId, uids).map(([lo, hi]) => [lo, hi === Infinity ? UID_MAX : hi] as const), p2, 'v.uid') : '1';
    const pruned = Number((this.q('SELECT value FROM meta WHERE key = ?').get(`vanished_pruned:${mailboxId}`) as { value: string } | undefined)?.value ?? 0);
    if (modseq < pruned) return { changed, vanished: this.absentUids(mailboxId, uids) };
    const vanished = (this.db.prepare(`SELECT uid FROM vanished v WHERE mailbox_id = ? AND modseq > ? AND ${w2} ORDER BY uid`).all(...p2) as Array<{ uid: number }>).map((r) => r.uid);
    return { changed, vanished };
  }

  /** Every UID below UIDNEXT (within `uids`) that has no message: what a client past the pruned records may hold. */
  private absentUids(mailboxId: number, uids?: UidSet): number[] {
    const mb = this.mailboxById(mailboxId);
    const top = mb.uid_next - 1;
    const ranges = uids ? this.resolveSet(mailboxId, uids).map(([lo, hi]) => [lo, Math.min(hi === Infinity ? top : hi, top)] as const) : [[1, top] as const];
    const present = new Set((this.q('SELECT uid FROM messages WHERE mailbox_id = ?').all(mailboxId) as Array<{ uid: number }>).map((r) => r.uid));
    const out: number[] = [];
    for (const [lo, hi] of ranges) for (let u = lo; u <= hi; u++) if (!present.has(u)) out.push(u);
    return out;
  }

  tryLock(mailboxId: number): (() => void) | null {
    if (this.locks.has(mailboxId)) return null;
    this.locks.add(mailboxId);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.locks.delete(mailboxId);
    };
  }

  /**
   * Indexes files already in `<folder>/cur/` (start-up reconciliation, imports) in one transaction: never
   * refused for quota, since the mail is already on disk and dropping it silently is worse than being over quota.
   */
  adoptFiles(mailboxId: number, files: ReadonlyArray<{ file: string; raw: Buffer; bits: number; date: number }>): MessageMeta[] {
    const prepared = files.map((f) => {
      const bytes = toCrlf(f.raw);
      return { ...f, bytes, parsed: parseMessage(bytes) };
    });
    const metas = this.tx(() => {
      const mb = this.mailboxById(mailboxId);
      const fts: FtsRow[] = [];
      const out = prepared.map((f) => {
        this.chargeQuota(mb.account, f.bytes.length, 1, false);
        const contentId = this.insertContent(f.bytes, f.parsed, fts);
        const meta = this.insertMessage(mb, contentId, f.file, f.bits, '', f.bytes.length, Math.floor(f.date), -new Date(f.date).getTimezoneOffset());
        // A delivery whose row never committed: remember it, so the pipeline's re-run finds this copy.
        const key = deliveryKeyFromFileName(f.file);
        if (key) this.q('INSERT OR IGNORE INTO deliveries(account, delivery_id, mailbox, uid, created) VALUES (?, ?, ?, ?, ?)').run(mb.account, key, mb.name, meta.uid, Date.now());
        return meta;
      });
      this.flushFts(fts);
      return out;
    });
    if (metas.length) this.emit({ type: 'exists', mailboxId, messages: metas, highestModseq: metas[metas.length - 1]!.modseq, origin: null });
    return metas;
  }

  /** Creates a mailbox row for a folder found on disk (its name decoded from the folder name). */
  adoptFolder(account: string, name: string): MailboxInfo {
    return this.createMailbox(account, name);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Files whose rows are gone

  async processPendingUnlinks(): Promise<void> {
    const rows = this.q('SELECT path, recursive FROM pending_unlink').all() as Array<{ path: string; recursive: number }>;
    for (const r of rows) {
      if (!r.path.startsWith(this.mailRoot + path.sep)) { // only ever paths we built; refuse anything else
        this.logger.error({ path: r.path }, 'pending unlink outside the mail folder ignored');
      } else {
        await fsp.rm(r.path, { force: true, recursive: r.recursive === 1 });
      }
      this.q('DELETE FROM pending_unlink WHERE path = ?').run(r.path);
    }
  }

  /** Makes the Maildir folders of a mailbox exist (INBOX of a new account, before any message). */
  async ensureFolders(mailboxId: number): Promise<void> {
    const mb = this.mailboxById(mailboxId);
    await ensureMaildir(path.join(accountDir(this.mailRoot, mb.account), mb.folder));
  }

  get stateMailRoot(): string {
    return this.mailRoot;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.pendingWrites]);
    await this.deliveryThread?.close();
    this.writeFtsQueue();
    this.stmts.clear();
    this.db.close();
  }
}

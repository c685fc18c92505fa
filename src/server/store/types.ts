// The mailbox store as IMAP, POP3 and webmail sessions see it. Everything that only reads or changes the SQLite
// index is synchronous (node:sqlite is); anything that touches message files is async.
//
// Conventions:
// - Accounts are named by their canonical address (lower-case, A-label domain), as returned by authenticate().
// - Mailbox names are UTF-8 (the IMAP layer decodes modified UTF-7 first), hierarchy delimiter `/`, `INBOX` is
//   case-insensitive. Names are validated by the store (see MAILBOX_DELIMITER and StoreError 'CANNOT').
// - After looking a mailbox up, sessions use its numeric `id`: it survives RENAME.
// - Message sequence numbers are a session concept: the IMAP session keeps its own seq → UID map (from
//   listMessages() at SELECT plus notifier events) and translates sequence sets to UID sets before calling here.
// - MODSEQ values are JS numbers (safe up to 2^53); every change of flags, every append and every expunge in a
//   mailbox takes the next value of that mailbox's HIGHESTMODSEQ.
// - `origin` on mutating calls is any value identifying the calling session; it is echoed in notifier events so
//   the session can skip changes it already reported itself.
import type { Readable } from 'node:stream';
import type { AccountInfo, DeliveryStore } from './api.ts';

export type { AccountInfo, DeliveryStore, DeliveryOptions, DeliveryResult, RecipientResolution } from './api.ts';

export const MAILBOX_DELIMITER = '/';

/** System flags the store knows; anything else in a flag list is a keyword (an IMAP atom, case-preserved). */
export const SYSTEM_FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'] as const;
export type SystemFlag = (typeof SYSTEM_FLAGS)[number];

export type SpecialUse = '\\Drafts' | '\\Sent' | '\\Junk' | '\\Trash' | '\\Archive';

/** Error codes IMAP maps to response codes ([NONEXISTENT], [OVERQUOTA], …) and POP3 to -ERR [IN-USE] etc. */
export type StoreErrorCode =
  | 'NONEXISTENT' // mailbox or account does not exist
  | 'ALREADYEXISTS' // CREATE/RENAME target exists
  | 'CANNOT' // invalid mailbox name, or an operation not allowed on this mailbox (delete INBOX)
  | 'HASCHILDREN' // DELETE of a mailbox with children
  | 'OVERQUOTA' // the account's quota would be exceeded
  | 'TOOBIG' // message larger than the store's maximum message size
  | 'INUSE' // mailbox locked (POP3)
  | 'LIMIT' // a per-account limit (number of mailboxes, keywords, name length)
  | 'PARSE'; // message bytes unusable (empty, or no header/body structure at all)

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Mailboxes

export interface MailboxInfo {
  id: number;
  account: string;
  /** Full UTF-8 name with `/` as delimiter; `INBOX` always spelled in upper case. */
  name: string;
  specialUse: SpecialUse | null;
  subscribed: boolean;
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
}

export interface MailboxStatus {
  messages: number;
  /** Messages without \Seen. */
  unseen: number;
  /** Messages no session has claimed as recent yet (IMAP4rev1 \Recent; see claimRecent). */
  recent: number;
  /** Messages with \Deleted. */
  deleted: number;
  uidNext: number;
  uidValidity: number;
  highestModseq: number;
  /** Sum of RFC822.SIZE of the messages (STATUS SIZE, RFC 8438). */
  sizeBytes: number;
  /** UID of the first message without \Seen, or null. */
  firstUnseenUid: number | null;
}

// ---------------------------------------------------------------------------------------------------------------
// Messages

/** Inclusive UID ranges `[low, high]`; `high` may be Infinity for `n:*`. Order and overlap do not matter. */
export type UidSet = ReadonlyArray<readonly [number, number]>;

export interface MessageMeta {
  uid: number;
  /** System flags and keywords together, e.g. ['\\Seen', '$Forwarded']. Never contains \Recent. */
  flags: string[];
  modseq: number;
  /** RFC822.SIZE: octets of the message with CRLF line ends (as readMessage returns it). */
  size: number;
  /** INTERNALDATE: ms since epoch. */
  internalDate: number;
  /** Offset of the internal date's zone in minutes east of UTC (APPEND date-time keeps its zone). */
  internalDateZone: number;
}

/** One address of an ENVELOPE field (RFC 3501 §7.4.2). Group start: mailbox = group name, host = null; group end: mailbox = null, host = null. */
export interface EnvelopeAddress {
  /** Display name as written (encoded words NOT decoded, as IMAP sends it), or null. */
  name: string | null;
  /** Source route (obsolete), or null. */
  adl: string | null;
  mailbox: string | null;
  host: string | null;
}

/** ENVELOPE: every string is the unfolded header value as written (encoded words kept), null when absent. */
export interface Envelope {
  date: string | null;
  subject: string | null;
  from: EnvelopeAddress[] | null;
  /** Defaults to `from` when the header is absent (RFC 3501), already applied. */
  sender: EnvelopeAddress[] | null;
  /** Defaults to `from` when the header is absent (RFC 3501), already applied. */
  replyTo: EnvelopeAddress[] | null;
  to: EnvelopeAddress[] | null;
  cc: EnvelopeAddress[] | null;
  bcc: EnvelopeAddress[] | null;
  inReplyTo: string | null;
  messageId: string | null;
}

/** Content-Disposition or Content-Type parameters as `[name, value]` pairs, in header order. */
export type BodyParams = Array<[string, string]>;

export interface BodyDisposition {
  /** e.g. "attachment", "inline" as written. */
  type: string;
  params: BodyParams;
}

/** Byte offsets of a part inside the message bytes returned by readMessage(); lets IMAP slice BODY[section]. */
export interface PartOffsets {
  /** Start of the part's header (for the top level: 0). */
  headerStart: number;
  /** Start of the part's body (just after the blank line, or headerStart when the part has no header). */
  bodyStart: number;
  /** End of the part's body (exclusive): before the CRLF that precedes the next boundary. */
  bodyEnd: number;
}

interface BodyPartCommon {
  /** Lower-case media type and subtype ("text", "plain"); defaults applied (text/plain, or message/rfc822 inside multipart/digest). */
  type: string;
  subtype: string;
  /** Content-Type parameters (charset, name, boundary, …). */
  params: BodyParams;
  disposition: BodyDisposition | null;
  /** Content-Language values, or null. */
  language: string[] | null;
  location: string | null;
  offsets: PartOffsets;
}

export interface SinglePart extends BodyPartCommon {
  kind: 'single';
  id: string | null;
  description: string | null;
  /** Content-Transfer-Encoding as written, upper-cased; "7BIT" when absent. */
  encoding: string;
  /** Body octets. */
  size: number;
  md5: string | null;
  /** Body lines: set for text/* and message/rfc822 (and message/global), else null. */
  lines: number | null;
  /** message/rfc822 (and message/global) only: the enclosed message. */
  message: { envelope: Envelope; body: BodyStructure } | null;
}

export interface MultiPart extends BodyPartCommon {
  kind: 'multipart';
  type: 'multipart';
  parts: BodyStructure[];
}

/** BODYSTRUCTURE as a tree; BODY (non-extensible) is the same tree with the extension fields left out. */
export type BodyStructure = SinglePart | MultiPart;

/** What a FETCH can ask of the index without opening the message file. */
export interface FetchWanted {
  envelope?: boolean;
  /** ENVELOPE as cached IMAP text in `envelopeImap` (absent only for a row indexed without it). */
  envelopeImap?: boolean;
  bodyStructure?: boolean;
  /** The raw header block (bytes up to and including the blank line): BODY[HEADER], HEADER.FIELDS, RFC822.HEADER. */
  header?: boolean;
}

export interface FetchedMessage extends Omit<MessageMeta, 'flags'> {
  /** As MessageMeta's, read-only: lists are shared between messages. */
  flags: readonly string[];
  envelope?: Envelope;
  /** ENVELOPE in IMAP syntax for any client: quoted strings, literals where needed; see imap-envelope.ts. */
  envelopeImap?: string;
  bodyStructure?: BodyStructure;
  header?: Buffer;
}

export interface OpenedMailbox {
  info: MailboxInfo;
  status: MailboxStatus;
  /** As listUids() returns them: shared, never changed. */
  uids: readonly number[];
  keywords: string[];
}

export interface AppendOptions {
  flags?: readonly string[];
  /** INTERNALDATE; defaults to now. */
  internalDate?: Date;
  /** Zone of the APPEND date-time in minutes east of UTC; defaults to the server's zone at that date. */
  internalDateZone?: number;
}

export interface AppendResult {
  uid: number;
  uidValidity: number;
  modseq: number;
}

export interface StoreFlagsOperation {
  mode: 'add' | 'remove' | 'replace';
  flags: readonly string[];
  /** CONDSTORE: messages whose modseq is greater than this are not changed and come back in `modified`. */
  unchangedSince?: number;
}

export interface StoreFlagsResult {
  /** Every message of the set that exists and was not refused by UNCHANGEDSINCE, with its flags after the store. */
  messages: Array<{ uid: number; flags: string[]; modseq: number; changed: boolean }>;
  /** UIDs refused by UNCHANGEDSINCE ([MODIFIED uid-set]). */
  modified: number[];
  highestModseq: number;
}

export interface CopyResult {
  /** UIDVALIDITY of the destination (COPYUID). */
  uidValidity: number;
  /** Source UID → destination UID, in source UID order. */
  map: Array<[number, number]>;
}

export interface ExpungeResult {
  /** Expunged UIDs, ascending. */
  uids: number[];
  highestModseq: number;
}

export interface ChangesSince {
  /** Messages whose modseq is greater than the given one (flags changed or appended). */
  changed: MessageMeta[];
  /** UIDs expunged with a modseq greater than the given one (QRESYNC VANISHED (EARLIER)). */
  vanished: number[];
}

// ---------------------------------------------------------------------------------------------------------------
// Search: a parsed tree. IMAP turns sequence sets into UID sets and composite keys (NEW, OLD, RECENT) into these
// before calling search(); FROM/TO/CC/BCC/SUBJECT are header keys.

export type DateComparison = 'before' | 'on' | 'since';

export type SearchKey =
  | { type: 'all' }
  | { type: 'and'; keys: SearchKey[] }
  | { type: 'or'; keys: SearchKey[] }
  | { type: 'not'; key: SearchKey }
  | { type: 'uid'; set: UidSet }
  /** Flag set (`set: true`) or not set (UNSEEN = { flag: '\\Seen', set: false }); keywords too. */
  | { type: 'flag'; flag: string; set: boolean }
  /** Case-insensitive substring in the named header field's decoded value; an empty value matches "has field". */
  | { type: 'header'; field: string; value: string }
  /** Case-insensitive substring in the decoded body text (text parts, charset-decoded). */
  | { type: 'body'; value: string }
  /** Case-insensitive substring in the decoded header fields or body text. */
  | { type: 'text'; value: string }
  /** INTERNALDATE day (in its own zone) compared with `date` (YYYY-MM-DD). */
  | { type: 'internaldate'; op: DateComparison; date: string }
  /** Date: header day (in its own zone, time ignored) compared with `date` (YYYY-MM-DD); no parseable Date never matches. */
  | { type: 'sentdate'; op: DateComparison; date: string }
  | { type: 'size'; op: 'larger' | 'smaller'; bytes: number }
  /** CONDSTORE: modseq >= value. */
  | { type: 'modseq'; value: number };

// ---------------------------------------------------------------------------------------------------------------
// Notifier

export type StoreEvent =
  /** New messages (append, delivery, copy, move in). */
  | { type: 'exists'; mailboxId: number; messages: MessageMeta[]; highestModseq: number; origin: unknown }
  | { type: 'expunge'; mailboxId: number; uids: number[]; highestModseq: number; origin: unknown }
  | { type: 'flags'; mailboxId: number; messages: Array<{ uid: number; flags: string[]; modseq: number }>; highestModseq: number; origin: unknown }
  /** The mailbox was deleted (sessions that selected it should close it) or renamed (new name given). */
  | { type: 'mailbox'; mailboxId: number; change: 'deleted' | 'renamed'; name: string; origin: unknown };

export type StoreListener = (event: StoreEvent) => void;

export interface StoreNotifier {
  /** Events are delivered synchronously right after the change commits; returns the unsubscribe function. */
  subscribe(mailboxId: number, listener: StoreListener): () => void;
}

// ---------------------------------------------------------------------------------------------------------------
// Startup reconciliation report

export interface ReconcileReport {
  /** Message files found without an index row and indexed now (path relative to the state dir). */
  indexed: string[];
  /** Index rows whose file is missing: kept in the index (so nothing silently vanishes) and reported. */
  missing: Array<{ account: string; mailbox: string; uid: number; file: string }>;
}

export interface QuotaUsage {
  usedBytes: number;
  /** 0 = unlimited. */
  limitBytes: number;
  messages: number;
}

export interface UserConfig {
  address: string;
  name: string;
  passwordHash: string;
  quotaBytes: number;
}

export interface AliasConfig {
  /** `name@domain`, or `@domain` for a catch-all. */
  from: string;
  to: string[];
}

// ---------------------------------------------------------------------------------------------------------------
// The store

export interface MailStore extends DeliveryStore {
  // Accounts -------------------------------------------------------------------------------------------------
  /** Replaces accounts and aliases with the config's; existing mail stays; default mailboxes are created. */
  syncAccounts(users: readonly UserConfig[], aliases: readonly AliasConfig[]): void;
  /** Same as verifyPassword; by account address only (not aliases). Constant work whether or not the account exists. */
  authenticate(address: string, password: string): Promise<AccountInfo | null>;
  account(address: string): AccountInfo | null;

  // Mailboxes ------------------------------------------------------------------------------------------------
  listMailboxes(account: string): MailboxInfo[];
  /** null when it does not exist; throws StoreError('CANNOT') for an invalid name. */
  getMailbox(account: string, name: string): MailboxInfo | null;
  getMailboxById(id: number): MailboxInfo | null;
  /** Creates missing parents too. */
  createMailbox(account: string, name: string, specialUse?: SpecialUse | null): MailboxInfo;
  deleteMailbox(account: string, name: string, origin?: unknown): Promise<void>;
  /** Renames children too; renaming INBOX moves its messages into the new mailbox (RFC 3501). */
  renameMailbox(account: string, from: string, to: string, origin?: unknown): Promise<void>;
  /** Subscriptions may name mailboxes that do not exist (RFC 3501 LSUB). */
  setSubscribed(account: string, name: string, subscribed: boolean): void;
  listSubscriptions(account: string): string[];
  status(mailboxId: number): MailboxStatus;
  /** Keywords used in this mailbox (for FLAGS / PERMANENTFLAGS). */
  keywords(mailboxId: number): string[];
  /** Returns the UIDs that were \Recent and clears them, so only the first session to SELECT sees them. */
  claimRecent(mailboxId: number): number[];
  /** What SELECT needs (getMailbox, status, listUids, keywords) read as one snapshot; null when no such mailbox. */
  openMailbox(account: string, name: string): OpenedMailbox | null;

  // Messages -------------------------------------------------------------------------------------------------
  /** UIDs of the mailbox, ascending: the cheap way to build a session's sequence map at SELECT. Shared: never
   *  changes after it is returned (later changes make a new list), and callers must not change it either. */
  listUids(mailboxId: number): readonly number[];
  /** Metadata of the messages in `uids` (all when omitted), ascending UID. */
  listMessages(mailboxId: number, uids?: UidSet): MessageMeta[];
  /** Metadata plus the cached parts of the message asked for, ascending UID; never opens message files. */
  fetch(mailboxId: number, uids: UidSet, wanted: FetchWanted): FetchedMessage[];
  /** The message bytes (CRLF line ends); null when the UID does not exist. Throws when the file is missing. */
  readMessage(mailboxId: number, uid: number): Promise<Buffer | null>;
  /** The message bytes as a stream (large messages, POP3 RETR); null when the UID does not exist. */
  openMessage(mailboxId: number, uid: number): Promise<Readable | null>;
  append(mailboxId: number, message: Buffer, options?: AppendOptions, origin?: unknown): Promise<AppendResult>;
  storeFlags(mailboxId: number, uids: UidSet, op: StoreFlagsOperation, origin?: unknown): StoreFlagsResult;
  copy(fromMailboxId: number, uids: UidSet, toMailboxId: number, origin?: unknown): Promise<CopyResult>;
  /** COPY then expunge from the source, atomically in the index (RFC 6851). */
  move(fromMailboxId: number, uids: UidSet, toMailboxId: number, origin?: unknown): Promise<CopyResult>;
  /** Expunges messages with \Deleted (only those in `uids` when given: UID EXPUNGE). */
  expunge(mailboxId: number, uids?: UidSet, origin?: unknown): Promise<ExpungeResult>;
  /** Matching UIDs, ascending. Text keys use the FTS5 index; nothing opens message files. */
  search(mailboxId: number, key: SearchKey): number[];
  /** CONDSTORE CHANGEDSINCE / QRESYNC. `uids` limits the answer. */
  changesSince(mailboxId: number, modseq: number, uids?: UidSet): ChangesSince;

  // Quota and locks ------------------------------------------------------------------------------------------
  quota(account: string): QuotaUsage;
  /** Exclusive lock on a mailbox for a POP3 session; returns the release function, or null when already held. */
  tryLock(mailboxId: number): (() => void) | null;

  readonly notifier: StoreNotifier;
  /** What the last startup reconciliation found. */
  readonly reconcileReport: ReconcileReport;
  /** Closes the database; pending async writes finish first. */
  close(): Promise<void>;
}

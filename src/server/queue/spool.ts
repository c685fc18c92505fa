// The durable spool: one entry file per message (`<id>.msg`: a preamble with the envelope and the state at
// accept, then the message bytes as received; see spool-format.ts), in one folder. Accept writes it to a temp
// file, fdatasyncs it, renames it into place and fsyncs the folder (shared with concurrent accepts: FolderSync):
// one file fsync per message. The entry file is the commit marker. State changes after accept go to a side file
// `<id>.json`, written durably and only when something changes; it wins over the preamble. A local delivery that
// finishes an entry removes it without a last state write.
// Entry files are recycled by the server's spool: a removed entry's file is renamed to a spare temp name, and the
// next accept overwrites it instead of creating a file, cutting off whatever the spare held beyond the new entry
// before its fdatasync. Creating an inode can be the costliest step of an accept: on the benchmark machine's ext4
// (no journal) a create took from 0.02 to 1.3 ms of kernel CPU depending on the file system's recent history,
// against about 30 µs for a rename. A spare keeps its blocks: emptying it on removal freed them (a discard on a
// file system mounted with it, about 0.3 ms) and the next accept allocated them again; overwritten in place, a
// message of about the same size changes no block at all. So a spare holds the bytes of the entry it was until
// the next accept overwrites it (in the 0700 spool folder, as a temp file no listing shows), at most 256 of them
// and only files up to 256 KiB (larger ones are unlinked). Spares are temp files, so a restart removes them.
import { EventEmitter } from 'node:events';
import { closeSync, createReadStream, existsSync, fstatSync, ftruncate, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { envelopeAddressProblem, sameAddress } from './address.ts';
import type {
  AcceptOptions, EnqueueOptions, LocalResult, MarkLocalOptions, RecipientDsn, RecipientState, Spool, SpoolEntry, SpoolEnvelope,
} from './api.ts';
import { SpoolError } from './api.ts';
import { FolderSync, createAsync, fdatasyncAsync, fsyncDir, renameAsync, tempPathFor, unlinkAsync, writeChunks, writeFileDurable } from './durable.ts';
import { returnsWholeMessage, wantsNotice } from './dsn.ts';
import type { OriginalMessage } from './dsn.ts';
import { encodePreamble, messageOffset, readMessage, readMessageHead, readPreamble, reservePreamble } from './spool-format.ts';
import type { EntryFile } from './spool-format.ts';
import { prepareSpoolDir } from './spool-open.ts';
import { assertSpoolId, isSpoolId, newSpoolId } from './spool-id.ts';

const MAX_RECIPIENTS = 1000;
/** Spare entry files kept for reuse. */
const MAX_SPARES = 256;
/** A removed entry file larger than this is unlinked rather than kept as a spare (bounds the disk spares hold). */
const MAX_SPARE_BYTES = 256 * 1024;
const MAX_PREPEND = 64 * 1024;
/** Bytes of the header kept while streaming, to find the Message-ID for traces. */
const HEADER_SCAN = 64 * 1024;

/** What the state file holds: the public entry plus what only the queue needs. */
export interface StoredEntry extends SpoolEntry {
  /** Header lines sent in front of the message on outbound delivery. */
  prependHeaders?: string;
  /** Message-ID without angle brackets, when the header had one. */
  messageId?: string;
}

export interface SpoolEvents {
  /** Recipients were handed to the outbound queue. */
  queued: [id: string];
  /**
   * A recipient failed for good (local delivery); the bouncer sends a DSN. `original` is the message (whole for
   * RET=FULL, else its header block), read before markLocal returns, because the caller may remove the entry
   * right after.
   */
  failed: [entry: StoredEntry, recipients: string[], original: OriginalMessage];
  /** A recipient whose NOTIFY asks for SUCCESS was stored locally; the bouncer sends a success DSN. */
  delivered: [entry: StoredEntry, recipients: string[], original: OriginalMessage];
  /** The entry left the spool. */
  removed: [id: string];
}

export interface FileSpoolOptions {
  /** The spool folder (created if missing). */
  dir: string;
  maxMessageBytes: number;
  now?: () => number;
  /** Reports files found inconsistent at open (never thrown: the spool must start). */
  warn?: (message: string) => void;
}

function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function toSpoolError(err: unknown, what: string): SpoolError {
  if (err instanceof SpoolError) return err;
  if (isDiskFull(err)) return new SpoolError('disk-full', `${what}: disk full`, { cause: err });
  return new SpoolError('internal', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/** Finds the Message-ID in a raw header block (unfolded), without angle brackets. */
export function findMessageId(head: Buffer): string | undefined {
  // Only the header section becomes a string (the first blank line ends it, whatever its line endings).
  const ends = [head.indexOf('\n\n'), head.indexOf('\n\r\n')].filter((i) => i >= 0);
  const text = head.toString('latin1', 0, ends.length ? Math.min(...ends) + 1 : head.length);
  const end = text.search(/\r?\n\r?\n/);
  const headers = (end >= 0 ? text.slice(0, end) : text).replace(/\r?\n[ \t]+/g, ' ');
  const m = /^message-id:[ \t]*<?([^\s<>]{1,250})>?/im.exec(headers);
  return m?.[1];
}

/** The DSN parameters given at RCPT TO for `address` (keyed as in `to`, else found case-insensitively). */
function recipientDsnFor(envelope: SpoolEnvelope, address: string): RecipientDsn | undefined {
  const all = envelope.recipientDsn;
  if (!all) return undefined;
  if (Object.hasOwn(all, address)) return all[address];
  const key = Object.keys(all).find((k) => sameAddress(k, address));
  return key === undefined ? undefined : all[key];
}

/** Every recipient delivered, sent or failed. */
export function isDone(entry: SpoolEntry): boolean {
  return entry.recipients.every((r) => r.status !== 'pending' && r.status !== 'queued');
}

function unlinkQuiet(path: string): void {
  try { unlinkSync(path); } catch { /* already gone */ }
}

function closeQuiet(fd: number): void {
  try { closeSync(fd); } catch { /* nothing to lose on a file being discarded */ }
}

/** A temp entry file whose writing failed: closed and removed, and the failure reported as a SpoolError. */
function discardTempFile(fd: number, tmp: string, err: unknown): never {
  closeQuiet(fd);
  unlinkQuiet(tmp);
  throw toSpoolError(err, 'cannot spool message');
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

export class FileSpool extends EventEmitter<SpoolEvents> implements Spool {
  readonly dir: string;
  readonly maxMessageBytes: number;
  private readonly now: () => number;
  private readonly warn: ((message: string) => void) | undefined;
  /** Per-entry chains so that state updates of one entry never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly folder: FolderSync;
  /** Accepts between their write and their folder fsync (see commitEntryFile). */
  private committing = 0;
  /** Empty temp files from removed entries, reused by accepts; null when this instance does not recycle. */
  private readonly spares: string[] | null;

  private constructor(options: FileSpoolOptions, recycle: boolean) {
    super();
    this.spares = recycle ? [] : null;
    this.dir = options.dir;
    this.folder = new FolderSync(options.dir);
    this.maxMessageBytes = options.maxMessageBytes;
    this.now = options.now ?? Date.now;
    this.warn = options.warn;
  }

  /**
   * Opens (creating) the spool folder, removes what a crash left half-written, sets aside unreadable entry files
   * and converts entries of the previous layout (spool-open.ts). Synchronous: it runs once at start-up, before
   * any listener, so the composition root can hand the spool to services synchronously.
   */
  static openSync(options: FileSpoolOptions): FileSpool {
    const spool = new FileSpool(options, true);
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    prepareSpoolDir(options.dir, options.warn ?? (() => {}));
    return spool;
  }

  /**
   * Uses an existing spool folder without creating it or cleaning it up: for `postern queue` next to a running
   * server, whose in-progress temp files must not be touched. Entries of the previous layout (a server not yet
   * restarted after an upgrade) are listed, updated and removed too.
   */
  static attach(options: FileSpoolOptions): FileSpool {
    readdirSync(options.dir); // throws ENOENT/ENOTDIR for a wrong folder
    // No recycling: a tool's spares would be left for the server's next start to remove.
    return new FileSpool(options, false);
  }

  static async open(options: FileSpoolOptions): Promise<FileSpool> {
    const spool = FileSpool.openSync(options);
    await fsyncDir(options.dir);
    return spool;
  }

  /** Releases the folder fd kept for fsyncs, once no fsync is running (a later write opens it again). */
  close(): Promise<void> {
    return this.folder.close();
  }

  /** The entry file: preamble + message; its presence is what makes an entry exist. */
  private entryPath(id: string): string {
    return join(this.dir, `${assertSpoolId(id)}.msg`);
  }

  /** The side file: the entry's state once it changed after accept. */
  private statePath(id: string): string {
    return join(this.dir, `${assertSpoolId(id)}.json`);
  }

  /** The previous layout's message file (only until the server's next start converts it). */
  private legacyPath(id: string): string {
    return join(this.dir, `${assertSpoolId(id)}.eml`);
  }

  /** Opens the entry file and reads its preamble; null when the entry is gone. */
  private openEntry(id: string): { fd: number; file: EntryFile } | null {
    let fd: number;
    try {
      fd = openSync(this.entryPath(id), 'r');
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
    try {
      return { fd, file: readPreamble(fd, id) };
    } catch (err) {
      closeSync(fd);
      throw new Error(`queue entry ${id}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The entry file, opened; throws ENOENT like a plain read when the entry is gone. */
  private mustOpenEntry(id: string): { fd: number; file: EntryFile } {
    const opened = this.openEntry(id);
    if (!opened) throw Object.assign(new Error(`ENOENT: queue entry ${id} does not exist`), { code: 'ENOENT' });
    return opened;
  }

  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => {});
    this.locks.set(id, settled);
    void settled.then(() => {
      if (this.locks.get(id) === settled) this.locks.delete(id);
    });
    return next;
  }

  private validateEnvelope(envelope: SpoolEnvelope): string[] {
    const fromProblem = envelopeAddressProblem(envelope.from, true);
    if (fromProblem) throw new SpoolError('bad-envelope', `sender ${JSON.stringify(envelope.from.slice(0, 80))}: ${fromProblem}`);
    if (!Array.isArray(envelope.to) || envelope.to.length === 0) throw new SpoolError('bad-envelope', 'no recipients');
    if (envelope.to.length > MAX_RECIPIENTS) throw new SpoolError('bad-envelope', `more than ${MAX_RECIPIENTS} recipients`);
    const unique: string[] = [];
    for (const rcpt of envelope.to) {
      const problem = envelopeAddressProblem(rcpt, false);
      if (problem) throw new SpoolError('bad-envelope', `recipient ${JSON.stringify(rcpt.slice(0, 80))}: ${problem}`);
      if (!unique.some((u) => sameAddress(u, rcpt))) unique.push(rcpt);
    }
    return unique;
  }

  async accept(envelope: SpoolEnvelope, data: Readable | AsyncIterable<Uint8Array> | readonly Uint8Array[], options: AcceptOptions = {}): Promise<StoredEntry> {
    const maxBytes = options.maxBytes ?? this.maxMessageBytes;
    if (Array.isArray(data)) return this.acceptInMemory(envelope, data as readonly Uint8Array[], maxBytes, options.checksPending);
    const stream = data as Readable | AsyncIterable<Uint8Array>;
    let recipients: string[];
    try {
      recipients = this.validateEnvelope(envelope);
    } catch (err) {
      // Drain so the SMTP session can still read the end of DATA and answer.
      for await (const _ of stream) { /* discard */ }
      throw err;
    }
    const id = newSpoolId(this.now());
    const path = this.entryPath(id);
    // The preamble goes in front, but size and Message-ID are known only at the end: the message is written after
    // room for the longest preamble this entry can have, and the preamble (padded) into that room at the end.
    const base = this.newEntry(id, envelope, recipients, 0, undefined);
    const reserved = reservePreamble(base);
    let position = messageOffset(reserved);
    let size = 0;
    const head: Buffer[] = [];
    let headBytes = 0;
    let failure: SpoolError | null = null;
    let fd: number;
    let tmp: string;
    let had: number;
    try {
      ({ fd, tmp, had } = await this.openTempFile(path));
    } catch (err) {
      for await (const _ of stream) { /* discard */ }
      throw toSpoolError(err, 'cannot create spool file');
    }
    let entry: StoredEntry;
    try {
      for await (const chunk of stream) {
        if (failure) continue; // keep reading so the client gets our answer after its final dot
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
        size += buf.length;
        if (size > maxBytes) {
          failure = new SpoolError('too-large', `message exceeds ${maxBytes} bytes`);
          continue;
        }
        if (headBytes < HEADER_SCAN) {
          head.push(buf.subarray(0, HEADER_SCAN - headBytes));
          headBytes += Math.min(buf.length, HEADER_SCAN - headBytes);
        }
        try {
          // Chunks arrive as the network delivers them (tens of KiB): a synchronous page-cache write each.
          await writeChunks(fd, [buf], position);
          position += buf.length;
        } catch (err) {
          failure = toSpoolError(err, 'cannot write spool file');
        }
      }
      if (failure) throw failure;
      const messageId = findMessageId(Buffer.concat(head));
      entry = { ...base, size, ...(messageId ? { messageId } : {}) };
      await writeChunks(fd, [encodePreamble(entry, reserved)], 0);
    } catch (err) {
      discardTempFile(fd, tmp, err);
    }
    await this.commitEntryFile(fd, tmp, path, position, had);
    return entry;
  }

  /**
   * A temp file for a new entry file: a spare when there is one (an open, no create), else a new file. `had` is
   * the length of what the spare still holds, which the new entry overwrites from the start.
   */
  private async openTempFile(path: string): Promise<{ fd: number; tmp: string; had: number }> {
    const spare = this.spares?.pop();
    if (spare !== undefined) {
      try {
        const fd = openSync(spare, 'r+');
        return { fd, tmp: spare, had: fstatSync(fd).size };
      } catch { /* gone (removed by hand): create one */ }
    }
    const tmp = tempPathFor(path);
    return { fd: await createAsync(tmp), tmp, had: 0 };
  }

  /**
   * Makes a fully written temp file of `length` bytes the entry: what a spare held beyond that cut off, fdatasync,
   * close, rename into place, folder fsync (shared with concurrent accepts). On failure the fd is closed and
   * nothing is left: a refused message never shows as an entry (its sender got 4xx/5xx).
   */
  private async commitEntryFile(fd: number, tmp: string, path: string, length: number, had: number): Promise<void> {
    let closed = false;
    let renamed = false;
    this.committing++;
    try {
      // Frees blocks: on the pool, and only when the spare held more than this entry (the fdatasync covers it).
      if (had > length) await new Promise<void>((resolve, reject) => ftruncate(fd, length, (err) => (err ? reject(err) : resolve())));
      await fdatasyncAsync(fd);
      closeSync(fd);
      closed = true;
      // The rename is on the reply's path. Alone, it runs here: about 20 µs, against a pool round trip of about
      // 230 µs on the benchmark machine (waking an idle pool thread, then the loop). With other accepts in flight
      // it goes to the pool, because a rename that waits for an ext4 journal commit would stall them (journaled
      // ext4: p99 about 2 ms). Measured: +4 to +14 % at 1 session, no change at 10.
      if (this.committing === 1) renameSync(tmp, path);
      else await renameAsync(tmp, path);
      renamed = true;
      await this.folder.sync();
    } catch (err) {
      if (!closed) closeQuiet(fd);
      unlinkQuiet(renamed ? path : tmp);
      throw toSpoolError(err, 'cannot spool message');
    } finally {
      this.committing--;
    }
  }

  /** The state of a just-accepted entry: every recipient pending. */
  private newEntry(id: string, envelope: SpoolEnvelope, recipients: string[], size: number, messageId: string | undefined): StoredEntry {
    return {
      id,
      envelope: {
        from: envelope.from,
        to: recipients,
        client: { ...envelope.client },
        ...(envelope.authenticatedUser !== undefined ? { authenticatedUser: envelope.authenticatedUser } : {}),
        ...(envelope.dsn && (envelope.dsn.ret || envelope.dsn.envid) ? { dsn: { ...envelope.dsn } } : {}),
      },
      receivedAt: this.now(),
      size,
      recipients: recipients.map((address): RecipientState => {
        const d = recipientDsnFor(envelope, address);
        return { address, status: 'pending', attempts: 0, ...(d?.notify ? { notify: [...d.notify] } : {}), ...(d?.orcpt ? { orcpt: d.orcpt } : {}) };
      }),
      ...(messageId ? { messageId } : {}),
    };
  }

  /**
   * accept() for a message already in memory: preamble and message written in one writev (synchronously unless
   * large), one fdatasync on the thread pool, rename, then the shared folder fsync.
   */
  private async acceptInMemory(envelope: SpoolEnvelope, chunks: readonly Uint8Array[], maxBytes: number, checksPending: StoredEntry['checksPending']): Promise<StoredEntry> {
    const recipients = this.validateEnvelope(envelope);
    const size = chunks.reduce((n, c) => n + c.length, 0);
    if (size > maxBytes) throw new SpoolError('too-large', `message exceeds ${maxBytes} bytes`);
    const head: Buffer[] = [];
    let headBytes = 0;
    for (const c of chunks) {
      if (headBytes >= HEADER_SCAN) break;
      const part = Buffer.from(c.buffer, c.byteOffset, Math.min(c.length, HEADER_SCAN - headBytes));
      head.push(part);
      headBytes += part.length;
    }
    const messageId = findMessageId(Buffer.concat(head));
    const id = newSpoolId(this.now());
    const path = this.entryPath(id);
    const entry: StoredEntry = { ...this.newEntry(id, envelope, recipients, size, messageId), ...(checksPending ? { checksPending } : {}) };
    let fd: number;
    let tmp: string;
    let had: number;
    try {
      ({ fd, tmp, had } = await this.openTempFile(path));
    } catch (err) {
      throw toSpoolError(err, 'cannot create spool file');
    }
    const preamble = encodePreamble(entry);
    try {
      await writeChunks(fd, [preamble, ...chunks], 0);
    } catch (err) {
      discardTempFile(fd, tmp, err);
    }
    await this.commitEntryFile(fd, tmp, path, preamble.length + size, had);
    return entry;
  }

  /**
   * Reads an entry's state: the side file when there is one, else the preamble; null when the entry is gone.
   * Synchronous underneath (small page-cache reads).
   */
  async load(id: string): Promise<StoredEntry | null> {
    const opened = this.openEntry(id);
    if (!opened) return this.loadLegacy(id);
    try {
      return this.readSideFile(id) ?? opened.file.entry;
    } finally {
      closeSync(opened.fd);
    }
  }

  private readSideFile(id: string): StoredEntry | null {
    const path = this.statePath(id);
    // Most entries have none: a stat is far cheaper than a read that throws ENOENT.
    if (!existsSync(path)) return null;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
    return JSON.parse(text) as StoredEntry;
  }

  /** An entry of the previous layout (seen only by attach()ed tools before the server's next start). */
  private loadLegacy(id: string): StoredEntry | null {
    if (!existsSync(this.legacyPath(id))) return null;
    return this.readSideFile(id);
  }

  get(id: string): Promise<SpoolEntry | null> {
    return this.load(id);
  }

  /** Every entry in the spool, oldest first. */
  async list(): Promise<StoredEntry[]> {
    const names = new Set(readdirSync(this.dir));
    const ids: string[] = [];
    for (const name of names) {
      const id = name.slice(0, -4);
      if (!isSpoolId(id)) continue;
      if (name.endsWith('.msg')) ids.push(id);
      else if (name.endsWith('.eml') && names.has(`${id}.json`) && !names.has(`${id}.msg`)) ids.push(id);
    }
    ids.sort();
    const entries: StoredEntry[] = [];
    for (const [i, id] of ids.entries()) {
      // Each load is a few synchronous reads: let sessions run between batches of a long queue.
      if (i % 64 === 63) await new Promise((r) => setImmediate(r));
      const e = await this.load(id).catch((err: unknown) => {
        this.warn?.(`spool: cannot read the state of ${id}: ${(err as Error).message}`);
        return null;
      });
      if (e) entries.push(e);
    }
    return entries;
  }

  async recoverable(): Promise<SpoolEntry[]> {
    // Finished entries too: a crash between the last recipient's result and the removal leaves them behind, and
    // the pipeline's pass over them (nothing pending) removes them.
    return (await this.list()).filter((e) => isDone(e) || e.recipients.some((r) => r.status === 'pending'));
  }

  /** The message as received (not the preamble). */
  async read(id: string): Promise<Buffer> {
    const { fd, file } = this.mustOpenEntry(id);
    try {
      return await readMessage(fd, file);
    } finally {
      closeSync(fd);
    }
  }

  open(id: string): Readable {
    let opened;
    try {
      opened = this.mustOpenEntry(id);
    } catch (err) {
      const failed = new Readable({ read() {} });
      process.nextTick(() => failed.destroy(err as Error));
      return failed;
    }
    const { fd, file } = opened;
    if (file.entry.size === 0) {
      closeSync(fd);
      return Readable.from([]);
    }
    return createReadStream('', { fd, start: file.offset, end: file.offset + file.entry.size - 1, autoClose: true });
  }

  /** The first bytes of the message (enough for its header block); empty if the file is gone. */
  async readHead(id: string): Promise<Buffer> {
    let opened;
    try {
      opened = this.openEntry(id);
      if (!opened) return Buffer.alloc(0);
      return readMessageHead(opened.fd, opened.file, HEADER_SCAN);
    } catch {
      return Buffer.alloc(0);
    } finally {
      if (opened) closeSync(opened.fd);
    }
  }

  /**
   * The message as a DSN returns it: all of it when `whole` and it is within the spool's size limit, else its
   * header block. Empty if the entry is gone.
   */
  async readOriginal(entry: StoredEntry, whole: boolean): Promise<OriginalMessage> {
    if (whole && entry.size <= this.maxMessageBytes) {
      try {
        return { bytes: await this.read(entry.id), complete: true };
      } catch { /* gone: the header block below is empty too */ }
    }
    return { bytes: await this.readHead(entry.id), complete: false };
  }

  /** The outbound copy: prepended headers, then the message as received. */
  async readOutbound(id: string, known?: StoredEntry): Promise<Buffer> {
    const entry = known ?? await this.load(id);
    const body = await this.read(id);
    return entry?.prependHeaders ? Buffer.concat([Buffer.from(entry.prependHeaders, 'utf8'), body]) : body;
  }

  /**
   * Applies `change` to the entry's state under its lock and writes it durably. Returns the new state, or null
   * when the entry is gone. `change` may return false to skip the write.
   */
  update(id: string, change: (entry: StoredEntry) => boolean | void, options: { skipWriteWhenDone?: boolean } = {}): Promise<StoredEntry | null> {
    return this.locked(id, async () => {
      const entry = await this.load(id);
      if (!entry) return null;
      if (change(entry) === false) return entry;
      // The caller removes a finished entry right away; writing its final state first would cost two fsyncs
      // and change nothing after a crash (the entry would be found with its last durable state either way).
      if (options.skipWriteWhenDone && isDone(entry)) return entry;
      await writeFileDurable(this.statePath(id), JSON.stringify(entry), this.folder);
      return entry;
    });
  }

  private findRecipient(entry: StoredEntry, address: string): RecipientState {
    const r = entry.recipients.find((x) => sameAddress(x.address, address));
    if (!r) throw new Error(`${address} is not a recipient of queue entry ${entry.id}`);
    return r;
  }

  async markLocal(id: string, recipient: string, result: LocalResult, options: MarkLocalOptions = {}): Promise<boolean> {
    let failedEntry: StoredEntry | null = null;
    let deliveredEntry: StoredEntry | null = null;
    let removed = false;
    const entry = await this.locked(id, async () => {
      const e = await this.load(id);
      if (!e) return null;
      const r = this.findRecipient(e, recipient);
      if (result.ok) {
        r.status = 'delivered';
        r.mailbox = result.mailbox;
        if (result.expanded) r.expanded = true;
        delete r.lastResult;
        if (wantsNotice(r, 'SUCCESS')) deliveredEntry = e;
      } else if (result.permanent) {
        r.status = 'failed';
        r.lastResult = result.message.slice(0, 1000);
        failedEntry = e;
      } else {
        r.attempts += 1;
        r.lastResult = result.message.slice(0, 1000);
      }
      // The last local delivery of an entry: remove it without writing its final state first (two fsyncs saved).
      // A crash before the removal is durable finds the recipient still pending, and the store's deliver() is
      // idempotent per delivery id, so the re-run stores nothing twice. Failures and deliveries with NOTIFY=SUCCESS
      // keep the write: their DSN must go out once, before the entry leaves.
      if (options.removeIfDone && result.ok && !deliveredEntry && isDone(e)) {
        await this.unlinkEntry(id);
        removed = true;
        return e;
      }
      await writeFileDurable(this.statePath(id), JSON.stringify(e), this.folder);
      return e;
    });
    if (!entry) throw new Error(`queue entry ${id} does not exist`);
    if (removed) this.emit('removed', id);
    if (failedEntry) this.emit('failed', failedEntry, [recipient], await this.readOriginal(failedEntry, returnsWholeMessage(failedEntry)));
    if (deliveredEntry) this.emit('delivered', deliveredEntry, [recipient], await this.readOriginal(deliveredEntry, false));
    return removed;
  }

  async enqueueRemote(id: string, recipients: string[], options: EnqueueOptions = {}): Promise<void> {
    const prepend = options.prependHeaders;
    if (prepend !== undefined) {
      if (Buffer.byteLength(prepend) > MAX_PREPEND) throw new Error('prependHeaders exceeds 64 KiB');
      if (prepend !== '' && (!prepend.endsWith('\r\n') || /\r(?!\n)|(?<!\r)\n/.test(prepend))) {
        throw new Error('prependHeaders must use CRLF line endings and end with CRLF');
      }
    }
    const at = this.now();
    const entry = await this.update(id, (e) => {
      for (const address of recipients) {
        const r = this.findRecipient(e, address);
        // Idempotent: a pipeline re-run after a crash must not send again to a recipient already handled.
        if (r.status !== 'pending') continue;
        r.status = 'queued';
        r.nextAttemptAt = at;
      }
      if (prepend) e.prependHeaders = prepend;
    });
    if (!entry) throw new Error(`queue entry ${id} does not exist`);
    this.emit('queued', id);
  }

  async removeIfDone(id: string): Promise<boolean> {
    const removed = await this.locked(id, async () => {
      const entry = await this.load(id);
      if (!entry) return false;
      if (!isDone(entry)) return false;
      await this.unlinkEntry(id);
      return true;
    });
    if (removed) this.emit('removed', id);
    return removed;
  }

  /** Removes an entry whatever its state (operator `postern queue remove`). */
  async remove(id: string): Promise<boolean> {
    const removed = await this.locked(id, async () => {
      if (!(await this.load(id))) return false;
      await this.unlinkEntry(id);
      await unlinkAsync(this.legacyPath(id)); // an entry of the previous layout, not converted yet
      return true;
    });
    if (removed) this.emit('removed', id);
    return removed;
  }

  private async unlinkEntry(id: string): Promise<void> {
    // Entry file first: it is the commit marker, so once it is gone the entry no longer exists, and a crash before
    // the side file goes leaves only a stray side file, removed at the next start. (The other order could bring
    // the entry back with its state at accept, every recipient pending: sent mail would go out again.) The folder
    // is not fsynced here (as Postfix does not on removal): a removal lost to a power cut brings the entry back,
    // which means one more delivery attempt, never a lost message — and it saves an fsync per message.
    await this.releaseEntryFile(this.entryPath(id));
    // Most entries never get a side file: a stat instead of an unlink round trip on the pool that fails.
    if (existsSync(this.statePath(id))) await unlinkAsync(this.statePath(id));
  }

  /**
   * Removes an entry file: renamed to a spare temp name (the entry is gone at that rename, as at an unlink) and
   * kept, blocks and all, for the next accept to overwrite; unlinked when it is large, when there are spares
   * enough, or when this instance does not recycle.
   */
  private async releaseEntryFile(path: string): Promise<void> {
    if (this.spares === null || this.spares.length >= MAX_SPARES) {
      await unlinkAsync(path);
      return;
    }
    const spare = tempPathFor(path);
    try {
      await renameAsync(path, spare);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    let size: number;
    try {
      size = statSync(spare).size;
    } catch {
      return; // removed by hand meanwhile
    }
    if (size > MAX_SPARE_BYTES) await unlinkAsync(spare);
    else this.spares.push(spare);
  }
}

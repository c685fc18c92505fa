// The durable spool: one message file (`<id>.eml`, the bytes as received) plus one state file (`<id>.json`:
// envelope and per-recipient status) per entry, in one folder. The state file is the commit marker: it is renamed
// into place after the message file, and removed before it, so an entry is visible only when both are complete.
// Fsyncs are what limits intake, so accept() fsyncs both temp files at once and shares the folder fsync with
// concurrent accepts (FolderSync); a local delivery that finishes an entry removes it without a last state write.
import { EventEmitter } from 'node:events';
import { createReadStream, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { envelopeAddressProblem, sameAddress } from './address.ts';
import type {
  AcceptOptions, EnqueueOptions, LocalResult, MarkLocalOptions, RecipientState, Spool, SpoolEntry, SpoolEnvelope,
} from './api.ts';
import { SpoolError } from './api.ts';
import { FolderSync, fsyncDir, tempPathFor, writeFileDurable, writeTempDurable } from './durable.ts';
import { assertSpoolId, isSpoolId, newSpoolId } from './spool-id.ts';

const MAX_RECIPIENTS = 1000;
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
   * A recipient failed for good (local delivery); the bouncer sends a DSN. `original` is the message's header
   * block, read before markLocal returns, because the caller may remove the entry right after.
   */
  failed: [entry: StoredEntry, recipients: string[], original: Buffer];
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
  const text = head.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const headers = (end >= 0 ? text.slice(0, end) : text).replace(/\r?\n[ \t]+/g, ' ');
  const m = /^message-id:[ \t]*<?([^\s<>]{1,250})>?/im.exec(headers);
  return m?.[1];
}

/** Every recipient delivered, sent or failed. */
export function isDone(entry: SpoolEntry): boolean {
  return entry.recipients.every((r) => r.status !== 'pending' && r.status !== 'queued');
}

/**
 * Creates `path`, writes `chunks` with writev (looping over short writes) and fsyncs it. The close is pushed onto
 * `closing` instead of awaited: a synced file needs no close before its rename.
 */
async function writeSynced(path: string, chunks: readonly Uint8Array[], closing: Promise<void>[]): Promise<void> {
  const fh = await open(path, 'wx', 0o600);
  try {
    const total = chunks.reduce((n, c) => n + c.length, 0);
    let done = (await fh.writev(chunks as Uint8Array[])).bytesWritten;
    if (done < total) {
      const rest = Buffer.concat(chunks as Uint8Array[]);
      while (done < total) done += (await fh.write(rest, done, total - done)).bytesWritten;
    }
    await fh.sync();
  } finally {
    closing.push(fh.close());
  }
}

export class FileSpool extends EventEmitter<SpoolEvents> implements Spool {
  readonly dir: string;
  readonly maxMessageBytes: number;
  private readonly now: () => number;
  private readonly warn: ((message: string) => void) | undefined;
  /** Per-entry chains so that state updates of one entry never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly folder: FolderSync;

  private constructor(options: FileSpoolOptions) {
    super();
    this.dir = options.dir;
    this.folder = new FolderSync(options.dir);
    this.maxMessageBytes = options.maxMessageBytes;
    this.now = options.now ?? Date.now;
    this.warn = options.warn;
  }

  /**
   * Opens (creating) the spool folder and removes what a crash left half-written: temp files, and message files
   * whose state file never landed (their sender never got `250`). Synchronous: it runs once at start-up, before
   * any listener, so the composition root can hand the spool to services synchronously.
   */
  static openSync(options: FileSpoolOptions): FileSpool {
    const spool = new FileSpool(options);
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    const names = new Set(readdirSync(options.dir));
    for (const name of names) {
      const drop = (why: string): void => {
        if (why) options.warn?.(`spool: removing ${name}: ${why}`);
        try { unlinkSync(join(options.dir, name)); } catch { /* already gone */ }
      };
      if (name.startsWith('.tmp-')) drop('');
      else if (name.endsWith('.eml') && !names.has(name.replace(/\.eml$/, '.json'))) drop('');
      else if (name.endsWith('.json') && !names.has(name.replace(/\.json$/, '.eml'))) drop('state without a message file');
    }
    return spool;
  }

  /**
   * Uses an existing spool folder without creating it or cleaning it up: for `postern queue` next to a running
   * server, whose in-progress temp files must not be touched.
   */
  static attach(options: FileSpoolOptions): FileSpool {
    readdirSync(options.dir); // throws ENOENT/ENOTDIR for a wrong folder
    return new FileSpool(options);
  }

  static async open(options: FileSpoolOptions): Promise<FileSpool> {
    const spool = FileSpool.openSync(options);
    await fsyncDir(options.dir);
    return spool;
  }

  private messagePath(id: string): string {
    return join(this.dir, `${assertSpoolId(id)}.eml`);
  }

  private statePath(id: string): string {
    return join(this.dir, `${assertSpoolId(id)}.json`);
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
    if (Array.isArray(data)) return this.acceptInMemory(envelope, data as readonly Uint8Array[], maxBytes);
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
    const msgPath = this.messagePath(id);
    const tmpMsg = tempPathFor(msgPath);
    const statePath = this.statePath(id);
    let tmpState: string | undefined;
    let size = 0;
    const head: Buffer[] = [];
    let headBytes = 0;
    let failure: SpoolError | null = null;
    let fh;
    try {
      fh = await open(tmpMsg, 'wx', 0o600);
    } catch (err) {
      for await (const _ of stream) { /* discard */ }
      throw toSpoolError(err, 'cannot create spool file');
    }
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
          await fh.write(buf);
        } catch (err) {
          failure = toSpoolError(err, 'cannot write spool file');
        }
      }
      if (failure) throw failure;
      const messageId = findMessageId(Buffer.concat(head));
      const entry = this.newEntry(id, envelope, recipients, size, messageId);
      // Both temp files are fsynced at once (one wait instead of two); neither is visible until renamed.
      const [synced, state] = await Promise.allSettled([fh.sync(), writeTempDurable(statePath, JSON.stringify(entry))]);
      if (state.status === 'fulfilled') tmpState = state.value;
      if (synced.status === 'rejected') throw synced.reason;
      if (state.status === 'rejected') throw state.reason;
      await fh.close();
      fh = undefined;
      await rename(tmpMsg, msgPath);
      // The state file commits the entry: it lands after the message file, and one folder fsync covers both.
      await rename(tmpState!, statePath);
      tmpState = undefined;
      await this.folder.sync();
      return entry;
    } catch (err) {
      await fh?.close().catch(() => {});
      // State first, so that no half of a refused message ever looks like an entry (its sender got 4xx/5xx).
      await unlink(statePath).catch(() => {});
      if (tmpState) await unlink(tmpState).catch(() => {});
      await unlink(tmpMsg).catch(() => {});
      await unlink(msgPath).catch(() => {});
      throw toSpoolError(err, 'cannot spool message');
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
      },
      receivedAt: this.now(),
      size,
      recipients: recipients.map((address) => ({ address, status: 'pending', attempts: 0 })),
      ...(messageId ? { messageId } : {}),
    };
  }

  /**
   * accept() for a message already in memory. Everything the state file holds is known up front, so both temp
   * files are written and fsynced side by side, each in one write; their closes run behind the renames. The
   * commit order is the streaming path's: message file renamed, then the state file, then one folder fsync.
   */
  private async acceptInMemory(envelope: SpoolEnvelope, chunks: readonly Uint8Array[], maxBytes: number): Promise<StoredEntry> {
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
    const msgPath = this.messagePath(id);
    const statePath = this.statePath(id);
    const entry = this.newEntry(id, envelope, recipients, size, messageId);
    const tmpMsg = tempPathFor(msgPath);
    const tmpState = tempPathFor(statePath);
    const closing: Promise<void>[] = [];
    let committed = false;
    try {
      const written = await Promise.allSettled([
        writeSynced(tmpMsg, chunks, closing),
        writeSynced(tmpState, [Buffer.from(JSON.stringify(entry))], closing),
      ]);
      for (const w of written) if (w.status === 'rejected') throw w.reason;
      await rename(tmpMsg, msgPath);
      await rename(tmpState, statePath);
      committed = true;
      await this.folder.sync();
      await Promise.all(closing);
      return entry;
    } catch (err) {
      await Promise.allSettled(closing);
      // State first, so that no half of a refused message ever looks like an entry (its sender got 4xx/5xx).
      if (committed) await unlink(statePath).catch(() => {});
      await unlink(tmpState).catch(() => {});
      await unlink(tmpMsg).catch(() => {});
      await unlink(msgPath).catch(() => {});
      throw toSpoolError(err, 'cannot spool message');
    }
  }

  /** Reads an entry's state; null when it is gone. */
  async load(id: string): Promise<StoredEntry | null> {
    let text: string;
    try {
      text = await readFile(this.statePath(id), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return JSON.parse(text) as StoredEntry;
  }

  get(id: string): Promise<SpoolEntry | null> {
    return this.load(id);
  }

  /** Every entry in the spool, oldest first. */
  async list(): Promise<StoredEntry[]> {
    const ids = (await readdir(this.dir))
      .filter((n) => n.endsWith('.json'))
      .map((n) => n.slice(0, -5))
      .filter(isSpoolId)
      .sort();
    const entries: StoredEntry[] = [];
    for (const id of ids) {
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

  read(id: string): Promise<Buffer> {
    return readFile(this.messagePath(id));
  }

  open(id: string): Readable {
    return createReadStream(this.messagePath(id));
  }

  /** The first bytes of the message (enough for its header block); empty if the file is gone. */
  async readHead(id: string): Promise<Buffer> {
    let fh;
    try {
      fh = await open(this.messagePath(id), 'r');
      const buf = Buffer.alloc(HEADER_SCAN);
      const { bytesRead } = await fh.read(buf, 0, HEADER_SCAN, 0);
      return buf.subarray(0, bytesRead);
    } catch {
      return Buffer.alloc(0);
    } finally {
      await fh?.close();
    }
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
      await writeFileDurable(this.statePath(id), JSON.stringify(entry), () => this.folder.sync());
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
    let removed = false;
    const entry = await this.locked(id, async () => {
      const e = await this.load(id);
      if (!e) return null;
      const r = this.findRecipient(e, recipient);
      if (result.ok) {
        r.status = 'delivered';
        r.mailbox = result.mailbox;
        delete r.lastResult;
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
      // idempotent per delivery id, so the re-run stores nothing twice. Failures keep the write: their DSN must
      // go out once, before the entry leaves.
      if (options.removeIfDone && result.ok && isDone(e)) {
        await this.unlinkEntry(id);
        removed = true;
        return e;
      }
      await writeFileDurable(this.statePath(id), JSON.stringify(e), () => this.folder.sync());
      return e;
    });
    if (!entry) throw new Error(`queue entry ${id} does not exist`);
    if (removed) this.emit('removed', id);
    if (failedEntry) this.emit('failed', failedEntry, [recipient], await this.readHead(id));
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
      return true;
    });
    if (removed) this.emit('removed', id);
    return removed;
  }

  private async unlinkEntry(id: string): Promise<void> {
    // State first: once it is gone the entry no longer exists, whatever happens to the message file. The folder
    // is not fsynced here (as Postfix does not on removal): a removal lost to a power cut brings the entry back,
    // which means one more delivery attempt, never a lost message — and it saves an fsync per message.
    await unlink(this.statePath(id)).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
    await unlink(this.messagePath(id)).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
  }
}

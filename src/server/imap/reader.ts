// Incremental IMAP command framing: splits the client's byte stream into commands made of text lines and
// literals ({n} synchronising, {n+} non-synchronising), asks for synchronising literals only when the session
// is ready to read them, and enforces the size limits with bounded memory (over-limit data is counted and
// dropped, never kept). Tokenising the pieces is tokens.ts's job.
import type { Readable } from 'node:stream';
import type { ImapLimits } from './limits.ts';

/** `binary`: a literal8 (~{n}, RFC 3516), which may hold NUL bytes. */
export type Segment = { kind: 'text'; data: Buffer } | { kind: 'literal'; data: Buffer; binary: boolean };

export type ReadResult =
  | { kind: 'command'; tag: string; segments: Segment[] }
  /**
   * A command that broke a limit; `fatal` means the connection must end (BYE). `append`: it was an APPEND,
   * which RFC 7889 answers with NO [TOOBIG] rather than BAD.
   */
  | { kind: 'error'; tag: string | null; code: 'TOOBIG' | 'LIMIT' | 'PARSE'; text: string; fatal: boolean; append?: boolean }
  | { kind: 'end' };

const LF = 0x0a;
const CR = 0x0d;
const LITERAL_MARKER = /(~?)\{(\d{1,12})(\+?)\}$/;
/** tag = 1*<ASTRING-CHAR except "+"> (RFC 9051). */
const TAG = /^[!#$&',-\[\]-z|}~]{1,64}$/;
/** Non-synchronising literals beyond this are not even skipped over: the client is hung up on. */
const MAX_SKIP_FACTOR = 2;

/** A queue of received chunks, so that a large literal is copied once, not once per chunk. */
class ChunkQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Offset of the first LF at or after `from`, or -1. */
  indexOfLf(limit: number): number {
    let base = 0;
    for (const c of this.chunks) {
      const i = c.indexOf(LF);
      if (i >= 0) return base + i;
      base += c.length;
      if (base > limit) return -1;
    }
    return -1;
  }

  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    if (first && first.length === n) {
      this.chunks.shift();
      this.length -= n;
      return first;
    }
    if (first && first.length > n) {
      this.chunks[0] = first.subarray(n);
      this.length -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const want = n - off;
      if (c.length <= want) {
        c.copy(out, off);
        off += c.length;
        this.chunks.shift();
      } else {
        c.copy(out, off, 0, want);
        this.chunks[0] = c.subarray(want);
        off += want;
      }
    }
    this.length -= n;
    return out;
  }

  unshift(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.unshift(chunk);
    this.length += chunk.length;
  }

  drop(n: number): void {
    let left = Math.min(n, this.length);
    this.length -= left;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.length <= left) {
        left -= c.length;
        this.chunks.shift();
      } else {
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
  }

  clear(): void {
    this.chunks = [];
    this.length = 0;
  }
}

export function tagOf(line: Buffer): string | null {
  const sp = line.indexOf(0x20);
  const raw = line.subarray(0, sp < 0 ? Math.min(line.length, 65) : Math.min(sp, 65)).toString('latin1');
  return TAG.test(raw) ? raw : null;
}

function stripCrLf(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
}

/** Is this command an APPEND (whose literal is a message and may be large)? */
function isAppend(firstLine: Buffer): boolean {
  const m = /^\S+ +(\S+)/.exec(firstLine.subarray(0, 80).toString('latin1'));
  return m !== null && m[1]!.toUpperCase() === 'APPEND';
}

export class CommandReader {
  private readonly queue = new ChunkQueue();
  private source: Readable | null = null;
  private ended = false;
  private paused = false;
  private wake: (() => void) | null = null;
  /** Bytes still to drop from an over-limit line or literal before framing resumes. */
  private skipBytes = 0;
  private skipToLf = false;
  private readonly onData = (chunk: Buffer): void => {
    this.queue.push(chunk);
    if (this.queue.length > this.highWater() && !this.paused) {
      this.paused = true;
      this.source?.pause();
    }
    this.poke();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.poke();
  };
  private need = 0;
  /** APPEND's large literal is allowed only once the client has logged in (a stranger may not send 50 MB). */
  appendAllowed = false;
  /** The start of the last line refused as too long, so its tag can still be answered. */
  private tooLongStart: Buffer | null = null;

  private readonly limits: ImapLimits;
  /** Sends `+ ...` when a synchronising literal may be sent. */
  private readonly sendContinuation: () => void;

  constructor(limits: ImapLimits, sendContinuation: () => void) {
    this.limits = limits;
    this.sendContinuation = sendContinuation;
  }

  /** Reads from `source` (a socket, or the TLS socket after STARTTLS) instead of the previous one. */
  attach(source: Readable): void {
    this.detach();
    this.source = source;
    source.on('data', this.onData);
    source.on('end', this.onEnd);
    source.on('close', this.onEnd);
    this.paused = false;
    source.resume();
  }

  detach(): void {
    if (!this.source) return;
    this.source.off('data', this.onData);
    this.source.off('end', this.onEnd);
    this.source.off('close', this.onEnd);
    this.source = null;
  }

  /** Drops everything received but not read: after STARTTLS, plaintext sent early must not count as TLS input. */
  discardBuffered(): number {
    const n = this.queue.length;
    this.queue.clear();
    return n;
  }

  get buffered(): number {
    return this.queue.length;
  }

  private highWater(): number {
    return Math.max(this.need, this.limits.maxLineBytes) + 65536;
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Waits until at least `n` bytes are buffered or the stream has ended. */
  private async fill(n: number): Promise<boolean> {
    this.need = n;
    while (this.queue.length < n && !this.ended) {
      if (this.paused) {
        this.paused = false;
        this.source?.resume();
      }
      await new Promise<void>((r) => { this.wake = r; });
    }
    this.need = 0;
    return this.queue.length >= n;
  }

  /** Waits for a whole line (without CRLF); null at end of stream; 'toolong' if it exceeds `max`. */
  private async line(max: number): Promise<Buffer | null | 'toolong'> {
    for (;;) {
      if (this.skipBytes > 0) {
        const n = Math.min(this.skipBytes, this.queue.length);
        this.queue.drop(n);
        this.skipBytes -= n;
        if (this.skipBytes > 0) {
          if (!(await this.fill(1))) return null;
          continue;
        }
      }
      const i = this.queue.indexOfLf(this.skipToLf ? Infinity : max + 2);
      if (this.skipToLf) {
        if (i >= 0) {
          this.queue.drop(i + 1);
          this.skipToLf = false;
          continue;
        }
        this.queue.drop(this.queue.length);
      } else if (i >= 0) {
        if (i > max + 1) {
          this.tooLongStart = this.peekStart();
          this.queue.drop(i + 1);
          return 'toolong';
        }
        return stripCrLf(this.queue.take(i + 1).subarray(0, i));
      } else if (this.queue.length > max + 1) {
        this.tooLongStart = this.peekStart();
        this.skipToLf = true;
        return 'toolong';
      }
      if (this.ended) return null;
      if (this.paused) {
        this.paused = false;
        this.source?.resume();
      }
      await new Promise<void>((r) => { this.wake = r; });
    }
  }

  private peekStart(): Buffer {
    const n = Math.min(80, this.queue.length);
    const b = this.queue.take(n);
    const copy = Buffer.from(b);
    // Put the bytes back in front: take() consumed them.
    this.queue.unshift(copy);
    return copy;
  }

  /** One plain line (IDLE's DONE, an AUTHENTICATE response); null at end of stream or when too long. */
  async readLine(): Promise<Buffer | null> {
    const l = await this.line(this.limits.maxLineBytes);
    return l === 'toolong' ? null : l;
  }

  /** The next complete command, or an error for one that broke a limit, or the end of the stream. */
  async next(): Promise<ReadResult> {
    const segments: Segment[] = [];
    let tag: string | null = null;
    let total = 0;
    let literals = 0;
    let append = false;
    let first = true;
    for (;;) {
      const l = await this.line(this.limits.maxLineBytes);
      if (l === null) return { kind: 'end' };
      if (l === 'toolong') {
        if (first && this.tooLongStart) tag = tagOf(this.tooLongStart);
        return { kind: 'error', tag, code: 'TOOBIG', text: 'Command line too long', fatal: false };
      }
      if (first) {
        if (l.length === 0) continue; // stray empty lines between commands are harmless
        tag = tagOf(l);
        append = this.appendAllowed && isAppend(l);
        first = false;
      }
      total += l.length;
      if (total > this.limits.maxCommandBytes) {
        const over = LITERAL_MARKER.exec(l.subarray(Math.max(0, l.length - 20)).toString('latin1'));
        const fatal = over !== null && over[3] === '+' && !this.skipNonSync(Number(over[2]));
        return { kind: 'error', tag, code: 'TOOBIG', text: 'Command too long', fatal };
      }
      const m = LITERAL_MARKER.exec(l.subarray(Math.max(0, l.length - 20)).toString('latin1'));
      if (!m) {
        segments.push({ kind: 'text', data: l });
        if (tag === null) return { kind: 'error', tag: null, code: 'PARSE', text: 'Missing or invalid tag', fatal: false };
        return { kind: 'command', tag, segments };
      }
      const size = Number(m[2]);
      const sync = m[3] !== '+';
      const limit = append && literals === 0 ? this.limits.maxAppendBytes : this.limits.maxLiteralBytes;
      literals++;
      if (size > limit || literals > this.limits.maxLiteralsPerCommand) {
        if (sync) {
          // The client waits for "+" and sends nothing more of this command once it sees our tagged answer.
          return { kind: 'error', tag, code: 'TOOBIG', text: `Literal of ${size} bytes is over the limit of ${limit}`, fatal: false, append };
        }
        const fatal = !this.skipNonSync(size);
        return { kind: 'error', tag, code: 'TOOBIG', text: `Literal of ${size} bytes is over the limit of ${limit}`, fatal, append };
      }
      if (!append || literals > 1) total += size;
      if (total > this.limits.maxCommandBytes + (append ? this.limits.maxAppendBytes : 0)) {
        if (sync) return { kind: 'error', tag, code: 'TOOBIG', text: 'Command too long', fatal: false };
        const fatal = !this.skipNonSync(size);
        return { kind: 'error', tag, code: 'TOOBIG', text: 'Command too long', fatal };
      }
      segments.push({ kind: 'text', data: l.subarray(0, l.length - m[0].length) });
      if (sync) this.sendContinuation();
      if (!(await this.fill(size))) return { kind: 'end' };
      segments.push({ kind: 'literal', data: this.queue.take(size), binary: m[1] === '~' });
    }
  }

  /**
   * A non-synchronising literal over the limit is on its way anyway: drop its bytes and the rest of the
   * command line as they come. False when it is so large that reading it is not worth it.
   */
  private skipNonSync(size: number): boolean {
    if (size > this.limits.maxAppendBytes * MAX_SKIP_FACTOR) return false;
    this.skipBytes = size;
    this.skipToLf = true;
    return true;
  }
}

// Reads a DATA stream into memory under a byte limit and refuses SMTP smuggling: after smtp-server removes the
// final <CR><LF>.<CR><LF>, every line in a legitimate message ends in CRLF. A bare LF or a bare CR is what makes
// `<LF>.<CR><LF>`, `<CR>.<CR><LF>` and friends act as an end of DATA at some later hop, so any of them refuses
// the whole message (never normalised). The stream is always read to its end so the session can go on.
import type { Readable } from 'node:stream';

export type GuardedData =
  /** `release()` gives the message's bytes back to the memory budget once the caller is done with them. */
  | { ok: true; message: Buffer; release: () => void }
  | { ok: false; reason: 'bare-lf' | 'bare-cr' | 'too-large' | 'nul' | 'busy'; offset: number };

/** Bytes of DATA held in memory by all sessions together; a session over it is told to come back later. */
export class MemoryBudget {
  #used = 0;
  readonly limit: number;
  constructor(limit: number) { this.limit = limit; }
  take(n: number): boolean {
    if (this.#used + n > this.limit) return false;
    this.#used += n;
    return true;
  }
  give(n: number): void { this.#used = Math.max(0, this.#used - n); }
  get used(): number { return this.#used; }
}

const UNLIMITED = new MemoryBudget(Number.MAX_SAFE_INTEGER);

const LF = 0x0a;
const CR = 0x0d;
/** A CR not followed by LF, an LF not preceded by CR, or a NUL: one regular-expression scan (V8 compiles it to
 * native code; a byte loop in JavaScript took about 8× as long on a 10 KB message). */
const BAD_BYTE = /\r(?!\n)|(?<!\r)\n|\0/g;

/**
 * The first forbidden byte of `chunk`, given whether the previous chunk ended in CR; null when there is none. A CR
 * as the chunk's last byte is left to the next chunk (or the end of the data) to decide.
 */
function firstBadByte(chunk: Buffer, prevCR: boolean): { reason: 'bare-lf' | 'bare-cr' | 'nul'; index: number } | null {
  if (chunk.length === 0) return null;
  if (prevCR && chunk[0] !== LF) return { reason: 'bare-cr', index: -1 };
  const text = chunk.toString('latin1');
  // After a CR that ended the previous chunk, the LF at index 0 completes it: start after it.
  BAD_BYTE.lastIndex = prevCR ? 1 : 0;
  const m = BAD_BYTE.exec(text);
  if (m === null) return null;
  const c = text.charCodeAt(m.index);
  if (c === CR) return m.index === text.length - 1 ? null : { reason: 'bare-cr', index: m.index };
  return { reason: c === LF ? 'bare-lf' : 'nul', index: m.index };
}

export async function readGuardedData(stream: Readable | AsyncIterable<Uint8Array>, maxBytes: number, budget: MemoryBudget = UNLIMITED): Promise<GuardedData> {
  const chunks: Buffer[] = [];
  let size = 0;
  let held = 0;
  let prevCR = false;
  let failure: Extract<GuardedData, { ok: false }> | null = null;
  for await (const c of stream as AsyncIterable<Uint8Array>) {
    const chunk = Buffer.isBuffer(c) ? c : Buffer.from(c);
    if (failure === null) {
      const bad = firstBadByte(chunk, prevCR);
      if (bad) failure = { ok: false, reason: bad.reason, offset: size + bad.index };
      else if (chunk.length) prevCR = chunk[chunk.length - 1] === CR;
    }
    size += chunk.length;
    if (failure === null && size > maxBytes) failure = { ok: false, reason: 'too-large', offset: size };
    if (failure === null && !budget.take(chunk.length)) failure = { ok: false, reason: 'busy', offset: size };
    else if (failure === null) held += chunk.length;
    // Keep draining after a failure so the client gets its reply after its own end of DATA, but hold nothing.
    if (failure === null) chunks.push(chunk);
    else if (chunks.length) { chunks.length = 0; budget.give(held); held = 0; }
  }
  if (failure === null && prevCR) failure = { ok: false, reason: 'bare-cr', offset: size - 1 };
  if (failure !== null) { budget.give(held); return failure; }
  let released = false;
  return { ok: true, message: Buffer.concat(chunks, size), release: () => { if (!released) { released = true; budget.give(held); } } };
}

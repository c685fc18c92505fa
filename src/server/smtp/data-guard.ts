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

export async function readGuardedData(stream: Readable | AsyncIterable<Uint8Array>, maxBytes: number, budget: MemoryBudget = UNLIMITED): Promise<GuardedData> {
  const chunks: Buffer[] = [];
  let size = 0;
  let held = 0;
  let prevCR = false;
  let failure: Extract<GuardedData, { ok: false }> | null = null;
  for await (const c of stream as AsyncIterable<Uint8Array>) {
    const chunk = Buffer.isBuffer(c) ? c : Buffer.from(c);
    if (failure === null) {
      for (let i = 0; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (prevCR && b !== LF) { failure = { ok: false, reason: 'bare-cr', offset: size + i - 1 }; break; }
        if (b === LF && !prevCR) { failure = { ok: false, reason: 'bare-lf', offset: size + i }; break; }
        if (b === 0) { failure = { ok: false, reason: 'nul', offset: size + i }; break; }
        prevCR = b === CR;
      }
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

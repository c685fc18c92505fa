// Reads a DATA stream into memory under a byte limit and refuses SMTP smuggling: after smtp-server removes the
// final <CR><LF>.<CR><LF>, every line in a legitimate message ends in CRLF. A bare LF or a bare CR is what makes
// `<LF>.<CR><LF>`, `<CR>.<CR><LF>` and friends act as an end of DATA at some later hop, so any of them refuses
// the whole message (never normalised). The stream is always read to its end so the session can go on.
import type { Readable } from 'node:stream';

export type GuardedData =
  | { ok: true; message: Buffer }
  | { ok: false; reason: 'bare-lf' | 'bare-cr' | 'too-large' | 'nul'; offset: number };

const LF = 0x0a;
const CR = 0x0d;

export async function readGuardedData(stream: Readable | AsyncIterable<Uint8Array>, maxBytes: number): Promise<GuardedData> {
  const chunks: Buffer[] = [];
  let size = 0;
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
    // Keep draining after a failure so the client gets its reply after its own end of DATA, but hold nothing.
    if (failure === null) chunks.push(chunk);
    else chunks.length = 0;
  }
  if (failure === null && prevCR) failure = { ok: false, reason: 'bare-cr', offset: size - 1 };
  return failure ?? { ok: true, message: Buffer.concat(chunks, size) };
}

// Random hex for spool ids and temp file names, drawn from OpenSSL 3 KiB at a time: a call into it costs about
// 10 µs on the benchmark machine, once or twice per message, against a slice of a buffer.
import { randomBytes } from 'node:crypto';

let pool = Buffer.alloc(0);
let used = 0;

/** 12 random hex digits. */
export function randomHex6(): string {
  if (used + 6 > pool.length) {
    pool = randomBytes(6 * 512);
    used = 0;
  }
  used += 6;
  return pool.toString('hex', used - 6, used);
}

// Spool ids name files, so they are generated here and validated before they touch a path (boundary 5).
import { randomBytes } from 'node:crypto';

const SPOOL_ID = /^[0-9a-f]{24}$/;

/** Random bytes drawn 3 KiB at a time: one call into OpenSSL per 512 ids instead of one per id. */
let pool = Buffer.alloc(0);
let used = 0;

function randomHex6(): string {
  if (used + 6 > pool.length) {
    pool = randomBytes(6 * 512);
    used = 0;
  }
  used += 6;
  return pool.toString('hex', used - 6, used);
}

/** 12 hex digits of milliseconds (sortable by arrival) + 12 random hex digits. */
export function newSpoolId(now: number): string {
  return Math.floor(now).toString(16).padStart(12, '0').slice(-12) + randomHex6();
}

export function isSpoolId(id: string): boolean {
  return SPOOL_ID.test(id);
}

export function assertSpoolId(id: string): string {
  if (!isSpoolId(id)) throw new Error(`not a queue id: ${JSON.stringify(id.slice(0, 64))} (expected 24 hex digits)`);
  return id;
}

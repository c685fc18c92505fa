// Spool ids name files, so they are generated here and validated before they touch a path (boundary 5).
import { randomHex6 } from './random-hex.ts';

const SPOOL_ID = /^[0-9a-f]{24}$/;

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

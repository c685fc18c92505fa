// Flags as stored: system flags in a bit mask, keywords in a space-delimited string (` a b `) that a
// case-insensitive instr() can search.
import { StoreError, SYSTEM_FLAGS } from './types.ts';

export const FLAG_BITS: Record<string, number> = { '\\seen': 1, '\\answered': 2, '\\flagged': 4, '\\deleted': 8, '\\draft': 16 };
const MAX_KEYWORDS = 64;
const MAX_KEYWORD_LENGTH = 100;
// IMAP atom characters minus the list wildcards and `]` (RFC 3501 flag-keyword = atom).
const KEYWORD = /^[^\x00-\x20\x7f-\xff(){%*"\\\]]+$/;

export interface StoredFlags {
  bits: number;
  keywords: string[];
}

/** Splits a flag list into bits and keywords; `\Recent` and unknown `\` flags are ignored as RFC 3501 allows. */
export function parseFlags(flags: readonly string[]): StoredFlags {
  let bits = 0;
  const keywords: string[] = [];
  const seen = new Set<string>();
  for (const f of flags) {
    const lower = f.toLowerCase();
    if (f.startsWith('\\')) {
      bits |= FLAG_BITS[lower] ?? 0;
      continue;
    }
    if (f.length > MAX_KEYWORD_LENGTH || !KEYWORD.test(f)) throw new StoreError('CANNOT', `invalid keyword ${JSON.stringify(f.slice(0, 40))}`);
    if (seen.has(lower)) continue;
    seen.add(lower);
    keywords.push(f);
  }
  if (keywords.length > MAX_KEYWORDS) throw new StoreError('LIMIT', `more than ${MAX_KEYWORDS} keywords on one message`);
  return { bits, keywords };
}

export function keywordsColumn(keywords: readonly string[]): string {
  return keywords.length ? ` ${keywords.join(' ')} ` : '';
}

export function keywordsFromColumn(col: string): string[] {
  return col.length ? col.trim().split(' ') : [];
}

const SYSTEM_BITS: ReadonlyArray<readonly [string, number]> = SYSTEM_FLAGS.map((f) => [f, FLAG_BITS[f.toLowerCase()]!] as const);
// Large FETCH FLAGS answers map the same few bit masks over and over: build each system-flag list once.
const BIT_LISTS: ReadonlyArray<readonly string[]> = Array.from({ length: 32 }, (_, bits) => Object.freeze(SYSTEM_BITS.filter(([, b]) => bits & b).map(([f]) => f)));

/**
 * flagList() for read-only use: messages without keywords share one frozen list per bit mask, so a FETCH of
 * thousands of messages allocates no array per message.
 */
export function sharedFlagList(bits: number, keywordsCol: string): readonly string[] {
  return keywordsCol.length === 0 ? BIT_LISTS[bits & 31]! : [...BIT_LISTS[bits & 31]!, ...keywordsFromColumn(keywordsCol)];
}

export function flagList(bits: number, keywordsCol: string): string[] {
  const sys = BIT_LISTS[bits & 31]!;
  if (keywordsCol.length === 0) return sys.slice();
  return [...sys, ...keywordsFromColumn(keywordsCol)];
}

export function applyFlags(mode: 'add' | 'remove' | 'replace', cur: StoredFlags, op: StoredFlags): StoredFlags {
  if (mode === 'replace') return op;
  if (mode === 'add') {
    const have = new Set(cur.keywords.map((k) => k.toLowerCase()));
    const keywords = [...cur.keywords, ...op.keywords.filter((k) => !have.has(k.toLowerCase()))];
    if (keywords.length > MAX_KEYWORDS) throw new StoreError('LIMIT', `more than ${MAX_KEYWORDS} keywords on one message`);
    return { bits: cur.bits | op.bits, keywords };
  }
  const drop = new Set(op.keywords.map((k) => k.toLowerCase()));
  return { bits: cur.bits & ~op.bits, keywords: cur.keywords.filter((k) => !drop.has(k.toLowerCase())) };
}

/** Maildir `:2,` info letters for system flags (so other Maildir readers see them at creation). */
export function maildirInfo(bits: number): string {
  let s = '';
  if (bits & 16) s += 'D';
  if (bits & 4) s += 'F';
  if (bits & 2) s += 'R';
  if (bits & 1) s += 'S';
  if (bits & 8) s += 'T';
  return s;
}

export function bitsFromMaildirInfo(name: string): number {
  const i = name.lastIndexOf(':2,');
  if (i === -1) return 0;
  let bits = 0;
  for (const c of name.slice(i + 3)) {
    if (c === 'D') bits |= 16; else if (c === 'F') bits |= 4; else if (c === 'R') bits |= 2; else if (c === 'S') bits |= 1; else if (c === 'T') bits |= 8;
  }
  return bits;
}

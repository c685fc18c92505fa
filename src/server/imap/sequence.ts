// Sequence sets ("1:4,7,9:*") as written by clients, and their resolution against a mailbox's numbers.
import { ImapSyntaxError } from './tokens.ts';

/** `null` stands for '*': the largest number in use. */
export type SeqRange = readonly [number | null, number | null];
export type SequenceSet = readonly SeqRange[];

const MAX_RANGES = 10000;

/** `$`: the result a SEARCH RETURN (SAVE) kept (SEARCHRES, RFC 5182); the selected mailbox resolves it. */
export const SAVED_RESULT: SequenceSet = Object.freeze([]) as SequenceSet;

function seqNumber(s: string): number | null {
  if (s === '*') return null;
  if (!/^[1-9]\d{0,9}$/.test(s)) throw new ImapSyntaxError(`Invalid sequence number "${s.slice(0, 20)}"`);
  const n = Number(s);
  if (n > 0xffffffff) throw new ImapSyntaxError('Sequence number out of range');
  return n;
}

export function parseSequenceSet(text: string): SequenceSet {
  if (text === '$') return SAVED_RESULT;
  const parts = text.split(',');
  if (parts.length > MAX_RANGES) throw new ImapSyntaxError('Sequence set too long', 'LIMIT');
  return parts.map((p) => {
    const colon = p.indexOf(':');
    if (colon < 0) {
      const n = seqNumber(p);
      return [n, n] as const;
    }
    return [seqNumber(p.slice(0, colon)), seqNumber(p.slice(colon + 1))] as const;
  });
}

export function isSequenceSet(text: string): boolean {
  return /^(?:\d+|\*)(?::(?:\d+|\*))?(?:,(?:\d+|\*)(?::(?:\d+|\*))?)*$/.test(text);
}

/** Compact form of ascending numbers: [1,2,3,5] → "1:3,5". */
export function formatSequenceSet(nums: readonly number[]): string {
  const out: string[] = [];
  let i = 0;
  while (i < nums.length) {
    const start = nums[i]!;
    let end = start;
    while (i + 1 < nums.length && nums[i + 1] === end + 1) {
      end++;
      i++;
    }
    out.push(start === end ? String(start) : `${start}:${end}`);
    i++;
  }
  return out.join(',');
}

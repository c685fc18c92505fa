// A cursor over a command's tokenised arguments with typed getters; each getter throws ImapSyntaxError
// (answered with BAD) naming what was expected.
import { decodeUtf8, ImapSyntaxError, type Value } from './tokens.ts';
import { parseSequenceSet, type SequenceSet } from './sequence.ts';

export class Args {
  private i = 0;
  private readonly values: readonly Value[];
  constructor(values: readonly Value[]) {
    this.values = values;
  }

  get remaining(): number {
    return this.values.length - this.i;
  }

  peek(): Value | undefined {
    return this.values[this.i];
  }

  /** The next value if it is an atom (case-insensitive) equal to `word`; consumes it. */
  accept(word: string): boolean {
    const v = this.values[this.i];
    if (v?.type === 'atom' && !v.section && v.value.toUpperCase() === word) {
      this.i++;
      return true;
    }
    return false;
  }

  any(what: string): Value {
    const v = this.values[this.i];
    if (!v) throw new ImapSyntaxError(`Missing ${what}`);
    this.i++;
    return v;
  }

  /** A bare atom, upper-cased. */
  keyword(what: string): string {
    const v = this.any(what);
    if (v.type !== 'atom' || v.section) throw new ImapSyntaxError(`Expected ${what}`);
    return v.value.toUpperCase();
  }

  atom(what: string): string {
    const v = this.any(what);
    if (v.type !== 'atom' || v.section) throw new ImapSyntaxError(`Expected ${what}`);
    return v.value;
  }

  /** atom / quoted / literal, as UTF-8 text. */
  astring(what: string): string {
    const v = this.any(what);
    return valueText(v, what);
  }

  /** Raw bytes of a quoted string or literal (APPEND's message). */
  bytes(what: string): Buffer {
    const v = this.any(what);
    if (v.type !== 'string') throw new ImapSyntaxError(`Expected ${what} as a string or literal`);
    return v.value;
  }

  /** A quoted string or literal, as UTF-8 text. */
  string(what: string): string {
    const v = this.any(what);
    if (v.type !== 'string') throw new ImapSyntaxError(`Expected ${what} as a string`);
    return decodeUtf8(v.value, what);
  }

  /** NIL or a string. */
  nstring(what: string): string | null {
    const v = this.peek();
    if (v?.type === 'atom' && v.value.toUpperCase() === 'NIL') {
      this.i++;
      return null;
    }
    return this.string(what);
  }

  list(what: string): Value[] {
    const v = this.any(what);
    if (v.type !== 'list') throw new ImapSyntaxError(`Expected ${what} in parentheses`);
    return v.value;
  }

  /** A parenthesised list, or a single value standing for a one-item list. */
  listOrOne(what: string): Value[] {
    const v = this.any(what);
    return v.type === 'list' ? v.value : [v];
  }

  number(what: string, max = 0xffffffff): number {
    return parseNumber(this.atom(what), what, max);
  }

  sequenceSet(what = 'sequence set'): SequenceSet {
    return parseSequenceSet(this.atom(what));
  }

  /** Throws when arguments are left over. */
  end(): void {
    if (this.i < this.values.length) throw new ImapSyntaxError('Too many arguments');
  }
}

export function valueText(v: Value, what: string): string {
  if (v.type === 'atom' && !v.section) return v.value;
  if (v.type === 'string') return decodeUtf8(v.value, what);
  throw new ImapSyntaxError(`Expected ${what}`);
}

export function parseNumber(s: string, what: string, max = 0xffffffff): number {
  if (!/^\d{1,20}$/.test(s)) throw new ImapSyntaxError(`Expected a number for ${what}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n > max) throw new ImapSyntaxError(`${what} out of range`);
  return n;
}

/** mod-sequence values are 63-bit in RFC 7162; JavaScript numbers hold 53 bits, which a store never reaches. */
export const MAX_MODSEQ = Number.MAX_SAFE_INTEGER;

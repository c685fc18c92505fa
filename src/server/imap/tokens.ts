// Turns the framed pieces of one command (reader.ts) into a tree of values: atoms (with an optional
// `[section]` and `<partial>`, as in BODY.PEEK[HEADER.FIELDS (Subject)]<0.100>), strings (quoted or literal)
// and parenthesised lists. Syntax errors throw ImapSyntaxError, which the session answers with BAD.
import type { Segment } from './reader.ts';

export type Value =
  | { type: 'atom'; value: string; section?: Value[]; partial?: { start: number; length: number | null } }
  | { type: 'string'; value: Buffer; literal: boolean }
  | { type: 'list'; value: Value[] };

export class ImapSyntaxError extends Error {
  /** Optional response code, e.g. TOOBIG or LIMIT. */
  readonly code: string | null;
  constructor(message: string, code: string | null = null) {
    super(message);
    this.code = code;
  }
}

const SP = 0x20;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * ASTRING-CHAR plus the list wildcards (LIST patterns and sequence sets need them) and '\\' (flags); '['
 * opens a section, and ']' ends an atom only inside one.
 */
function isAtomChar(b: number, inSection: boolean): boolean {
  return b > 0x20 && b < 0x7f && b !== 0x28 && b !== 0x29 && b !== 0x7b && b !== DQUOTE && b !== 0x5b && (b !== 0x5d || !inSection);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes a string value as UTF-8; throws ImapSyntaxError on invalid bytes. */
export function decodeUtf8(b: Buffer, what = 'string'): string {
  try {
    return utf8.decode(b);
  } catch {
    throw new ImapSyntaxError(`${what} is not valid UTF-8`);
  }
}

interface Cursor {
  segs: Segment[];
  seg: number;
  pos: number;
}

export function tokenize(segments: Segment[], maxDepth: number): Value[] {
  const c: Cursor = { segs: segments, seg: 0, pos: 0 };
  const out = parseSequence(c, 0, maxDepth, null);
  if (c.seg < c.segs.length) throw new ImapSyntaxError('Unexpected ")"');
  return out;
}

function current(c: Cursor): Segment | undefined {
  return c.segs[c.seg];
}

/** Parses values until `close` (')' or ']') or the end of the command. */
function parseSequence(c: Cursor, depth: number, maxDepth: number, close: number | null): Value[] {
  const out: Value[] = [];
  let needSpace = false;
  for (;;) {
    const seg = current(c);
    if (!seg) {
      if (close !== null) throw new ImapSyntaxError(close === 0x29 ? 'Unbalanced parentheses: missing ")"' : 'Missing "]"');
      return out;
    }
    if (seg.kind === 'literal') {
      if (needSpace) throw new ImapSyntaxError('Missing space before literal');
      if (!seg.binary && seg.data.includes(0)) throw new ImapSyntaxError('NUL byte in literal');
      out.push({ type: 'string', value: seg.data, literal: true });
      c.seg++;
      c.pos = 0;
      needSpace = true;
      continue;
    }
    const d = seg.data;
    if (c.pos >= d.length) {
      c.seg++;
      c.pos = 0;
      continue;
    }
    const b = d[c.pos]!;
    if (b === close) {
      c.pos++;
      return out;
    }
    if (b === 0x29) {
      throw new ImapSyntaxError('Unbalanced parentheses: unexpected ")"');
    }
    if (b === SP) {
      if (!needSpace) throw new ImapSyntaxError('Unexpected space');
      c.pos++;
      needSpace = false;
      continue;
    }
    if (b === 0) throw new ImapSyntaxError('NUL byte in command');
    // Lists may follow a list directly, as in "((a)(b))": response syntax that a lenient reader accepts.
    if (needSpace && !(b === 0x28 && out[out.length - 1]?.type === 'list')) throw new ImapSyntaxError('Missing space between arguments');
    if (b === 0x28) {
      if (depth + 1 > maxDepth) throw new ImapSyntaxError('Too deeply nested', 'LIMIT');
      c.pos++;
      out.push({ type: 'list', value: parseSequence(c, depth + 1, maxDepth, 0x29) });
    } else if (b === DQUOTE) {
      out.push({ type: 'string', value: parseQuoted(c, d), literal: false });
    } else {
      out.push(parseAtom(c, d, depth, maxDepth, close === 0x5d));
    }
    needSpace = true;
  }
}

function parseQuoted(c: Cursor, d: Buffer): Buffer {
  const bytes: number[] = [];
  let i = c.pos + 1;
  for (; i < d.length; i++) {
    const b = d[i]!;
    if (b === DQUOTE) {
      c.pos = i + 1;
      return Buffer.from(bytes);
    }
    if (b === 0) throw new ImapSyntaxError('NUL byte in quoted string');
    if (b === BACKSLASH) {
      const n = d[i + 1];
      if (n !== DQUOTE && n !== BACKSLASH) throw new ImapSyntaxError('Invalid escape in quoted string');
      bytes.push(n);
      i++;
    } else {
      bytes.push(b);
    }
  }
  throw new ImapSyntaxError('Unterminated quoted string');
}

function parseAtom(c: Cursor, d: Buffer, depth: number, maxDepth: number, inSection: boolean): Value {
  const start = c.pos;
  let i = start;
  while (i < d.length && isAtomChar(d[i]!, inSection)) i++;
  if (i === start) {
    const b = d[i]!;
    if (b === 0) throw new ImapSyntaxError('NUL byte in command');
    if (b >= 0x80) throw new ImapSyntaxError('8-bit byte outside a quoted string or literal');
    throw new ImapSyntaxError(`Unexpected character ${JSON.stringify(String.fromCharCode(b))}`);
  }
  const value = d.subarray(start, i).toString('latin1');
  c.pos = i;
  if (d[i] !== 0x5b) {
    if (d[i] === 0) throw new ImapSyntaxError('NUL byte in command');
    if (i < d.length && d[i]! >= 0x80) throw new ImapSyntaxError('8-bit byte outside a quoted string or literal');
    return { type: 'atom', value };
  }
  if (depth + 1 > maxDepth) throw new ImapSyntaxError('Too deeply nested', 'LIMIT');
  c.pos++;
  const section = parseSequence(c, depth + 1, maxDepth, 0x5d);
  const atom: Value = { type: 'atom', value, section };
  const seg = current(c);
  if (seg && seg.kind === 'text' && seg.data[c.pos] === 0x3c) {
    const m = /^<(\d{1,10})(?:\.(\d{1,10}))?>/.exec(seg.data.subarray(c.pos, c.pos + 24).toString('latin1'));
    if (!m) throw new ImapSyntaxError('Invalid partial <start.length>');
    const startN = Number(m[1]);
    const length = m[2] === undefined ? null : Number(m[2]);
    if (startN > 0xffffffff || (length !== null && length > 0xffffffff)) {
      throw new ImapSyntaxError('Invalid partial range');
    }
    atom.partial = { start: startN, length };
    c.pos += m[0].length;
  }
  return atom;
}

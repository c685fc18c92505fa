// SEARCH criteria (RFC 3501 6.4.4, RFC 9051 6.4.4, RFC 7162 MODSEQ) parsed into the store's SearchKey tree.
// Sequence sets and the \Recent-based keys depend on the session's view of the mailbox, given as `SearchContext`.
import type { SearchKey, UidSet } from '../store/types.ts';
import { Args, parseNumber, valueText, MAX_MODSEQ } from './args.ts';
import { isSequenceSet, parseSequenceSet, SAVED_RESULT, type SequenceSet } from './sequence.ts';
import { ImapSyntaxError, type Value } from './tokens.ts';

export interface SearchContext {
  /** Message sequence set → UIDs of the session's view. */
  seqToUids(set: SequenceSet): UidSet;
  /** UID set ('*' = largest UID) → UID ranges. */
  uidSetToUids(set: SequenceSet): UidSet;
  /** UIDs the session holds as \Recent. */
  recentUids(): UidSet;
}

export interface ParsedSearch {
  key: SearchKey;
  /** Whether MODSEQ was used (the response then carries (MODSEQ n), RFC 7162 3.1.5). */
  usesModseq: boolean;
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const MAX_KEYS = 1000;
const MAX_DEPTH = 32;

/** date = 1*2DIGIT "-" Mon "-" 4DIGIT, possibly quoted → YYYY-MM-DD. */
export function parseSearchDate(s: string): string {
  const m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(s);
  if (!m) throw new ImapSyntaxError(`Invalid date "${s.slice(0, 30)}" (expected d-Mon-yyyy)`);
  const month = MONTHS.indexOf(m[2]!.toUpperCase());
  const day = Number(m[1]);
  if (month < 0 || day < 1 || day > 31) throw new ImapSyntaxError(`Invalid date "${s}"`);
  return `${m[3]}-${String(month + 1).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
}

const FLAG_KEYS: Record<string, [string, boolean]> = {
  ANSWERED: ['\\Answered', true], DELETED: ['\\Deleted', true], DRAFT: ['\\Draft', true],
  FLAGGED: ['\\Flagged', true], SEEN: ['\\Seen', true],
  UNANSWERED: ['\\Answered', false], UNDELETED: ['\\Deleted', false], UNDRAFT: ['\\Draft', false],
  UNFLAGGED: ['\\Flagged', false], UNSEEN: ['\\Seen', false],
};
const HEADER_KEYS: Record<string, string> = { BCC: 'Bcc', CC: 'Cc', FROM: 'From', SUBJECT: 'Subject', TO: 'To' };
const DATE_KEYS: Record<string, [ 'internaldate' | 'sentdate', 'before' | 'on' | 'since']> = {
  BEFORE: ['internaldate', 'before'], ON: ['internaldate', 'on'], SINCE: ['internaldate', 'since'],
  SENTBEFORE: ['sentdate', 'before'], SENTON: ['sentdate', 'on'], SENTSINCE: ['sentdate', 'since'],
};

class SearchParser {
  count = 0;
  usesModseq = false;
  private readonly ctx: SearchContext;
  constructor(ctx: SearchContext) {
    this.ctx = ctx;
  }

  keys(values: readonly Value[], depth: number): SearchKey {
    const a = new Args(values);
    const keys: SearchKey[] = [];
    while (a.remaining > 0) keys.push(this.key(a, depth));
    if (keys.length === 0) throw new ImapSyntaxError('Missing search criteria');
    return keys.length === 1 ? keys[0]! : { type: 'and', keys };
  }

  key(a: Args, depth: number): SearchKey {
    if (++this.count > MAX_KEYS) throw new ImapSyntaxError('Too many search keys', 'LIMIT');
    if (depth > MAX_DEPTH) throw new ImapSyntaxError('Search criteria nested too deeply', 'LIMIT');
    const v = a.any('search key');
    if (v.type === 'list') return this.keys(v.value, depth + 1);
    if (v.type !== 'atom' || v.section) throw new ImapSyntaxError('Expected a search key');
    const word = v.value.toUpperCase();
    const flag = FLAG_KEYS[word];
    if (flag) return { type: 'flag', flag: flag[0], set: flag[1] };
    const header = HEADER_KEYS[word];
    if (header) return { type: 'header', field: header, value: a.astring(`${word} value`) };
    const date = DATE_KEYS[word];
    if (date) return { type: date[0], op: date[1], date: parseSearchDate(a.astring(`${word} date`)) };
    switch (word) {
      case 'ALL': return { type: 'all' };
      case 'NEW': return { type: 'and', keys: [this.recent(), { type: 'flag', flag: '\\Seen', set: false }] };
      case 'OLD': return { type: 'not', key: this.recent() };
      case 'RECENT': return this.recent();
      case 'BODY': return { type: 'body', value: a.astring('BODY value') };
      case 'TEXT': return { type: 'text', value: a.astring('TEXT value') };
      case 'HEADER': {
        const field = a.astring('header field name');
        if (!/^[\x21-\x39\x3b-\x7e]{1,128}$/.test(field)) throw new ImapSyntaxError('Invalid header field name');
        return { type: 'header', field, value: a.astring('HEADER value') };
      }
      case 'KEYWORD': return { type: 'flag', flag: flagAtom(a.atom('keyword')), set: true };
      case 'UNKEYWORD': return { type: 'flag', flag: flagAtom(a.atom('keyword')), set: false };
      case 'LARGER': return { type: 'size', op: 'larger', bytes: a.number('LARGER size', Number.MAX_SAFE_INTEGER) };
      case 'SMALLER': return { type: 'size', op: 'smaller', bytes: a.number('SMALLER size', Number.MAX_SAFE_INTEGER) };
      case 'NOT': return { type: 'not', key: this.key(a, depth + 1) };
      case 'OR': return { type: 'or', keys: [this.key(a, depth + 1), this.key(a, depth + 1)] };
      case 'UID': return { type: 'uid', set: this.ctx.uidSetToUids(a.sequenceSet('UID set')) };
      case 'MODSEQ': {
        this.usesModseq = true;
        // Optional entry name and type (per-flag modseqs): the store keeps one modseq per message, which
        // RFC 7162 allows ("all" entry semantics), so they are checked and ignored.
        const next = a.peek();
        if (next && (next.type === 'string' || (next.type === 'atom' && !/^\d+$/.test(next.value)))) {
          valueText(a.any('entry name'), 'entry name');
          const t = a.keyword('entry type');
          if (t !== 'PRIV' && t !== 'SHARED' && t !== 'ALL') throw new ImapSyntaxError('Invalid MODSEQ entry type');
        }
        return { type: 'modseq', value: parseNumber(a.atom('mod-sequence'), 'mod-sequence', MAX_MODSEQ) };
      }
      default:
        if (v.value === '$') return { type: 'uid', set: this.ctx.seqToUids(SAVED_RESULT) };
        if (isSequenceSet(v.value)) return { type: 'uid', set: this.ctx.seqToUids(parseSequenceSet(v.value)) };
        throw new ImapSyntaxError(`Unknown search key ${v.value.slice(0, 40)}`);
    }
  }

  private recent(): SearchKey {
    return { type: 'uid', set: this.ctx.recentUids() };
  }
}

function flagAtom(s: string): string {
  if (s.startsWith('\\')) throw new ImapSyntaxError('KEYWORD takes a keyword, not a system flag');
  return s;
}

/** Parses the criteria (after any RETURN and CHARSET) from the remaining arguments. */
export function parseSearchKeys(values: readonly Value[], ctx: SearchContext): ParsedSearch {
  const p = new SearchParser(ctx);
  const key = p.keys(values, 0);
  return { key, usesModseq: p.usesModseq };
}

// Compiles a SearchKey tree into one SQL condition over `messages m JOIN contents c`. Substring keys of three
// characters or more go through the FTS5 trigram index; shorter ones and exact header checks use registered
// functions on the cached text, so search never opens message files.
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { FLAG_BITS } from './flags.ts';
import { decodeHeaderValue, headerBytesToString, parseFields } from './mime.ts';
import { StoreError, type SearchKey, type UidSet } from './types.ts';

const MAX_NODES = 1000;
const MAX_NEEDLE = 1000;
export const UID_MAX = 0xffffffff;

export interface CompiledSearch {
  sql: string;
  params: SQLInputValue[];
}

/** Registers the helper functions search SQL uses. */
export function registerSearchFunctions(db: DatabaseSync): void {
  // The FTS text is stored lower-cased, so a lower-cased needle is a case-insensitive match.
  db.function('contains_ci', { deterministic: true }, (hay: unknown, needle: unknown) =>
    typeof hay === 'string' && typeof needle === 'string' && hay.includes(needle) ? 1 : 0);
  db.function('header_has', { deterministic: true }, (header: unknown, field: unknown, needle: unknown) => {
    if (!(header instanceof Uint8Array) || typeof field !== 'string' || typeof needle !== 'string') return 0;
    for (const f of parseFields(headerBytesToString(header))) {
      if (f.name !== field) continue;
      if (needle === '' || decodeHeaderValue(f.value).toLowerCase().includes(needle)) return 1;
    }
    return 0;
  });
}

/** `*needle*` for GLOB over the lower-cased FTS text, GLOB's own wildcards taken literally. */
function globPattern(needle: string): string {
  return `*${needle.replace(/[*?[]/g, (c) => `[${c}]`)}*`;
}

function needleOf(value: string): string {
  if (value.length > MAX_NEEDLE) throw new StoreError('CANNOT', 'search string too long');
  return value.toLowerCase();
}

function checkDate(date: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new StoreError('CANNOT', `invalid search date ${JSON.stringify(date)}`);
  return date;
}

function dateOp(op: 'before' | 'on' | 'since'): string {
  return op === 'before' ? '<' : op === 'on' ? '=' : '>=';
}

/** A needle of 1–2 characters has no trigram: it falls back to scanning this mailbox's cached text. */
/** Whether a search reads the FTS table (header, body and text keys do). */
export function usesFts(key: SearchKey): boolean {
  switch (key.type) {
    case 'header': case 'body': case 'text': return true;
    case 'and': case 'or': return key.keys.some(usesFts);
    case 'not': return usesFts(key.key);
    default: return false;
  }
}

function ftsUsable(needle: string): boolean {
  return [...needle].length >= 3;
}

export function uidSetSql(set: UidSet, params: SQLInputValue[], column = 'm.uid'): string {
  if (set.length === 0) return '0';
  if (set.length <= 64) {
    return '(' + set.map(([lo, hi]) => {
      params.push(Math.min(lo, hi), Math.min(Math.max(lo, hi), UID_MAX));
      return `${column} BETWEEN ? AND ?`;
    }).join(' OR ') + ')';
  }
  params.push(JSON.stringify(set.map(([lo, hi]) => [Math.min(lo, hi), Math.min(Math.max(lo, hi), UID_MAX)])));
  return `EXISTS (SELECT 1 FROM json_each(?) r WHERE ${column} BETWEEN r.value ->> 0 AND r.value ->> 1)`;
}

export function compileSearch(key: SearchKey): CompiledSearch {
  const params: SQLInputValue[] = [];
  let nodes = 0;
  const walk = (k: SearchKey, depth: number): string => {
    if (++nodes > MAX_NODES || depth > 100) throw new StoreError('CANNOT', 'search program too large');
    switch (k.type) {
      case 'all': return '1';
      case 'and': return k.keys.length ? '(' + k.keys.map((x) => walk(x, depth + 1)).join(' AND ') + ')' : '1';
      case 'or': return k.keys.length ? '(' + k.keys.map((x) => walk(x, depth + 1)).join(' OR ') + ')' : '0';
      case 'not': return `(NOT ${walk(k.key, depth + 1)})`;
      case 'uid': return uidSetSql(k.set, params);
      case 'flag': {
        const lower = k.flag.toLowerCase();
        if (lower === '\\recent') return k.set ? 'm.recent = 1' : 'm.recent = 0';
        const bit = FLAG_BITS[lower];
        if (bit !== undefined) return k.set ? `(m.flags & ${bit}) != 0` : `(m.flags & ${bit}) = 0`;
        if (lower.startsWith('\\')) return k.set ? '0' : '1';
        params.push(` ${lower} `);
        return k.set ? 'instr(lower(m.keywords), ?) > 0' : 'instr(lower(m.keywords), ?) = 0';
      }
      case 'header': {
        const field = k.field.toLowerCase();
        if (!/^[\x21-\x39\x3b-\x7e]{1,100}$/.test(field)) throw new StoreError('CANNOT', 'invalid header field name in search');
        const needle = needleOf(k.value);
        if (ftsUsable(needle)) {
          params.push(globPattern(needle), field, needle);
          return '(c.id IN (SELECT rowid FROM fts WHERE fts.headers GLOB ?) AND header_has(c.header, ?, ?))';
        }
        params.push(field, needle);
        return 'header_has(c.header, ?, ?)';
      }
      case 'body': {
        const needle = needleOf(k.value);
        if (needle === '') return '1';
        params.push(ftsUsable(needle) ? globPattern(needle) : needle);
        return ftsUsable(needle)
          ? 'c.id IN (SELECT rowid FROM fts WHERE fts.body GLOB ?)'
          : 'contains_ci((SELECT body FROM fts WHERE rowid = c.id), ?)';
      }
      case 'text': {
        const needle = needleOf(k.value);
        if (needle === '') return '1';
        if (ftsUsable(needle)) {
          params.push(globPattern(needle), globPattern(needle));
          return 'c.id IN (SELECT rowid FROM fts WHERE fts.headers GLOB ? UNION SELECT rowid FROM fts WHERE fts.body GLOB ?)';
        }
        params.push(needle, needle);
        return '(contains_ci((SELECT headers FROM fts WHERE rowid = c.id), ?) OR contains_ci((SELECT body FROM fts WHERE rowid = c.id), ?))';
      }
      case 'internaldate':
        params.push(checkDate(k.date));
        return `date(m.internal_date / 1000 + m.internal_zone * 60, 'unixepoch') ${dateOp(k.op)} ?`;
      case 'sentdate':
        params.push(checkDate(k.date));
        return `coalesce(c.sent_day ${dateOp(k.op)} ?, 0)`;
      case 'size':
        if (!Number.isSafeInteger(k.bytes) || k.bytes < 0) throw new StoreError('CANNOT', 'invalid search size');
        params.push(k.bytes);
        return k.op === 'larger' ? 'm.size > ?' : 'm.size < ?';
      case 'modseq':
        if (!Number.isSafeInteger(k.value) || k.value < 0) throw new StoreError('CANNOT', 'invalid search modseq');
        params.push(k.value);
        return 'm.modseq >= ?';
      default: {
        const never: never = k;
        throw new StoreError('CANNOT', `unknown search key ${JSON.stringify(never)}`);
      }
    }
  };
  return { sql: walk(key, 0), params };
}

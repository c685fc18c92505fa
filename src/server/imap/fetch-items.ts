// FETCH data items (RFC 3501 6.4.5, RFC 9051 6.4.5, RFC 7162 MODSEQ/CHANGEDSINCE) parsed into a plan the
// FETCH command executes: which metadata, which cached structures, which byte ranges of the message.
import { Args, MAX_MODSEQ, parseNumber, valueText } from './args.ts';
import { ImapSyntaxError, type Value } from './tokens.ts';

export type SectionText = 'HEADER' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT' | 'TEXT' | 'MIME' | null;

export interface Section {
  /** Part numbers, e.g. [1, 2] for "1.2"; empty for the whole message. */
  part: number[];
  text: SectionText;
  /** Header field names for HEADER.FIELDS[.NOT], as the client wrote them. */
  fields: string[];
}

export type FetchItem =
  | { kind: 'uid' }
  | { kind: 'flags' }
  | { kind: 'internaldate' }
  | { kind: 'rfc822.size' }
  | { kind: 'envelope' }
  | { kind: 'bodystructure' }
  /** BODY without a section: the non-extensible BODYSTRUCTURE. */
  | { kind: 'body-structure-basic' }
  | { kind: 'modseq' }
  /** BODY[...], BODY.PEEK[...], BINARY[...], BINARY.PEEK[...], and RFC822 / RFC822.HEADER / RFC822.TEXT. */
  | {
      kind: 'section';
      section: Section;
      peek: boolean;
      binary: boolean;
      partial: { start: number; length: number | null } | null;
      /** The name the response uses, e.g. "BODY[1.MIME]" or "RFC822.HEADER". */
      responseName: string;
    }
  | { kind: 'binary.size'; section: Section; responseName: string };

export interface FetchRequest {
  items: FetchItem[];
  /** CHANGEDSINCE modifier: only messages with a higher modseq. */
  changedSince: number | null;
  /** QRESYNC VANISHED modifier (UID FETCH only). */
  vanished: boolean;
}

const MAX_ITEMS = 100;
const MAX_PART_DEPTH = 20;
const MAX_FIELDS = 200;

export function parseSection(values: readonly Value[], allowText: boolean): Section {
  const a = new Args(values);
  if (a.remaining === 0) return { part: [], text: null, fields: [] };
  const spec = a.atom('section').toUpperCase();
  const m = /^((?:[1-9]\d{0,8}\.?)*)(.*)$/.exec(spec)!;
  let partText = m[1]!;
  let text = m[2]!;
  if (partText.endsWith('.') && text === '') throw new ImapSyntaxError('Invalid section');
  if (partText.endsWith('.')) partText = partText.slice(0, -1);
  else if (partText !== '' && text !== '') throw new ImapSyntaxError('Invalid section');
  const part = partText === '' ? [] : partText.split('.').map((n) => Number(n));
  if (part.length > MAX_PART_DEPTH) throw new ImapSyntaxError('Section nested too deeply', 'LIMIT');
  let st: SectionText = null;
  const fields: string[] = [];
  if (text !== '') {
    if (!allowText) throw new ImapSyntaxError('BINARY sections take part numbers only');
    if (text === 'HEADER' || text === 'TEXT') st = text;
    else if (text === 'MIME') {
      if (part.length === 0) throw new ImapSyntaxError('MIME needs a part number');
      st = 'MIME';
    } else if (text === 'HEADER.FIELDS' || text === 'HEADER.FIELDS.NOT') {
      st = text;
      const list = a.list('header field list');
      if (list.length === 0) throw new ImapSyntaxError('Empty header field list');
      if (list.length > MAX_FIELDS) throw new ImapSyntaxError('Too many header fields', 'LIMIT');
      for (const f of list) {
        const name = valueText(f, 'header field name');
        if (!/^[\x21-\x39\x3b-\x7e]{1,128}$/.test(name)) throw new ImapSyntaxError('Invalid header field name');
        fields.push(name);
      }
    } else throw new ImapSyntaxError(`Invalid section ${spec.slice(0, 40)}`);
  }
  a.end();
  return { part, text: st, fields };
}

export function sectionName(s: Section): string {
  const parts = s.part.join('.');
  if (!s.text) return parts;
  const t = parts ? `${parts}.${s.text}` : s.text;
  if (s.text === 'HEADER.FIELDS' || s.text === 'HEADER.FIELDS.NOT') return `${t} (${s.fields.join(' ')})`;
  return t;
}

function item(v: Value): FetchItem {
  if (v.type !== 'atom') throw new ImapSyntaxError('Expected a fetch attribute');
  const name = v.value.toUpperCase();
  if (v.section === undefined) {
    if (v.partial) throw new ImapSyntaxError('Partial without a section');
    switch (name) {
      case 'UID': return { kind: 'uid' };
      case 'FLAGS': return { kind: 'flags' };
      case 'INTERNALDATE': return { kind: 'internaldate' };
      case 'RFC822.SIZE': return { kind: 'rfc822.size' };
      case 'ENVELOPE': return { kind: 'envelope' };
      case 'BODYSTRUCTURE': return { kind: 'bodystructure' };
      case 'BODY': return { kind: 'body-structure-basic' };
      case 'MODSEQ': return { kind: 'modseq' };
      case 'RFC822':
        return { kind: 'section', section: { part: [], text: null, fields: [] }, peek: false, binary: false, partial: null, responseName: 'RFC822' };
      case 'RFC822.HEADER':
        return { kind: 'section', section: { part: [], text: 'HEADER', fields: [] }, peek: true, binary: false, partial: null, responseName: 'RFC822.HEADER' };
      case 'RFC822.TEXT':
        return { kind: 'section', section: { part: [], text: 'TEXT', fields: [] }, peek: false, binary: false, partial: null, responseName: 'RFC822.TEXT' };
      default: throw new ImapSyntaxError(`Unknown fetch attribute ${v.value.slice(0, 40)}`);
    }
  }
  const binary = name === 'BINARY' || name === 'BINARY.PEEK' || name === 'BINARY.SIZE';
  if (!binary && name !== 'BODY' && name !== 'BODY.PEEK') throw new ImapSyntaxError(`Unknown fetch attribute ${name.slice(0, 40)}`);
  const section = parseSection(v.section, !binary);
  if (name === 'BINARY.SIZE') {
    if (v.partial) throw new ImapSyntaxError('BINARY.SIZE takes no partial');
    return { kind: 'binary.size', section, responseName: `BINARY.SIZE[${sectionName(section)}]` };
  }
  const base = binary ? 'BINARY' : 'BODY';
  return {
    kind: 'section', section, binary, peek: name.endsWith('.PEEK'),
    partial: v.partial ?? null,
    responseName: `${base}[${sectionName(section)}]`,
  };
}

const MACROS: Record<string, string[]> = {
  ALL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'],
  FAST: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'],
  FULL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'],
};

/** Parses `items [modifiers]` after the sequence set. */
export function parseFetchRequest(a: Args): FetchRequest {
  const first = a.any('fetch attributes');
  let values: Value[];
  if (first.type === 'list') values = first.value;
  else if (first.type === 'atom' && !first.section && MACROS[first.value.toUpperCase()]) {
    values = MACROS[first.value.toUpperCase()]!.map((value) => ({ type: 'atom', value }));
  } else values = [first];
  if (values.length === 0) throw new ImapSyntaxError('Empty fetch attribute list');
  if (values.length > MAX_ITEMS) throw new ImapSyntaxError('Too many fetch attributes', 'LIMIT');
  const items = values.map(item);
  let changedSince: number | null = null;
  let vanished = false;
  if (a.remaining > 0) {
    const mods = new Args(a.list('fetch modifiers'));
    while (mods.remaining > 0) {
      const m = mods.keyword('fetch modifier');
      if (m === 'CHANGEDSINCE') changedSince = parseNumber(mods.atom('mod-sequence'), 'CHANGEDSINCE', MAX_MODSEQ);
      else if (m === 'VANISHED') vanished = true;
      else throw new ImapSyntaxError(`Unknown fetch modifier ${m.slice(0, 40)}`);
    }
  }
  a.end();
  if (vanished && changedSince === null) throw new ImapSyntaxError('VANISHED needs CHANGEDSINCE');
  return { items, changedSince, vanished };
}

// Parses a message once, at delivery/append, into what the index caches: ENVELOPE, BODYSTRUCTURE (with byte
// offsets so IMAP can slice BODY[section] from the raw bytes), the raw header block, decoded header text and
// decoded body text for FTS5, and the Date: header's day. Tolerant: malformed MIME yields a best-effort tree,
// never an exception; bounded: nesting depth, part count and extracted text are capped.
import addressparser from 'nodemailer/lib/addressparser';
import libmime from 'libmime';
import type { BodyDisposition, BodyParams, BodyStructure, Envelope, EnvelopeAddress, SinglePart } from './types.ts';

const MAX_DEPTH = 32;
const MAX_PARTS = 2000;
const MAX_HEADER_FIELDS = 2000;
const MAX_TEXT_CHARS = 2 * 1024 * 1024; // body text indexed per message
const MAX_HEADER_TEXT_CHARS = 256 * 1024;

export interface HeaderField {
  /** Lower-case field name. */
  name: string;
  /** Unfolded raw value (encoded words kept), leading white space removed. */
  value: string;
}

export interface ParsedMessage {
  envelope: Envelope;
  bodyStructure: BodyStructure;
  /** Bytes 0..bodyStart of the top level: the header block including the blank line. */
  headerEnd: number;
  /** `Name: decoded value` lines, for FTS and header search. */
  headerText: string;
  /** Decoded text of the text parts (HTML stripped), for FTS. */
  bodyText: string;
  /** Date: header day in its own zone (YYYY-MM-DD), or null. */
  sentDay: string | null;
}

/** Bare LF (and lone CR) become CRLF; returns the same buffer when it is already clean. */
export function toCrlf(buf: Buffer): Buffer {
  let clean = true;
  for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) {
    if (i === 0 || buf[i - 1] !== 13) { clean = false; break; }
  }
  if (clean) {
    for (let i = buf.indexOf(13); i !== -1; i = buf.indexOf(13, i + 1)) {
      if (buf[i + 1] !== 10) { clean = false; break; }
    }
  }
  if (clean) return buf;
  const out = Buffer.allocUnsafe(buf.length * 2);
  let o = 0;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (c === 13) {
      out[o++] = 13; out[o++] = 10;
      if (buf[i + 1] === 10) i++;
    } else if (c === 10) {
      out[o++] = 13; out[o++] = 10;
    } else out[o++] = c;
  }
  return Buffer.from(out.subarray(0, o));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Header bytes as text: UTF-8 when valid (RFC 6532), else Latin-1 so every byte survives. */
export function headerBytesToString(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return Buffer.from(bytes).toString('latin1');
  }
}

interface HeaderSplit {
  fields: HeaderField[];
  bodyStart: number;
}

/** Finds the blank line ending the header in buf[start, end) and parses the fields before it. */
export function splitHeader(buf: Buffer, start: number, end: number): HeaderSplit {
  let bodyStart: number;
  let headerEnd: number;
  if (buf[start] === 13 && buf[start + 1] === 10) {
    headerEnd = start; bodyStart = start + 2; // no header at all
  } else {
    const blank = buf.indexOf('\r\n\r\n', start);
    if (blank === -1 || blank + 4 > end) { headerEnd = end; bodyStart = end; } else { headerEnd = blank + 2; bodyStart = blank + 4; }
  }
  return { fields: parseFields(headerBytesToString(buf.subarray(start, headerEnd))), bodyStart };
}

export function parseFields(text: string): HeaderField[] {
  const fields: HeaderField[] = [];
  for (const line of text.split(/\r\n(?![ \t])/)) {
    if (fields.length >= MAX_HEADER_FIELDS) break;
    const colon = line.indexOf(':');
    if (colon <= 0) continue; // garbage line: skipped, not fatal
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) continue;
    fields.push({ name, value: line.slice(colon + 1).replace(/\r\n/g, '').replace(/^[ \t]+/, '').replace(/[ \t]+$/, '') });
  }
  return fields;
}

function first(fields: HeaderField[], name: string): string | null {
  for (const f of fields) if (f.name === name) return f.value;
  return null;
}

/** `value; a=b; c="d e"` → value and raw parameters (quoted strings unquoted, names lower-cased). */
export function parseStructured(input: string): { value: string; params: BodyParams } {
  const s = input.replace(/\([^()]*\)/g, ' ');
  const params: BodyParams = [];
  let i = s.indexOf(';');
  const value = (i === -1 ? s : s.slice(0, i)).trim();
  while (i !== -1 && i < s.length && params.length < 64) {
    i++;
    while (s[i] === ' ' || s[i] === '\t') i++;
    const eq = s.indexOf('=', i);
    const semi = s.indexOf(';', i);
    if (eq === -1 || (semi !== -1 && semi < eq)) { i = semi; continue; }
    const name = s.slice(i, eq).trim().toLowerCase();
    let j = eq + 1;
    while (s[j] === ' ' || s[j] === '\t') j++;
    let val = '';
    if (s[j] === '"') {
      j++;
      while (j < s.length && s[j] !== '"') {
        if (s[j] === '\\' && j + 1 < s.length) j++;
        val += s[j]; j++;
      }
      j++;
      const next = s.indexOf(';', j);
      i = next;
    } else {
      const next = s.indexOf(';', j);
      val = (next === -1 ? s.slice(j) : s.slice(j, next)).trim();
      i = next;
    }
    if (name) params.push([name, val]);
  }
  return { value, params };
}

function param(params: BodyParams, name: string): string | null {
  for (const [k, v] of params) if (k === name) return v;
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// ENVELOPE

const MISSING_MAILBOX = 'MISSING_MAILBOX';
const MISSING_DOMAIN = 'MISSING_DOMAIN';

function mailboxAddress(name: string, address: string): EnvelopeAddress {
  const at = address.lastIndexOf('@');
  if (!address) return { name: null, adl: null, mailbox: name && !/\s/.test(name) ? name : MISSING_MAILBOX, host: MISSING_DOMAIN };
  return {
    name: name || null,
    adl: null,
    mailbox: at === -1 ? address : address.slice(0, at) || MISSING_MAILBOX,
    host: at === -1 ? MISSING_DOMAIN : address.slice(at + 1) || MISSING_DOMAIN,
  };
}

export function envelopeAddresses(value: string | null): EnvelopeAddress[] | null {
  if (value === null || value.trim() === '') return null;
  const out: EnvelopeAddress[] = [];
  for (const a of addressparser(value)) {
    if (out.length > 1000) break;
    if (a.group) {
      out.push({ name: null, adl: null, mailbox: a.name || MISSING_MAILBOX, host: null });
      for (const m of a.group) if (!m.group) out.push(mailboxAddress(m.name, m.address));
      out.push({ name: null, adl: null, mailbox: null, host: null });
    } else out.push(mailboxAddress(a.name, a.address));
  }
  return out.length ? out : null;
}

export function buildEnvelope(fields: HeaderField[]): Envelope {
  const from = envelopeAddresses(first(fields, 'from'));
  return {
    date: first(fields, 'date'),
    subject: first(fields, 'subject'),
    from,
    sender: envelopeAddresses(first(fields, 'sender')) ?? from,
    replyTo: envelopeAddresses(first(fields, 'reply-to')) ?? from,
    to: envelopeAddresses(first(fields, 'to')),
    cc: envelopeAddresses(first(fields, 'cc')),
    bcc: envelopeAddresses(first(fields, 'bcc')),
    inReplyTo: first(fields, 'in-reply-to'),
    messageId: first(fields, 'message-id'),
  };
}

/** Day of a Date: header in the header's own zone, time ignored (RFC 3501 SENT*). */
export function sentDay(value: string | null): string | null {
  if (!value) return null;
  const clean = value.replace(/\([^()]*\)/g, ' ').trim();
  const ms = Date.parse(clean);
  if (Number.isNaN(ms)) return null;
  const zone = /([+-])(\d{2})(\d{2})\s*$/.exec(clean);
  const offset = zone ? (zone[1] === '-' ? -1 : 1) * (Number(zone[2]) * 60 + Number(zone[3])) : 0;
  return new Date(ms + offset * 60_000).toISOString().slice(0, 10);
}

// ---------------------------------------------------------------------------------------------------------------
// BODYSTRUCTURE

interface ParseState {
  parts: number;
}

/**
 * Body lines as IMAP servers report them (Dovecot, Cyrus): the line ends in the body. A last line without a CRLF
 * of its own (the CRLF before a boundary belongs to the boundary, RFC 2046) is not counted.
 */
function countLines(buf: Buffer, start: number, end: number): number {
  let n = 0;
  for (let i = buf.indexOf(10, start); i !== -1 && i < end; i = buf.indexOf(10, i + 1)) n++;
  return n;
}

function disposition(fields: HeaderField[]): BodyDisposition | null {
  const v = first(fields, 'content-disposition');
  if (!v) return null;
  const p = parseStructured(v);
  return p.value ? { type: p.value, params: p.params } : null;
}

function language(fields: HeaderField[]): string[] | null {
  const v = first(fields, 'content-language');
  if (!v) return null;
  const list = v.replace(/\([^()]*\)/g, ' ').split(',').map((s) => s.trim()).filter(Boolean);
  return list.length ? list : null;
}

/** Body [bodyStart, end) of a multipart split at its boundary: the [start, end) of each part. */
function splitMultipart(buf: Buffer, boundary: string, bodyStart: number, end: number): Array<[number, number]> {
  const delim = Buffer.from('--' + boundary, 'latin1');
  const ranges: Array<[number, number]> = [];
  let partStart = -1;
  let pos = bodyStart;
  while (pos < end) {
    const at = buf.indexOf(delim, pos);
    if (at === -1 || at + delim.length > end) break;
    const atLineStart = at === bodyStart || (buf[at - 1] === 10 && buf[at - 2] === 13);
    if (!atLineStart) { pos = at + 1; continue; }
    let after = at + delim.length;
    const closing = buf[after] === 45 && buf[after + 1] === 45;
    if (closing) after += 2;
    while (after < end && (buf[after] === 32 || buf[after] === 9)) after++;
    const lineEnds = after >= end || (buf[after] === 13 && buf[after + 1] === 10);
    if (!lineEnds) { pos = at + 1; continue; }
    if (partStart !== -1) ranges.push([partStart, Math.max(partStart, at === bodyStart ? at : at - 2)]);
    if (closing) return ranges;
    partStart = Math.min(after + 2, end);
    pos = partStart;
  }
  if (partStart !== -1) ranges.push([partStart, end]); // no closing delimiter: the last part runs to the end
  return ranges;
}

function parsePart(buf: Buffer, start: number, end: number, defaultType: [string, string], depth: number, st: ParseState, text: TextCollector | null): BodyStructure {
  st.parts++;
  const { fields, bodyStart } = splitHeader(buf, start, end);
  return structureFor(buf, fields, start, bodyStart, end, defaultType, depth, st, text);
}

function structureFor(buf: Buffer, fields: HeaderField[], start: number, bodyStart: number, end: number, defaultType: [string, string], depth: number, st: ParseState, text: TextCollector | null): BodyStructure {
  const ct = parseStructured(first(fields, 'content-type') ?? '');
  let [type, subtype] = defaultType;
  let params: BodyParams = [];
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\/([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(ct.value);
  if (m) { type = m[1]!.toLowerCase(); subtype = m[2]!.toLowerCase(); params = ct.params; } else if (ct.value === '' && ct.params.length) params = ct.params;
  const offsets = { headerStart: start, bodyStart, bodyEnd: end };
  const common = { params, disposition: disposition(fields), language: language(fields), location: first(fields, 'content-location'), offsets };
  const boundary = type === 'multipart' ? param(params, 'boundary') : null;
  if (type === 'multipart' && boundary && depth < MAX_DEPTH) {
    const childDefault: [string, string] = subtype === 'digest' ? ['message', 'rfc822'] : ['text', 'plain'];
    const parts: BodyStructure[] = [];
    for (const [ps, pe] of splitMultipart(buf, boundary, bodyStart, end)) {
      if (st.parts >= MAX_PARTS) break;
      parts.push(parsePart(buf, ps, pe, childDefault, depth + 1, st, text));
    }
    if (parts.length === 0) {
      // A multipart without any boundary line: its whole body as one text part, as Dovecot does.
      parts.push(single(buf, [], bodyStart, bodyStart, end, ['text', 'plain'], depth + 1, st, text));
    }
    return { kind: 'multipart', type: 'multipart', subtype, parts, ...common };
  }
  if (type === 'multipart') { type = 'text'; subtype = 'plain'; } // no boundary: not parseable as multipart
  return single(buf, fields, start, bodyStart, end, [type, subtype], depth, st, text, params, common);
}

function single(buf: Buffer, fields: HeaderField[], start: number, bodyStart: number, end: number, [type, subtype]: [string, string], depth: number, st: ParseState, text: TextCollector | null,
  params: BodyParams = [], common?: Omit<SinglePart, 'kind' | 'id' | 'description' | 'encoding' | 'size' | 'md5' | 'lines' | 'message' | 'type' | 'subtype'>): SinglePart {
  const encoding = (first(fields, 'content-transfer-encoding') ?? '7BIT').replace(/\([^()]*\)/g, '').trim().toUpperCase() || '7BIT';
  const isMessage = type === 'message' && (subtype === 'rfc822' || subtype === 'global');
  const part: SinglePart = {
    kind: 'single', type, subtype,
    ...(common ?? { params, disposition: null, language: null, location: null, offsets: { headerStart: start, bodyStart, bodyEnd: end } }),
    id: first(fields, 'content-id'),
    description: first(fields, 'content-description'),
    encoding,
    size: end - bodyStart,
    md5: first(fields, 'content-md5'),
    lines: type === 'text' || isMessage ? countLines(buf, bodyStart, end) : null,
    message: null,
  };
  // An encoded message/rfc822 cannot be parsed in place; it stays a basic part (message null).
  if (isMessage && ['7BIT', '8BIT', 'BINARY'].includes(encoding) && depth < MAX_DEPTH) {
    const inner = splitHeader(buf, bodyStart, end);
    text?.addHeaders(inner.fields);
    part.message = {
      envelope: buildEnvelope(inner.fields),
      body: structureFor(buf, inner.fields, bodyStart, inner.bodyStart, end, ['text', 'plain'], depth + 1, st, text),
    };
  } else if (text && type === 'text' && (part.disposition?.type.toLowerCase() !== 'attachment')) {
    text.addBody(buf.subarray(bodyStart, end), encoding, param(part.params, 'charset'), subtype === 'html');
  }
  const filename = part.disposition ? param(part.disposition.params, 'filename') : null;
  if (text && (filename ?? param(part.params, 'name'))) text.addName(filename ?? param(part.params, 'name')!);
  return part;
}

// ---------------------------------------------------------------------------------------------------------------
// Text for FTS

export function decodeTransfer(body: Buffer, encoding: string): Buffer {
  if (encoding === 'BASE64') return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
  if (encoding === 'QUOTED-PRINTABLE') {
    const s = body.toString('latin1').replace(/=\r?\n/g, '');
    const out = Buffer.allocUnsafe(s.length);
    let o = 0;
    for (let i = 0; i < s.length; i++) {
      if (s[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) { out[o++] = parseInt(s.slice(i + 1, i + 3), 16); i += 2; } else out[o++] = s.charCodeAt(i);
    }
    return out.subarray(0, o);
  }
  return body;
}

export function decodeCharset(bytes: Buffer, charset: string | null): string {
  const cs = (charset ?? 'utf-8').trim().toLowerCase();
  try {
    return new TextDecoder(cs === 'utf8' ? 'utf-8' : cs).decode(bytes);
  } catch {
    return headerBytesToString(bytes); // unknown charset: UTF-8 if valid, else Latin-1
  }
}

function stripHtml(html: string): string {
  return html
    .replace(/<(script|style)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&nbsp;/gi, ' ').replace(/&lt;/gi, '<').replace(/&gt;/gi, '>').replace(/&quot;/gi, '"').replace(/&#39;/g, "'").replace(/&amp;/gi, '&')
    .replace(/&#(\d{1,7});/g, (_, d: string) => { const n = Number(d); return n <= 0x10ffff ? String.fromCodePoint(n) : ' '; });
}

export function decodeHeaderValue(value: string): string {
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
}

class TextCollector {
  body = '';
  headers = '';
  addHeaders(fields: HeaderField[]): void {
    for (const f of fields) {
      if (this.headers.length >= MAX_HEADER_TEXT_CHARS) return;
      this.headers += `${f.name}: ${decodeHeaderValue(f.value)}\n`;
    }
  }
  addBody(raw: Buffer, encoding: string, charset: string | null, html: boolean): void {
    if (this.body.length >= MAX_TEXT_CHARS) return;
    // Cap the decoding work too: a huge text part only contributes its beginning.
    const decoded = decodeCharset(decodeTransfer(raw.subarray(0, MAX_TEXT_CHARS * 4), encoding), charset);
    this.body += (html ? stripHtml(decoded) : decoded).slice(0, MAX_TEXT_CHARS - this.body.length) + '\n';
  }
  addName(name: string): void {
    if (this.body.length < MAX_TEXT_CHARS) this.body += decodeHeaderValue(name) + '\n';
  }
}

/** Parses a CRLF message (see toCrlf). */
export function parseMessage(buf: Buffer): ParsedMessage {
  const text = new TextCollector();
  const { fields, bodyStart } = splitHeader(buf, 0, buf.length);
  text.addHeaders(fields);
  const bodyStructure = structureFor(buf, fields, 0, bodyStart, buf.length, ['text', 'plain'], 0, { parts: 1 }, text);
  return {
    envelope: buildEnvelope(fields),
    bodyStructure,
    headerEnd: bodyStart,
    headerText: text.headers,
    bodyText: text.body,
    sentDay: sentDay(first(fields, 'date')),
  };
}

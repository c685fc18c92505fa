// Builds IMAP responses: atoms, numbers, strings written quoted when they can be and as literals when they
// must be (CR, LF, NUL-free 8-bit for clients that did not enable UTF-8, or long), lists, and the ENVELOPE and
// BODYSTRUCTURE forms of RFC 3501 7.4.2 / RFC 9051 7.5.2.
import type { BodyParams, BodyStructure, Envelope, EnvelopeAddress } from '../store/types.ts';
import { envelopeText, quotedOrNull } from '../store/imap-envelope.ts';

const MAX_QUOTED = 1024;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

export class ResponseBuilder {
  private parts: Buffer[] = [];
  private text = '';
  private needSpace = false;

  /** `utf8`: the client enabled IMAP4rev2 or UTF8=ACCEPT, so UTF-8 may go in quoted strings. */
  private readonly utf8: boolean;
  constructor(utf8 = false) {
    this.utf8 = utf8;
  }

  get utf8Enabled(): boolean {
    return this.utf8;
  }

  private sep(): void {
    if (this.needSpace) this.text += ' ';
    this.needSpace = true;
  }

  /** Raw text, written as is (atoms, response codes, numbers). */
  raw(s: string): this {
    this.sep();
    this.text += s;
    return this;
  }

  atom(s: string): this {
    return this.raw(s);
  }

  number(n: number): this {
    return this.raw(String(n));
  }

  nil(): this {
    return this.raw('NIL');
  }

  /** A string: quoted when safe, a literal otherwise. */
  string(s: string | Buffer): this {
    if (typeof s === 'string') {
      // The common case (short ASCII header values) never leaves JavaScript strings.
      const q = quotedOrNull(s, this.utf8);
      if (q !== null) {
        this.sep();
        this.text += q;
        return this;
      }
      return this.literal(Buffer.from(s, 'utf8'));
    }
    if (canQuote(s, this.utf8)) {
      this.sep();
      this.text += quote(s);
      return this;
    }
    return this.literal(s);
  }

  nstring(s: string | Buffer | null | undefined): this {
    return s === null || s === undefined ? this.nil() : this.string(s);
  }

  literal(buf: Buffer): this {
    this.sep();
    this.text += `{${buf.length}}\r\n`;
    this.flushText();
    this.parts.push(buf);
    return this;
  }

  /** literal8 (RFC 3516): for BINARY data that holds NUL bytes. */
  literal8(buf: Buffer): this {
    this.sep();
    this.text += `~{${buf.length}}\r\n`;
    this.flushText();
    this.parts.push(buf);
    return this;
  }

  open(): this {
    this.sep();
    this.text += '(';
    this.needSpace = false;
    return this;
  }

  close(): this {
    this.text += ')';
    this.needSpace = true;
    return this;
  }

  /** `(a b c)` of atoms. */
  atomList(items: readonly string[]): this {
    this.open();
    for (const i of items) this.atom(i);
    return this.close();
  }

  /** Text glued to what precedes it with no separator (e.g. "BODY[1]" then a literal). */
  glue(s: string): this {
    this.text += s;
    this.needSpace = true;
    return this;
  }

  private flushText(): void {
    if (this.text) this.parts.push(Buffer.from(this.text, 'utf8'));
    this.text = '';
  }

  /** The response with its CRLF as text, when it holds no literal (lets callers batch many into one Buffer). */
  finishText(): string | null {
    if (this.parts.length > 0) return null;
    const t = `${this.text}\r\n`;
    this.text = '';
    this.needSpace = false;
    return t;
  }

  /** The response with its CRLF. */
  finish(): Buffer {
    this.text += '\r\n';
    this.flushText();
    const out = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.parts = [];
    this.needSpace = false;
    return out;
  }
}

export function canQuote(buf: Buffer, utf8: boolean): boolean {
  if (buf.length > MAX_QUOTED) return false;
  let high = false;
  for (const b of buf) {
    if (b === 0 || b === 0x0a || b === 0x0d) return false;
    if (b >= 0x80) high = true;
  }
  if (!high) return true;
  if (!utf8) return false;
  try {
    UTF8.decode(buf);
    return true;
  } catch {
    return false;
  }
}

function quote(buf: Buffer): string {
  return `"${buf.toString('utf8').replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** A one-off quoted-or-literal string as text, for response codes and simple lines. Only for safe strings. */
export function quoted(s: string): string {
  return quote(Buffer.from(s, 'utf8'));
}

function addresses(w: ResponseBuilder, list: EnvelopeAddress[] | null): void {
  if (!list || list.length === 0) {
    w.nil();
    return;
  }
  w.open();
  for (const a of list) {
    w.open().nstring(a.name).nstring(a.adl).nstring(a.mailbox).nstring(a.host).close();
  }
  w.close();
}

export function writeEnvelope(w: ResponseBuilder, e: Envelope): void {
  const fast = envelopeText(e, w.utf8Enabled);
  if (fast !== null) {
    w.raw(fast);
    return;
  }
  w.open().nstring(e.date).nstring(e.subject);
  addresses(w, e.from);
  addresses(w, e.sender ?? e.from);
  addresses(w, e.replyTo ?? e.from);
  addresses(w, e.to);
  addresses(w, e.cc);
  addresses(w, e.bcc);
  w.nstring(e.inReplyTo).nstring(e.messageId).close();
}

function params(w: ResponseBuilder, p: BodyParams): void {
  if (p.length === 0) {
    w.nil();
    return;
  }
  w.open();
  for (const [k, v] of p) w.string(k).string(v);
  w.close();
}

function language(w: ResponseBuilder, l: string[] | null): void {
  if (!l || l.length === 0) w.nil();
  else if (l.length === 1) w.string(l[0]!);
  else {
    w.open();
    for (const x of l) w.string(x);
    w.close();
  }
}

/** BODYSTRUCTURE when `extended`, BODY otherwise. */
export function writeBodyStructure(w: ResponseBuilder, b: BodyStructure, extended: boolean): void {
  w.open();
  if (b.kind === 'multipart') {
    if (b.parts.length === 0) {
      // A multipart without parts is malformed; RFC grammar needs one part, so show an empty text part.
      w.open().string('text').string('plain').nil().nil().nil().string('7bit').number(0).number(0).close();
    }
    for (const p of b.parts) writeBodyStructure(w, p, extended);
    w.string(b.subtype);
    if (extended) {
      params(w, b.params);
      disposition(w, b);
      language(w, b.language);
      w.nstring(b.location);
    }
    w.close();
    return;
  }
  w.string(b.type).string(b.subtype);
  // RFC 2045 5.2: text without a charset is us-ascii; clients expect to be told (as RFC 3501's examples do).
  params(w, b.type === 'text' && !b.params.some(([k]) => k.toLowerCase() === 'charset') ? [['charset', 'us-ascii'], ...b.params] : b.params);
  w.nstring(b.id).nstring(b.description).string(b.encoding).number(b.size);
  if (b.message) {
    writeEnvelope(w, b.message.envelope);
    writeBodyStructure(w, b.message.body, extended);
    w.number(b.lines ?? 0);
  } else if (b.type === 'text') {
    w.number(b.lines ?? 0);
  }
  if (extended) {
    w.nstring(b.md5);
    disposition(w, b);
    language(w, b.language);
    w.nstring(b.location);
  }
  w.close();
}

function disposition(w: ResponseBuilder, b: BodyStructure): void {
  if (!b.disposition) {
    w.nil();
    return;
  }
  w.open().string(b.disposition.type);
  params(w, b.disposition.params);
  w.close();
}

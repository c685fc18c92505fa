// The IMAP ENVELOPE form (RFC 3501 7.4.2 / RFC 9051 7.5.2) as text, computed once at delivery and kept in the
// index (contents.envelope_imap), so FETCH ENVELOPE copies cached text instead of parsing JSON and rebuilding
// it per message. The cached form is the one every client accepts: ASCII in quoted strings, and literals (whose
// byte counts are part of the text) for values that cannot be quoted, such as raw 8-bit headers. Clients that
// enabled UTF-8 get those values as UTF-8 quoted strings instead, built per FETCH from the JSON envelope.
import type { Envelope, EnvelopeAddress } from './types.ts';

const MAX_QUOTED = 1024;
const ASCII_QUOTABLE = /^[\x01-\x09\x0b\x0c\x0e-\x7f]*$/;
const UTF8_QUOTABLE = /^[^\x00\r\n]*$/;
const NEEDS_ESCAPE = /["\\]/;
const ESCAPES = /["\\]/g;

/** A quoted string, or null when the value needs a literal (`utf8`: the client accepts UTF-8 in quoted strings). */
export function quotedOrNull(v: string, utf8: boolean): string | null {
  if (v.length > MAX_QUOTED) return null;
  if (!ASCII_QUOTABLE.test(v) && !(utf8 && UTF8_QUOTABLE.test(v) && v.isWellFormed() && Buffer.byteLength(v) <= MAX_QUOTED)) return null;
  return NEEDS_ESCAPE.test(v) ? `"${v.replace(ESCAPES, '\\$&')}"` : `"${v}"`;
}

/** NIL or a quoted string; null when the value needs a literal (no exceptions: this runs per message). */
function nq(v: string | null, utf8: boolean): string | null {
  return v === null ? 'NIL' : quotedOrNull(v, utf8);
}

function addressText(list: EnvelopeAddress[] | null, utf8: boolean): string | null {
  if (!list || list.length === 0) return 'NIL';
  let out = '(';
  for (const a of list) {
    const name = nq(a.name, utf8);
    const adl = nq(a.adl, utf8);
    const mailbox = nq(a.mailbox, utf8);
    const host = nq(a.host, utf8);
    if (name === null || adl === null || mailbox === null || host === null) return null;
    out += `(${name} ${adl} ${mailbox} ${host})`;
  }
  return `${out})`;
}

/** ENVELOPE as one string when every field fits in a quoted string (nearly always); null otherwise. */
export function envelopeText(e: Envelope, utf8: boolean): string | null {
  const fields = [
    nq(e.date, utf8), nq(e.subject, utf8), addressText(e.from, utf8), addressText(e.sender ?? e.from, utf8),
    addressText(e.replyTo ?? e.from, utf8), addressText(e.to, utf8), addressText(e.cc, utf8), addressText(e.bcc, utf8),
    nq(e.inReplyTo, utf8), nq(e.messageId, utf8),
  ];
  for (const f of fields) if (f === null) return null;
  return `(${fields.join(' ')})`;
}

/** A string as IMAP text: quoted when it can be for any client, a literal (its byte count included) otherwise. */
function wire(v: string | null): string {
  if (v === null) return 'NIL';
  return quotedOrNull(v, false) ?? `{${Buffer.byteLength(v, 'utf8')}}\r\n${v}`;
}

function addressWire(list: EnvelopeAddress[] | null): string {
  if (!list || list.length === 0) return 'NIL';
  let out = '(';
  for (const a of list) out += `(${wire(a.name)} ${wire(a.adl)} ${wire(a.mailbox)} ${wire(a.host)})`;
  return `${out})`;
}

/** ENVELOPE for any client: envelopeText() when it needs no literal, else the same with literals where needed. */
export function envelopeWireText(e: Envelope): string {
  const quoted = envelopeText(e, false);
  if (quoted !== null) return quoted;
  return `(${wire(e.date)} ${wire(e.subject)} ${addressWire(e.from)} ${addressWire(e.sender ?? e.from)} ${addressWire(e.replyTo ?? e.from)}`
    + ` ${addressWire(e.to)} ${addressWire(e.cc)} ${addressWire(e.bcc)} ${wire(e.inReplyTo)} ${wire(e.messageId)})`;
}

/** Does cached envelope text hold a literal? (A quoted string never holds CR or LF.) */
export function hasLiteral(text: string): boolean {
  return text.includes('}\r\n');
}

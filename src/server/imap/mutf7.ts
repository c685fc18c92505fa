// Modified UTF-7 (RFC 3501 5.1.3): how IMAP4rev1 clients spell non-ASCII mailbox names. Sessions that enabled
// IMAP4rev2 or UTF8=ACCEPT use UTF-8 instead.
import { ImapSyntaxError } from './tokens.ts';

function b64encode(units: number[]): string {
  const bytes = Buffer.alloc(units.length * 2);
  units.forEach((u, i) => bytes.writeUInt16BE(u, i * 2));
  return bytes.toString('base64').replace(/=+$/, '').replace(/\//g, ',');
}

export function encodeMutf7(name: string): string {
  let out = '';
  let pending: number[] = [];
  const flush = (): void => {
    if (pending.length) out += `&${b64encode(pending)}-`;
    pending = [];
  };
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e) {
      flush();
      out += c === 0x26 ? '&-' : name[i];
    } else {
      pending.push(c);
    }
  }
  flush();
  return out;
}

export function decodeMutf7(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    const c = ch.charCodeAt(0);
    if (c < 0x20 || c > 0x7e) throw new ImapSyntaxError('Mailbox name is not valid modified UTF-7 (8-bit byte)');
    if (ch !== '&') {
      out += ch;
      continue;
    }
    const end = text.indexOf('-', i + 1);
    if (end < 0) throw new ImapSyntaxError('Mailbox name is not valid modified UTF-7 (unterminated "&")');
    const b64 = text.slice(i + 1, end);
    i = end;
    if (b64 === '') {
      out += '&';
      continue;
    }
    if (!/^[A-Za-z0-9+,]+$/.test(b64)) throw new ImapSyntaxError('Mailbox name is not valid modified UTF-7');
    const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
    if (bytes.length % 2 !== 0) throw new ImapSyntaxError('Mailbox name is not valid modified UTF-7 (odd length)');
    let s = '';
    for (let j = 0; j < bytes.length; j += 2) s += String.fromCharCode(bytes.readUInt16BE(j));
    if (!s.isWellFormed()) throw new ImapSyntaxError('Mailbox name is not valid modified UTF-7 (bad surrogates)');
    out += s;
  }
  return out;
}

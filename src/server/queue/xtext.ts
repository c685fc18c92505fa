// xtext (RFC 3461 section 4): how ENVID and ORCPT travel on the SMTP command line. Any byte may be written as
// `+XX` (upper-case hex); `+`, `=`, controls, spaces and non-ASCII must be.

/** Whether `text` is well-formed xtext: printable ASCII except `+` and `=`, and `+` only as `+XX`. */
export function isXtext(text: string): boolean {
  return /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*$/.test(text);
}

/** Decodes well-formed xtext; each `+XX` becomes the character of that code (Latin-1). */
export function decodeXtext(text: string): string {
  return text.replace(/\+([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** Encodes a string of character codes up to 0xff as xtext (the inverse of decodeXtext). */
export function encodeXtext(text: string): string {
  return text.replace(/[^\x21-\x2a\x2c-\x3c\x3e-\x7e]/g, (c) => `+${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** ORCPT's value (RFC 3461 4.2): `addr-type;xtext`, the type an atom. */
export function isOrcpt(value: string): boolean {
  const semi = value.indexOf(';');
  return semi > 0 && /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$/.test(value.slice(0, semi)) && semi < value.length - 1 && isXtext(value.slice(semi + 1));
}

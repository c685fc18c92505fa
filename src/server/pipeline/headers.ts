// Reading the header section of a raw message (bounded) and writing the headers Postern adds.
import addressparser from 'nodemailer/lib/addressparser';

/** Header sections larger than this are treated as malformed (no real mail needs more). */
export const MAX_HEADER_BYTES = 256 * 1024;

export interface HeaderField { name: string; value: string }

/** The header section (without the blank line), or null when there is none within MAX_HEADER_BYTES. */
export function headerSection(message: Buffer): string | null {
  const end = message.indexOf('\r\n\r\n');
  if (end === -1) return message.length <= MAX_HEADER_BYTES ? message.toString('utf8') : null;
  if (end > MAX_HEADER_BYTES) return null;
  return message.subarray(0, end).toString('utf8');
}

export function headerFields(section: string): HeaderField[] {
  const out: HeaderField[] = [];
  for (const line of section.split('\r\n')) {
    if (/^[ \t]/.test(line) && out.length) { out[out.length - 1]!.value += ` ${line.trim()}`; continue; }
    const colon = line.indexOf(':');
    if (colon > 0) out.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() });
  }
  return out;
}

export function firstHeader(fields: HeaderField[], name: string): string | undefined {
  return fields.find((f) => f.name === name)?.value;
}

/** Addresses in the From header(s), lower-cased domain; empty when there is no parseable From. */
export function fromAddresses(fields: HeaderField[]): string[] {
  const out: string[] = [];
  for (const f of fields) {
    if (f.name !== 'from') continue;
    for (const a of addressparser(f.value, { flatten: true })) {
      const at = a.address.lastIndexOf('@');
      if (at > 0) out.push(`${a.address.slice(0, at)}@${a.address.slice(at + 1).toLowerCase()}`);
    }
  }
  return out;
}

/** The Message-ID without angle brackets, or undefined. */
export function messageIdOf(fields: HeaderField[]): string | undefined {
  const v = firstHeader(fields, 'message-id');
  const m = v?.match(/<([^<>\s]{1,900})>/);
  return m?.[1] ?? (v && v.length < 900 && !/\s/.test(v) ? v : undefined);
}

/** Header text safe to put on one header line: no CR/LF (network data must not add lines), bounded. */
export function headerSafe(s: string, max = 200): string {
  const clean = s.replace(/[\x00-\x1f\x7f()]/g, ' ').trim();
  return clean.length > max ? clean.slice(0, max) : clean;
}

export interface ReceivedInfo {
  helo: string;
  /** Reverse DNS name, if looked up. */
  hostname?: string;
  ip: string;
  by: string;
  /** ESMTP, ESMTPS, ESMTPSA… */
  protocol: string;
  id: string;
  /** Named when there is exactly one recipient (RFC 5321 4.4; more would leak Bcc lists). */
  recipient?: string;
  tls?: string;
  date: Date;
}

export function receivedHeader(r: ReceivedInfo): string {
  const from = `from ${headerSafe(r.helo) || 'unknown'} (${r.hostname ? `${headerSafe(r.hostname)} ` : ''}[${headerSafe(r.ip, 64)}])`;
  const parts = [`Received: ${from}`, `\tby ${r.by} (Postern) with ${r.protocol} id ${r.id}${r.tls ? ` (${headerSafe(r.tls)})` : ''}`];
  if (r.recipient) parts.push(`\tfor <${headerSafe(r.recipient, 320)}>`);
  parts[parts.length - 1] += `; ${r.date.toUTCString().replace('GMT', '+0000')}`;
  return `${parts.join('\r\n')}\r\n`;
}

/**
 * Removes Authentication-Results fields that claim our own authserv-id (RFC 8601 section 5): only Postern may
 * speak for this host, and a forged `dkim=pass` would otherwise look trustworthy to the user's client. Works on
 * raw bytes (latin1 is lossless) so the rest of the message is untouched. Returns the count removed.
 */
export function withoutForgedAuthResults(message: Buffer, authservId: string): { message: Buffer; removed: number } {
  const end = message.indexOf('\r\n\r\n');
  const headEnd = end === -1 ? message.length : end + 2;
  if (headEnd > MAX_HEADER_BYTES) return { message, removed: 0 };
  const head = message.toString('latin1', 0, headEnd);
  const id = authservId.toLowerCase();
  const kept: string[] = [];
  let removed = 0;
  let dropping = false;
  for (const line of head.split(/(?<=\r\n)/)) {
    if (/^[ \t]/.test(line)) { if (!dropping) kept.push(line); continue; }
    const m = /^authentication-results[ \t]*:[ \t]*(?:\([^)]*\)[ \t]*)*([^;\s(]+)/i.exec(line);
    dropping = m !== null && m[1]!.toLowerCase() === id;
    if (dropping) removed++;
    else kept.push(line);
  }
  if (removed === 0) return { message, removed };
  return { message: Buffer.concat([Buffer.from(kept.join(''), 'latin1'), message.subarray(headEnd)]), removed };
}

// IMAP date-time (RFC 9051 9: "dd-Mon-yyyy hh:mm:ss +zzzz") in and out; INTERNALDATE keeps its zone.
import { ImapSyntaxError } from './tokens.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export function parseDateTime(s: string): { date: Date; zone: number } {
  const m = /^([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(s);
  if (!m) throw new ImapSyntaxError('Invalid date-time (expected "dd-Mon-yyyy hh:mm:ss +zzzz")');
  const month = MONTHS.findIndex((x) => x.toLowerCase() === m[2]!.toLowerCase());
  const day = Number(m[1]!.trim());
  const [h, min, sec, zh, zm] = [m[4], m[5], m[6], m[8], m[9]].map(Number) as [number, number, number, number, number];
  if (month < 0 || day < 1 || day > 31 || h > 23 || min > 59 || sec > 60 || zm > 59) throw new ImapSyntaxError('Invalid date-time');
  const zone = (m[7] === '-' ? -1 : 1) * (zh * 60 + zm);
  const utc = Date.UTC(Number(m[3]), month, day, h, min, sec) - zone * 60000;
  const date = new Date(utc);
  if (Number.isNaN(date.getTime())) throw new ImapSyntaxError('Invalid date-time');
  return { date, zone };
}

export function formatDateTime(ms: number, zone: number): string {
  const d = new Date(ms + zone * 60000);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const sign = zone < 0 ? '-' : '+';
  const az = Math.abs(zone);
  return `${p2(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} ${sign}${p2(Math.floor(az / 60))}${p2(az % 60)}`;
}

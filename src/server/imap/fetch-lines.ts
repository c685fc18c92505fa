// The FETCH responses of the usual client sync (UID, FLAGS, MODSEQ, RFC822.SIZE, INTERNALDATE, ENVELOPE), written
// byte by byte into the output chunk: numbers as digits, fixed words and shared flag lists from bytes encoded
// once, the cached ENVELOPE text with one encode. A 50,000-message FETCH then builds no string per message,
// which is most of what its garbage collection was spent on.
import type { FetchedMessage } from '../store/types.ts';
import { hasLiteral } from '../store/imap-envelope.ts';
import { formatDateTime } from './datetime.ts';
import type { FetchItem } from './fetch-items.ts';

export const LINE_ITEMS: ReadonlySet<FetchItem['kind']> = new Set(['uid', 'flags', 'modseq', 'rfc822.size', 'internaldate', 'envelope']);

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const STAR = ascii('* ');
const FETCH_OPEN = ascii(' FETCH (');
const UID = ascii('UID ');
const FLAGS_OPEN = ascii('FLAGS (');
const RECENT = ascii('\\Recent');
const MODSEQ_OPEN = ascii('MODSEQ (');
const SIZE = ascii('RFC822.SIZE ');
const INTERNALDATE = ascii('INTERNALDATE "');
const ENVELOPE = ascii('ENVELOPE ');
const CLOSE_LINE = ascii(')\r\n');
const SPACE = 0x20;
const CLOSE = 0x29;
const QUOTE = 0x22;
/** Bytes of a line besides its flags and envelope: the fixed words and numbers of every item, generously. */
const FIXED_BOUND = 64;
const ITEM_BOUND = 48;

/** Flag lists the store shares between messages (frozen), encoded once each. */
const sharedFlags = new WeakMap<readonly string[], Buffer>();

function flagBytes(flags: readonly string[]): Buffer {
  let b = sharedFlags.get(flags);
  if (b) return b;
  b = Buffer.from(flags.join(' '), 'utf8');
  if (Object.isFrozen(flags)) sharedFlags.set(flags, b);
  return b;
}

/** Does this message's line fit this path? Not for a UTF-8 client when its envelope holds a literal. */
export function lineFits(items: readonly FetchItem[], m: FetchedMessage, utf8: boolean): boolean {
  for (const item of items) {
    if (item.kind === 'envelope' && (m.envelopeImap === undefined || (utf8 && hasLiteral(m.envelopeImap)))) return false;
  }
  return true;
}

/** The most bytes writeLine() can write for this message. */
export function lineBound(items: readonly FetchItem[], m: FetchedMessage): number {
  let n = FIXED_BOUND;
  for (const item of items) {
    n += ITEM_BOUND;
    if (item.kind === 'flags') n += flagBytes(m.flags).length + RECENT.length;
    else if (item.kind === 'envelope') n += m.envelopeImap!.length * 3; // a UTF-16 unit is at most 3 bytes of UTF-8
  }
  return n;
}

function putInt(b: Buffer, pos: number, n: number): number {
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  for (let i = pos + digits - 1; i >= pos; i--) {
    b[i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return pos + digits;
}

function put(b: Buffer, pos: number, bytes: Buffer): number {
  b.set(bytes, pos);
  return pos + bytes.length;
}

/** Writes `* seq FETCH (...)\r\n` at pos (lineBound() bytes must be free there); returns the position after it. */
export function writeLine(b: Buffer, pos: number, items: readonly FetchItem[], m: FetchedMessage, seq: number, recent: boolean): number {
  pos = put(b, pos, STAR);
  pos = putInt(b, pos, seq);
  pos = put(b, pos, FETCH_OPEN);
  for (let k = 0; k < items.length; k++) {
    if (k > 0) b[pos++] = SPACE;
    switch (items[k]!.kind) {
      case 'uid':
        pos = putInt(b, put(b, pos, UID), m.uid);
        break;
      case 'flags': {
        pos = put(b, put(b, pos, FLAGS_OPEN), flagBytes(m.flags));
        if (recent) {
          if (m.flags.length > 0) b[pos++] = SPACE;
          pos = put(b, pos, RECENT);
        }
        b[pos++] = CLOSE;
        break;
      }
      case 'modseq':
        pos = putInt(b, put(b, pos, MODSEQ_OPEN), m.modseq);
        b[pos++] = CLOSE;
        break;
      case 'rfc822.size':
        pos = putInt(b, put(b, pos, SIZE), m.size);
        break;
      case 'internaldate':
        pos = put(b, pos, INTERNALDATE);
        pos += b.write(formatDateTime(m.internalDate, m.internalDateZone), pos, 'latin1');
        b[pos++] = QUOTE;
        break;
      case 'envelope':
        pos = put(b, pos, ENVELOPE);
        pos += b.write(m.envelopeImap!, pos, 'utf8');
        break;
      default:
        throw new Error(`FETCH item ${items[k]!.kind} is not a line item`);
    }
  }
  return put(b, pos, CLOSE_LINE);
}

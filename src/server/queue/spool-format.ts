// The spool entry file `<id>.msg`: a versioned preamble holding the entry as accepted, then the message bytes.
//   POSTERN-SPOOL 1 <n>\n      magic, format version, byte length of the JSON that follows
//   <n bytes of JSON>\n        the StoredEntry at accept (may end in spaces: room reserved while streaming)
//   <message bytes>            exactly `size` of them, as received
// One file per entry means one file fsync per accept. Later state changes go to a side file (`<id>.json`).
import { fstatSync, read, readSync } from 'node:fs';
import { SYNC_IO_MAX } from './durable.ts';
import type { StoredEntry } from './spool.ts';

const MAGIC = 'POSTERN-SPOOL 1 ';
/** Longest header line: magic, 7 digits, newline. */
const HEADER_MAX = MAGIC.length + 8;
/** Bound on the preamble JSON (1000 recipients with long addresses fit many times over). */
export const PREAMBLE_JSON_MAX = 4 * 1024 * 1024;
/** First read of an entry file: the preamble of almost every entry, and the start of the message. */
const FIRST_READ = 16 * 1024;

/** A file that is not a well-formed entry file (torn, truncated, or not ours). */
export class CorruptEntryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorruptEntryError';
  }
}

function header(jsonBytes: number): Buffer {
  return Buffer.from(`${MAGIC}${jsonBytes}\n`, 'latin1');
}

/** The preamble for `entry`; with `reserved`, its JSON padded with spaces to exactly that many bytes. */
export function encodePreamble(entry: StoredEntry, reserved?: number): Buffer {
  const json = Buffer.from(JSON.stringify(entry));
  const n = reserved ?? json.length;
  if (json.length > n) throw new Error(`spool preamble of ${json.length} bytes exceeds the ${n} reserved`);
  if (n > PREAMBLE_JSON_MAX) throw new Error(`spool preamble of ${n} bytes exceeds ${PREAMBLE_JSON_MAX}`);
  const h = header(n);
  const out = Buffer.alloc(h.length + n + 1, 0x20);
  h.copy(out, 0);
  json.copy(out, h.length);
  out[out.length - 1] = 0x0a;
  return out;
}

/**
 * JSON bytes to reserve before streaming a message whose size and Message-ID are not known yet: the entry with
 * the longest size and the longest escaped Message-ID (250 control characters, 6 bytes each) findMessageId gives.
 */
export function reservePreamble(entry: StoredEntry): number {
  return Buffer.byteLength(JSON.stringify({ ...entry, size: Number.MAX_SAFE_INTEGER, messageId: '\u0001'.repeat(250) }));
}

/** Where the message starts in a file whose preamble JSON is `reserved` bytes. */
export function messageOffset(reserved: number): number {
  return header(reserved).length + reserved + 1;
}

export interface EntryFile {
  entry: StoredEntry;
  /** Byte offset of the message in the file. */
  offset: number;
  /** The first bytes of the message, as read with the preamble (at most FIRST_READ minus the preamble). */
  start: Buffer;
}

function readFully(fd: number, buf: Buffer, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * Reads and checks the preamble of an open entry file (synchronously: a few KiB from the page cache). Throws
 * CorruptEntryError when it is not well formed or the message length disagrees with the recorded size.
 */
export function readPreamble(fd: number, expectId?: string): EntryFile {
  const fileSize = fstatSync(fd).size;
  const first = Buffer.allocUnsafe(Math.min(FIRST_READ, fileSize));
  const got = readFully(fd, first, 0);
  const nl = first.subarray(0, Math.min(got, HEADER_MAX)).indexOf(0x0a);
  const line = nl > 0 ? first.toString('latin1', 0, nl) : '';
  const m = /^POSTERN-SPOOL (\d+) (\d{1,7})$/.exec(line);
  if (!m) throw new CorruptEntryError('no spool preamble at the start of the file');
  if (m[1] !== '1') throw new CorruptEntryError(`unknown spool format version ${m[1]}`);
  const n = Number(m[2]);
  if (n > PREAMBLE_JSON_MAX) throw new CorruptEntryError(`preamble length ${n} exceeds ${PREAMBLE_JSON_MAX}`);
  const offset = nl + 1 + n + 1;
  if (offset > fileSize) throw new CorruptEntryError(`file of ${fileSize} bytes ends inside its ${n}-byte preamble`);
  let pre: Buffer;
  if (offset <= got) {
    pre = first.subarray(0, offset);
  } else {
    pre = Buffer.allocUnsafe(offset);
    first.copy(pre, 0, 0, got);
    if (readFully(fd, pre.subarray(got), got) < offset - got) throw new CorruptEntryError('file shorter than its preamble');
  }
  if (pre[offset - 1] !== 0x0a) throw new CorruptEntryError('preamble not terminated by a newline');
  let entry: StoredEntry;
  try {
    entry = JSON.parse(pre.toString('utf8', nl + 1, offset - 1)) as StoredEntry;
  } catch (err) {
    throw new CorruptEntryError(`preamble is not JSON: ${(err as Error).message}`);
  }
  if (typeof entry !== 'object' || entry === null || typeof entry.id !== 'string' || !Array.isArray(entry.recipients)
    || typeof entry.size !== 'number' || typeof entry.envelope !== 'object' || entry.envelope === null) {
    throw new CorruptEntryError('preamble is not a spool entry');
  }
  if (expectId !== undefined && entry.id !== expectId) throw new CorruptEntryError(`preamble names entry ${JSON.stringify(entry.id.slice(0, 40))}`);
  if (fileSize - offset !== entry.size) throw new CorruptEntryError(`message is ${fileSize - offset} bytes, the preamble says ${entry.size}`);
  return { entry, offset, start: offset < got ? first.subarray(offset, got) : Buffer.alloc(0) };
}

function readAsync(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/**
 * The message of an open entry file whose preamble has been read: synchronously up to SYNC_IO_MAX, on the thread
 * pool beyond (a large memcpy would stall every session).
 */
export async function readMessage(fd: number, file: EntryFile): Promise<Buffer> {
  const size = file.entry.size;
  if (file.start.length >= size) return Buffer.from(file.start.subarray(0, size));
  const out = Buffer.allocUnsafe(size);
  file.start.copy(out, 0);
  let done = file.start.length;
  if (size <= SYNC_IO_MAX) {
    done += readFully(fd, out.subarray(done), file.offset + done);
  } else {
    while (done < size) {
      const n = await readAsync(fd, out, done, size - done, file.offset + done);
      if (n === 0) break;
      done += n;
    }
  }
  if (done < size) throw new CorruptEntryError(`message truncated at ${done} of ${size} bytes`);
  return out;
}

/** Up to `max` bytes from the start of the message (its header block). */
export function readMessageHead(fd: number, file: EntryFile, max: number): Buffer {
  const want = Math.min(max, file.entry.size);
  if (file.start.length >= want) return Buffer.from(file.start.subarray(0, want));
  const out = Buffer.allocUnsafe(want);
  file.start.copy(out, 0);
  const n = file.start.length + readFully(fd, out.subarray(file.start.length), file.offset + file.start.length);
  return out.subarray(0, n);
}

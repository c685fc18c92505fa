// Gzip and zip unpacking with hard output caps. zlib's maxOutputLength stops inflation once the cap is reached,
// so a bomb costs at most the cap in memory whatever its headers claim. Zip is read from its central directory
// (stored and deflated entries only: the two methods report senders use).
import { gunzipSync, inflateRawSync } from 'node:zlib';
import { ReportRefused, type ReportLimits } from './limits.ts';

function capped<T>(what: string, max: number, run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (err instanceof RangeError || (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new ReportRefused(`${what} decompresses to more than ${max} bytes (compression bomb?)`);
    }
    throw new ReportRefused(`${what} is not valid compressed data: ${(err as Error).message}`);
  }
}

export function gunzipCapped(data: Buffer, limits: ReportLimits): Buffer {
  if (data.length > limits.maxCompressedBytes) throw new ReportRefused(`gzip attachment larger than ${limits.maxCompressedBytes} bytes`);
  return capped('gzip attachment', limits.maxDecompressedBytes, () => gunzipSync(data, { maxOutputLength: limits.maxDecompressedBytes }));
}

export interface ZipEntry {
  name: string;
  data: Buffer;
}

const EOCD_SIG = 0x06054b50;
const CDIR_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

/** Entries whose name passes `wanted`, decompressed; total output capped at maxDecompressedBytes. */
export function unzipCapped(data: Buffer, limits: ReportLimits, wanted: (name: string) => boolean): ZipEntry[] {
  if (data.length > limits.maxCompressedBytes) throw new ReportRefused(`zip attachment larger than ${limits.maxCompressedBytes} bytes`);
  // End of central directory: 22 bytes plus a comment of up to 65535 bytes, at the very end.
  let eocd = -1;
  for (let i = data.length - 22; i >= Math.max(0, data.length - 22 - 65535); i--) {
    if (data.readUInt32LE(i) === EOCD_SIG) { eocd = i; break; }
  }
  if (eocd < 0) throw new ReportRefused('zip attachment has no end-of-central-directory record');
  const count = data.readUInt16LE(eocd + 10);
  const cdSize = data.readUInt32LE(eocd + 12);
  const cdOffset = data.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) throw new ReportRefused('zip64 attachments are not accepted');
  if (count > limits.maxZipEntries) throw new ReportRefused(`zip attachment has ${count} entries (at most ${limits.maxZipEntries} accepted)`);
  if (cdOffset + cdSize > eocd) throw new ReportRefused('zip central directory points outside the file');
  const out: ZipEntry[] = [];
  let budget = limits.maxDecompressedBytes;
  let p = cdOffset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > eocd || data.readUInt32LE(p) !== CDIR_SIG) throw new ReportRefused('zip central directory is corrupt');
    const flags = data.readUInt16LE(p + 8);
    const method = data.readUInt16LE(p + 10);
    const compSize = data.readUInt32LE(p + 20);
    const nameLen = data.readUInt16LE(p + 28);
    const extraLen = data.readUInt16LE(p + 30);
    const commentLen = data.readUInt16LE(p + 32);
    const localOffset = data.readUInt32LE(p + 42);
    const name = data.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    p += 46 + nameLen + extraLen + commentLen;
    if (name.endsWith('/') || !wanted(name)) continue;
    if (flags & 1) throw new ReportRefused(`zip entry ${JSON.stringify(name)} is encrypted`);
    if (localOffset + 30 > data.length || data.readUInt32LE(localOffset) !== LOCAL_SIG) throw new ReportRefused('zip local header is corrupt');
    const start = localOffset + 30 + data.readUInt16LE(localOffset + 26) + data.readUInt16LE(localOffset + 28);
    if (start + compSize > data.length) throw new ReportRefused(`zip entry ${JSON.stringify(name)} runs past the end of the file`);
    const raw = data.subarray(start, start + compSize);
    let content: Buffer;
    if (method === 0) {
      if (raw.length > budget) throw new ReportRefused(`zip attachment decompresses to more than ${limits.maxDecompressedBytes} bytes`);
      content = Buffer.from(raw);
    } else if (method === 8) {
      const cap = budget;
      content = capped('zip attachment', limits.maxDecompressedBytes, () => inflateRawSync(raw, { maxOutputLength: Math.max(1, cap) }));
    } else {
      throw new ReportRefused(`zip entry ${JSON.stringify(name)} uses compression method ${method} (only stored and deflate are accepted)`);
    }
    budget -= content.length;
    if (budget <= 0) throw new ReportRefused(`zip attachment decompresses to more than ${limits.maxDecompressedBytes} bytes`);
    out.push({ name, data: content });
  }
  return out;
}

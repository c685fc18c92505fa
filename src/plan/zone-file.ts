// RFC 1035 master-file text for a record set: absolute names, one record per line, TXT split into
// ≤255-byte character-strings.
import { txtChunks, type DnsRecord } from './dns-records.ts';

export interface ZoneFileOptions {
  origin: string;
  /** SOA and NS are the DNS host's (Cloudflare serves its own); given here so the text loads as a whole zone. */
  soa?: { primary: string; contact: string; serial: number; refresh?: number; retry?: number; expire?: number; minimum?: number };
  nameServers?: string[];
  /** Comment lines printed first (without the leading `;`). */
  header?: string[];
  defaultTtl?: number;
  /** A comment for a record's line (e.g. "unknown until deploy"). */
  annotate?: (record: DnsRecord) => string | undefined;
  /** Comment lines printed last (without the leading `;`). */
  trailer?: string[];
}

const abs = (name: string): string => (name === '.' ? '.' : `${name}.`);

/** A character-string in master-file syntax: quoted; `"` and `\` escaped; bytes outside printable ASCII as \DDD. */
export function quoteCharacterString(text: string): string {
  let out = '"';
  for (const byte of Buffer.from(text, 'utf8')) {
    if (byte === 0x22 || byte === 0x5c) out += `\\${String.fromCharCode(byte)}`;
    else if (byte < 0x20 || byte > 0x7e) out += `\\${String(byte).padStart(3, '0')}`;
    else out += String.fromCharCode(byte);
  }
  return `${out}"`;
}

export function recordData(r: DnsRecord): string {
  switch (r.type) {
    case 'A': case 'AAAA': return r.value;
    case 'CNAME': return abs(r.value);
    case 'MX': return `${r.priority} ${abs(r.value)}`;
    case 'TXT': return txtChunks(r.value).map(quoteCharacterString).join(' ');
    case 'SRV': return `${r.priority} ${r.weight} ${r.port} ${abs(r.target)}`;
    case 'CAA': return `${r.flags} ${r.tag} ${quoteCharacterString(r.value)}`;
  }
}

export function renderZoneFile(records: readonly DnsRecord[], options: ZoneFileOptions): string {
  const lines: string[] = (options.header ?? []).map((h) => `; ${h}`.trimEnd());
  lines.push(`$ORIGIN ${abs(options.origin)}`);
  lines.push(`$TTL ${options.defaultTtl ?? 3600}`);
  if (options.soa) {
    const s = options.soa;
    lines.push(`${abs(options.origin)} IN SOA ${abs(s.primary)} ${abs(s.contact)} ${s.serial} ${s.refresh ?? 10000} ${s.retry ?? 2400} ${s.expire ?? 604800} ${s.minimum ?? 300}`);
  }
  for (const ns of options.nameServers ?? []) lines.push(`${abs(options.origin)} IN NS ${abs(ns)}`);
  const width = Math.max(0, ...records.map((r) => abs(r.name).length));
  for (const r of records) {
    const note = options.annotate?.(r);
    lines.push(`${abs(r.name).padEnd(width)} ${r.ttl} IN ${r.type.padEnd(5)} ${recordData(r)}${note ? ` ; ${note}` : ''}`);
  }
  for (const t of options.trailer ?? []) lines.push(`; ${t}`.trimEnd());
  return `${lines.join('\n')}\n`;
}

// The DNS record model shared by the plan, the zone file, the diff and the Pulumi program. Names are FQDNs in
// lower case without the trailing dot; target names likewise ("." alone means "no service", RFC 2782).

export type DnsRecord =
  | { name: string; type: 'A' | 'AAAA' | 'CNAME'; ttl: number; value: string }
  | { name: string; type: 'MX'; ttl: number; priority: number; value: string }
  /** `value` is the whole text; the zone file and providers split it with txtChunks(). */
  | { name: string; type: 'TXT'; ttl: number; value: string }
  | { name: string; type: 'SRV'; ttl: number; priority: number; weight: number; port: number; target: string }
  | { name: string; type: 'CAA'; ttl: number; flags: number; tag: 'issue' | 'issuewild' | 'iodef'; value: string };

export type DnsRecordType = DnsRecord['type'];

/** A record as found in live DNS: the TTL is unknown for some answers. */
export type ObservedRecord = DnsRecord extends infer R ? R extends DnsRecord ? Omit<R, 'ttl'> & { ttl?: number } : never : never;

/** Splits a TXT value into character-strings of at most 255 bytes (UTF-8), never inside a character. */
export function txtChunks(value: string): string[] {
  const chunks: string[] = [];
  let current = '';
  let bytes = 0;
  for (const ch of value) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > 255) { chunks.push(current); current = ''; bytes = 0; }
    current += ch;
    bytes += n;
  }
  chunks.push(current);
  return chunks;
}

/** The record's data as one canonical string (no TTL): equal data ⇔ same record. */
export function rdataKey(r: ObservedRecord | DnsRecord): string {
  switch (r.type) {
    case 'A': case 'AAAA': case 'CNAME': return r.value;
    case 'MX': return `${r.priority} ${r.value}`;
    case 'TXT': return r.value;
    case 'SRV': return `${r.priority} ${r.weight} ${r.port} ${r.target}`;
    case 'CAA': return `${r.flags} ${r.tag} ${r.value}`;
  }
}

/** Human-readable form for diffs: `name TYPE data`. */
export function describeRecord(r: ObservedRecord | DnsRecord): string {
  const data = r.type === 'TXT' ? JSON.stringify(r.value) : r.type === 'CAA' ? `${r.flags} ${r.tag} ${JSON.stringify(r.value)}` : rdataKey(r);
  return `${r.name} ${r.ttl !== undefined ? `${r.ttl} ` : ''}${r.type} ${data}`;
}

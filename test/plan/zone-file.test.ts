// Zone file text: BIND's named-checkzone loads it and, dumping it back, yields exactly the TXT values we wrote
// (quotes, backslashes, control bytes and UTF-8 included), split into ≤255-byte strings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { renderZoneFile, quoteCharacterString } from '../../src/plan/zone-file.ts';
import type { DnsRecord } from '../../src/plan/dns-records.ts';
import { ensureDebianPackages } from '../support/debian.ts';

ensureDebianPackages(['bind9-utils']);

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'postern-zone-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

/** Decodes the character-strings of a TXT rdata in master-file syntax back to bytes. */
function decodeStrings(rdata: string): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < rdata.length) {
    if (rdata[i] === ' ') { i++; continue; }
    assert.equal(rdata[i], '"', `expected a quoted string at ${i} in ${rdata}`);
    i++;
    const bytes: number[] = [];
    while (rdata[i] !== '"') {
      if (rdata[i] === '\\') {
        if (/[0-9]/.test(rdata[i + 1]!)) { bytes.push(Number(rdata.slice(i + 1, i + 4))); i += 4; } else { bytes.push(rdata.charCodeAt(i + 1)); i += 2; }
      } else { bytes.push(rdata.charCodeAt(i)); i++; }
    }
    i++;
    out.push(Buffer.from(bytes));
  }
  return out;
}

test('quoted strings decode to the same bytes', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => {
    assert.deepEqual(Buffer.concat(decodeStrings(quoteCharacterString(s))), Buffer.from(s, 'utf8'));
  }), { numRuns: 500 });
});

test('named-checkzone loads arbitrary TXT values and dumps them back unchanged', async () => {
  const values = fc.sample(fc.string({ unit: 'binary', maxLength: 700 }), { numRuns: 60, seed: 20261128 })
    .concat(['"quoted" \\ back\\slash', 'tab\there', 'ünïcødé ✉', '', 'x'.repeat(255), 'y'.repeat(256), ';not a comment']);
  const records: DnsRecord[] = values.map((value, i) => ({ name: `t${i}.example.com`, type: 'TXT', ttl: 3600, value }));
  const text = renderZoneFile(records, {
    origin: 'example.com', soa: { primary: 'ns1.dnshost.example', contact: 'hostmaster.example.com', serial: 7 }, nameServers: ['ns1.dnshost.example'],
    header: ['header line with "quotes"'], trailer: ['trailer'],
  });
  const file = join(dir, 'txt.zone');
  await writeFile(file, text);
  const r = spawnSync('named-checkzone', ['-D', '-o', '-', 'example.com', file], { encoding: 'latin1' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const dumped = new Map<string, Buffer[]>();
  for (const line of r.stdout.split('\n')) {
    const m = /^(t\d+)\.example\.com\.\s+\d+\s+IN\s+TXT\s+(.*)$/.exec(line);
    if (m) dumped.set(m[1]!, decodeStrings(m[2]!));
  }
  assert.equal(dumped.size, values.length);
  values.forEach((value, i) => {
    const strings = dumped.get(`t${i}`)!;
    assert.ok(strings.every((s) => s.length <= 255));
    assert.deepEqual(Buffer.concat(strings), Buffer.from(value, 'utf8'), `value ${i}: ${JSON.stringify(value)}`);
  });
});

test('every record type renders in master-file syntax', () => {
  const text = renderZoneFile([
    { name: 'example.com', type: 'MX', ttl: 60, priority: 10, value: 'mail.example.com' },
    { name: '_imap._tcp.example.com', type: 'SRV', ttl: 60, priority: 0, weight: 0, port: 0, target: '.' },
    { name: 'mail.example.com', type: 'CAA', ttl: 60, flags: 0, tag: 'issue', value: 'letsencrypt.org' },
    { name: 'www.example.com', type: 'CNAME', ttl: 60, value: 'example.com' },
    { name: 'mail.example.com', type: 'AAAA', ttl: 60, value: '2001:db8::1' },
  ], { origin: 'example.com', annotate: (r) => (r.type === 'AAAA' ? 'note' : undefined) });
  assert.equal(text, [
    '$ORIGIN example.com.',
    '$TTL 3600',
    'example.com.            60 IN MX    10 mail.example.com.',
    '_imap._tcp.example.com. 60 IN SRV   0 0 0 .',
    'mail.example.com.       60 IN CAA   0 issue "letsencrypt.org"',
    'www.example.com.        60 IN CNAME example.com.',
    'mail.example.com.       60 IN AAAA  2001:db8::1 ; note',
    '',
  ].join('\n'));
});

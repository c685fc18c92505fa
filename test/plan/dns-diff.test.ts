// Properties of TXT splitting and of the owned-only DNS diff, plus its review-style output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { txtChunks, rdataKey, type DnsRecord, type ObservedRecord } from '../../src/plan/dns-records.ts';
import { applyDiff, diffDns, formatDiff, isOwned } from '../../src/plan/dns-diff.ts';
import type { OwnedRRset } from '../../src/plan/dns-plan.ts';

test('TXT chunks are at most 255 bytes and rejoin to the exact value', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 2000 }), (value) => {
    const chunks = txtChunks(value);
    assert.ok(chunks.every((c) => Buffer.byteLength(c) <= 255));
    assert.equal(chunks.join(''), value);
    // No needless split: every chunk but the last is full up to one character.
    chunks.slice(0, -1).forEach((c, i) => assert.ok(Buffer.byteLength(c) + Buffer.byteLength([...chunks[i + 1]!][0]!) > 255));
  }), { numRuns: 500 });
  assert.deepEqual(txtChunks(''), ['']);
  assert.deepEqual(txtChunks('a'.repeat(256)).map((c) => c.length), [255, 1]);
});

const DOMAIN = 'example.com';
const NAMES = [DOMAIN, `mail.${DOMAIN}`, `_dmarc.${DOMAIN}`, `s1._domainkey.${DOMAIN}`, `_imaps._tcp.${DOMAIN}`, `www.${DOMAIN}`];

const recordArb: fc.Arbitrary<DnsRecord> = fc.oneof(
  fc.record({ name: fc.constantFrom(...NAMES), type: fc.constant('A' as const), ttl: fc.constantFrom(300, 3600), value: fc.constantFrom('192.0.2.1', '192.0.2.2', '198.51.100.3') }),
  fc.record({ name: fc.constantFrom(...NAMES), type: fc.constant('MX' as const), ttl: fc.constantFrom(300, 3600), priority: fc.constantFrom(10, 20), value: fc.constantFrom('mail.example.com', 'old.example.net') }),
  fc.record({ name: fc.constantFrom(...NAMES), type: fc.constant('TXT' as const), ttl: fc.constantFrom(300, 3600),
    value: fc.oneof(fc.constantFrom('v=spf1 -all', 'v=spf1 ip4:192.0.2.1 -all', 'google-site-verification=x', 'v=DMARC1; p=none'), fc.string({ maxLength: 300 })) }),
  fc.record({ name: fc.constantFrom(...NAMES), type: fc.constant('SRV' as const), ttl: fc.constantFrom(300, 3600), priority: fc.constantFrom(0, 10), weight: fc.constantFrom(0, 1),
    port: fc.constantFrom(0, 993), target: fc.constantFrom('.', 'mail.example.com') }),
  fc.record({ name: fc.constantFrom(...NAMES), type: fc.constant('CAA' as const), ttl: fc.constantFrom(300, 3600), flags: fc.constant(0),
    tag: fc.constant('issue' as const), value: fc.constantFrom('letsencrypt.org', 'pki.goog') }),
);

/** A set of records with no two alike in name, type and data (DNS keeps an RRset as a set). */
const recordSet = (max: number) => fc.uniqueArray(recordArb, { maxLength: max, selector: (r) => `${r.name} ${r.type} ${rdataKey(r)}` });

/** Ownership as the plan makes it: the apex and mail host own SPF TXT only; other planned names own the type. */
function ownedOf(desired: readonly DnsRecord[]): OwnedRRset[] {
  const owned: OwnedRRset[] = [];
  for (const r of desired) {
    if (owned.some((o) => o.name === r.name && o.type === r.type)) continue;
    owned.push(r.type === 'TXT' && (r.name === DOMAIN || r.name === `mail.${DOMAIN}`) ? { name: r.name, type: 'TXT', valuePrefix: 'v=spf1' } : { name: r.name, type: r.type });
  }
  return owned;
}

/** Desired sets as the plan makes them: only owned records (SPF at the apex), never www. */
const desiredArb = recordSet(12).map((rs) => rs.filter((r) => r.name !== `www.${DOMAIN}` &&
  !(r.type === 'TXT' && (r.name === DOMAIN || r.name === `mail.${DOMAIN}`) && !/^v=spf1( |$)/.test(r.value))));

const key = (r: ObservedRecord): string => `${r.name} ${r.type} ${rdataKey(r)} ${r.ttl ?? '-'}`;
const sorted = (rs: readonly ObservedRecord[]): string[] => rs.map(key).sort();

test('diff(x, x) is empty', () => {
  fc.assert(fc.property(desiredArb, (x) => {
    assert.deepEqual(diffDns(x, x, ownedOf(x)), []);
  }), { numRuns: 300 });
});

test('applying the diff to the current set yields the desired set on owned names, and nothing else moves', () => {
  fc.assert(fc.property(desiredArb, recordSet(12), (desired, current) => {
    const owned = ownedOf(desired);
    const changes = diffDns(desired, current, owned);
    const after = applyDiff(current, changes);
    assert.deepEqual(sorted(after.filter((r) => isOwned(r, owned))), sorted(desired));
    assert.deepEqual(sorted(after.filter((r) => !isOwned(r, owned))), sorted(current.filter((r) => !isOwned(r, owned))));
    assert.deepEqual(diffDns(desired, after, owned), [], 'a second diff finds nothing left to do');
  }), { numRuns: 500 });
});

test('answers without a TTL compare on data only', () => {
  fc.assert(fc.property(desiredArb, (desired) => {
    const observed: ObservedRecord[] = desired.map(({ ttl: _ttl, ...rest }) => rest as ObservedRecord);
    assert.deepEqual(diffDns(desired, observed, ownedOf(desired)), []);
  }), { numRuns: 200 });
});

test('the diff reads like a review and never touches records Postern does not own', () => {
  const desired: DnsRecord[] = [
    { name: DOMAIN, type: 'MX', ttl: 3600, priority: 10, value: 'mail.example.com' },
    { name: DOMAIN, type: 'TXT', ttl: 3600, value: 'v=spf1 ip4:192.0.2.10 -all' },
    { name: `s1._domainkey.${DOMAIN}`, type: 'TXT', ttl: 3600, value: 'v=DKIM1; k=ed25519; p=abc' },
    { name: `mail.${DOMAIN}`, type: 'A', ttl: 3600, value: '192.0.2.10' },
  ];
  const current: ObservedRecord[] = [
    { name: DOMAIN, type: 'MX', priority: 10, value: 'mail.example.com' },
    { name: DOMAIN, type: 'MX', priority: 20, value: 'old.example.net' },
    { name: DOMAIN, type: 'TXT', value: 'v=spf1 ip4:198.51.100.7 -all' },
    { name: DOMAIN, type: 'TXT', value: 'google-site-verification=abc' },
    { name: DOMAIN, type: 'TXT', value: 'v=spf10 is not an SPF record' },
    { name: `mail.${DOMAIN}`, type: 'A', ttl: 300, value: '192.0.2.10' },
    { name: `www.${DOMAIN}`, type: 'A', ttl: 300, value: '198.51.100.80' },
  ];
  const changes = diffDns(desired, current, ownedOf(desired));
  assert.equal(formatDiff(changes), [
    '- example.com MX 20 old.example.net',
    '~ example.com TXT "v=spf1 ip4:198.51.100.7 -all" → example.com 3600 TXT "v=spf1 ip4:192.0.2.10 -all"',
    '~ mail.example.com 300 A 192.0.2.10 → mail.example.com 3600 A 192.0.2.10',
    '+ s1._domainkey.example.com 3600 TXT "v=DKIM1; k=ed25519; p=abc"',
  ].join('\n'));
});

test('without an ownership list, the desired records define it (TXT by their v= tag)', () => {
  const desired: DnsRecord[] = [
    { name: DOMAIN, type: 'TXT', ttl: 3600, value: 'v=spf1 -all' },
    { name: `_dmarc.${DOMAIN}`, type: 'TXT', ttl: 3600, value: 'v=DMARC1; p=reject' },
    { name: DOMAIN, type: 'MX', ttl: 3600, priority: 10, value: 'mail.example.com' },
  ];
  const current: ObservedRecord[] = [
    { name: DOMAIN, type: 'TXT', value: 'google-site-verification=abc' },
    { name: DOMAIN, type: 'TXT', value: 'v=spf1 mx -all' },
    { name: `_dmarc.${DOMAIN}`, type: 'TXT', value: 'v=DMARC1;p=none' },
    { name: DOMAIN, type: 'MX', priority: 10, value: 'mail.example.com' },
    { name: DOMAIN, type: 'MX', priority: 5, value: 'other.example.net' },
    { name: `www.${DOMAIN}`, type: 'A', value: '198.51.100.80' },
  ];
  assert.equal(formatDiff(diffDns(desired, current)), [
    '~ _dmarc.example.com TXT "v=DMARC1;p=none" → _dmarc.example.com 3600 TXT "v=DMARC1; p=reject"',
    '- example.com MX 5 other.example.net',
    '~ example.com TXT "v=spf1 mx -all" → example.com 3600 TXT "v=spf1 -all"',
  ].join('\n'));
});

test('applyDiff refuses a change whose old record is not there', () => {
  assert.throws(() => applyDiff([], [{ op: 'remove', old: { name: DOMAIN, type: 'A', value: '192.0.2.1' } }]),
    { message: 'applyDiff: example.com A 192.0.2.1 is not in the current set' });
});

// Names, addresses, CIDR blocks, sizes and durations as the stack config reads them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalIPv6, parseAddress, parseCidr, reverseName, toALabel } from '../../src/plan/names.ts';
import { parseByteSize, parseDurationSeconds } from '../../src/plan/sizes.ts';
import { didYouMean } from '../../src/plan/did-you-mean.ts';

test('IPv6 text is canonical (RFC 5952), as the WHATWG URL parser writes it', () => {
  const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), fc.boolean(), (groups, upper) => {
    let text = groups.map((g) => g.toString(16)).join(':');
    if (upper) text = text.toUpperCase();
    assert.equal(canonicalIPv6(text), new URL(`http://[${text}]/`).hostname.slice(1, -1));
  }), { numRuns: 500 });
  assert.equal(canonicalIPv6('::ffff:192.0.2.1'), '::ffff:c000:201');
});

test('CIDR blocks: normalised, host bits refused with the likely network', () => {
  assert.deepEqual(parseCidr('2001:DB8:0:0:1::/64'), { ok: false, reason: 'expected a network address: host bits are set (did you mean "2001:db8::/64"?)' });
  assert.deepEqual(parseCidr('2001:db8::/32'), { ok: true, cidr: '2001:db8::/32', anywhere: false });
  assert.deepEqual(parseCidr('::/0'), { ok: true, cidr: '::/0', anywhere: true });
  assert.deepEqual(parseCidr('10.1.2.3/8'), { ok: false, reason: 'expected a network address: host bits are set (did you mean "10.0.0.0/8"?)' });
  assert.deepEqual(parseCidr('10.0.0.0/08x'), { ok: false, reason: 'expected a prefix length from 0 to 32 after "/"' });
  assert.deepEqual(parseCidr('2001:db8::/129'), { ok: false, reason: 'expected a prefix length from 0 to 128 after "/"' });
});

test('reverse names for PTR', () => {
  assert.equal(reverseName('192.0.2.10'), '10.2.0.192.in-addr.arpa');
  assert.equal(reverseName('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
});

test('domain names and addresses', () => {
  assert.equal(toALabel('Mail.Example.COM.'), 'mail.example.com');
  assert.equal(toALabel('münchen.de'), 'xn--mnchen-3ya.de');
  for (const bad of ['', 'example', '-a.example.com', 'a..example.com', 'exa_mple.com', '192.0.2.1', `${'a'.repeat(64)}.com`, 'a b.com']) {
    assert.equal(toALabel(bad), undefined, bad);
  }
  assert.equal(toALabel('_spf.relay.example', true), '_spf.relay.example');
  assert.equal(toALabel('relay._example', true), undefined, 'a service label is never the registered domain');
  assert.deepEqual(parseAddress('Jo.Doe+tag@Bücher.de'), { local: 'Jo.Doe+tag', domain: 'xn--bcher-kva.de', address: 'Jo.Doe+tag@xn--bcher-kva.de' });
  for (const bad of ['@example.com', 'a@', 'a..b@example.com', '.a@example.com', 'ä@example.com', `${'a'.repeat(65)}@example.com`, 'a b@example.com']) {
    assert.equal(parseAddress(bad), undefined, bad);
  }
});

test('sizes and durations', () => {
  assert.equal(parseByteSize('2GB'), 2_000_000_000);
  assert.equal(parseByteSize('1.5 GiB'), 1610612736);
  assert.equal(parseByteSize('500mb'), 500_000_000);
  assert.equal(parseByteSize(0), 0);
  for (const bad of [-1, 1.5, '2 gigs', '', 'GB', null, '1e3']) assert.equal(parseByteSize(bad), undefined, String(bad));
  assert.equal(parseDurationSeconds('7d'), 604800);
  assert.equal(parseDurationSeconds('1w'), 604800);
  assert.equal(parseDurationSeconds(86400), 86400);
  for (const bad of ['7 days', '-1d', '1.5d', {}]) assert.equal(parseDurationSeconds(bad), undefined, String(bad));
});

test('did you mean', () => {
  assert.equal(didYouMean('regoin', ['region', 'size']), 'region');
  assert.equal(didYouMean('selector', ['selectorPrefix', 'rsa']), 'selectorPrefix');
  assert.equal(didYouMean('webmailTheme', ['region', 'size']), undefined);
  assert.equal(didYouMean('smpt', ['smtp', 'imap']), 'smtp', 'a swap of two letters is one slip');
  assert.equal(didYouMean('levle', ['level', 'pretty']), 'level');
});

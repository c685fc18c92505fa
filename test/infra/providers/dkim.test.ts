// DKIM keys made by the provider sign mail that a real DKIM verifier (mailauth) accepts against the published
// record; rotation keeps the previous record published for one more change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dkimSign, dkimVerify } from 'mailauth';
import { dkimKeyProvider, type DkimKeyOutputs, type DkimAlgorithm } from '../../../src/infra/providers/dkim.ts';
import { loadSerializedProvider } from '../../support/serialized-provider.ts';

const DOMAIN = 'example.com';
const MESSAGE = 'From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\n';

/** Signs with the key and verifies against a resolver that serves only `records` (selector → TXT value). */
async function verifies(key: DkimKeyOutputs, records: Record<string, string>): Promise<string> {
  const signed = await dkimSign(MESSAGE, {
    signingDomain: DOMAIN, selector: key.selector, privateKey: key.privateKeyPem,
    signatureData: [{ signingDomain: DOMAIN, selector: key.selector, privateKey: key.privateKeyPem, algorithm: key.algorithm }],
  });
  assert.notEqual(signed.signatures, '');
  assert.deepEqual(signed.errors, []);
  const result = await dkimVerify(signed.signatures + MESSAGE, {
    resolver: async (name: string, rrtype: string) => {
      const selector = name.replace(`._domainkey.${DOMAIN}`, '');
      const value = records[selector];
      if (rrtype !== 'TXT' || value === undefined) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      return [[value]];
    },
  });
  const first = result.results[0];
  assert.ok(first);
  return first.status.result;
}

const { provider } = await loadSerializedProvider(dkimKeyProvider);

for (const algorithm of ['rsa-sha256', 'ed25519-sha256'] as DkimAlgorithm[]) {
  test(`${algorithm}: the published record verifies mail signed with the private key`, async () => {
    const { outs } = await provider.create({ selector: 's2026', algorithm });
    assert.ok(outs);
    assert.match(outs.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(outs.retired, null);
    assert.equal(await verifies(outs, { s2026: outs.dnsValue }), 'pass');
    // A record of another key must not verify: the test would pass on any key otherwise.
    const other = await provider.create({ selector: 's2026', algorithm });
    assert.ok(other.outs);
    assert.equal(await verifies(outs, { s2026: other.outs.dnsValue }), 'fail');
  });
}

test('rsa key is 2048 bits and ed25519 record carries the raw 32-byte key', async () => {
  const rsa = (await provider.create({ selector: 'a', algorithm: 'rsa-sha256' })).outs!;
  const { createPublicKey } = await import('node:crypto');
  const pub = createPublicKey({ key: Buffer.from(rsa.publicKey, 'base64'), format: 'der', type: 'spki' });
  assert.equal(pub.asymmetricKeyDetails?.modulusLength, 2048);
  const ed = (await provider.create({ selector: 'b', algorithm: 'ed25519-sha256' })).outs!;
  assert.equal(Buffer.from(ed.publicKey, 'base64').length, 32);
  assert.match(ed.dnsValue, /^v=DKIM1; k=ed25519; p=/);
});

test('a new selector makes new keys and keeps the previous record published until the next change', async () => {
  const first = (await provider.create({ selector: 'jan', algorithm: 'rsa-sha256' })).outs!;
  assert.deepEqual(await provider.diff!('id', first, { selector: 'jan', algorithm: 'rsa-sha256' }), { changes: false });
  assert.deepEqual(await provider.diff!('id', first, { selector: 'feb', algorithm: 'rsa-sha256' }), { changes: true });

  const second = (await provider.update!('id', first, { selector: 'feb', algorithm: 'rsa-sha256' })).outs!;
  assert.equal(second.selector, 'feb');
  assert.notEqual(second.privateKeyPem, first.privateKeyPem);
  assert.deepEqual(second.retired, { selector: 'jan', algorithm: 'rsa-sha256', dnsValue: first.dnsValue });
  // Both records published: mail signed just before the switch still verifies, and new mail verifies.
  const published = { jan: second.retired!.dnsValue, feb: second.dnsValue };
  assert.equal(await verifies(first, published), 'pass');
  assert.equal(await verifies(second, published), 'pass');

  const third = (await provider.update!('id', second, { selector: 'mar', algorithm: 'ed25519-sha256' })).outs!;
  assert.equal(third.retired?.selector, 'feb');
});

test('bad selector and algorithm are refused with what was found', async () => {
  const r = await provider.check!({} as never, { selector: 'bad_selector!', algorithm: 'rsa-sha1' as never });
  assert.equal(r.failures?.length, 2);
  assert.match(r.failures![0]!.reason, /found "bad_selector!"/);
  assert.match(r.failures![1]!.reason, /found "rsa-sha1"/);
});

// The certificate provider against a real ACME CA: Debian's Pebble, validating DNS-01 through
// pebble-challtestsrv. The provider runs serialised, as Pulumi's provider host runs it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { createAcmeProvider, type AcmeCertificateInputs, type AcmeCertificateOutputs } from '../../../src/infra/providers/acme.ts';
import type { DnsApiSettings, DnsChallengeApi } from '../../../src/infra/providers/dns-challenge.ts';
import { startPebble, type Pebble } from '../../support/pebble.ts';
import { loadSerializedProvider } from '../../support/serialized-provider.ts';

/** The "DNS API" for tests: challtestsrv's management API. */
async function challtestsrvApi(settings: DnsApiSettings): Promise<DnsChallengeApi> {
  const base = settings.managementUrl;
  if (!base) throw new Error('managementUrl missing');
  async function post(path: string, body: unknown): Promise<void> {
    const res = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`challtestsrv ${path}: HTTP ${res.status}`);
  }
  return {
    setTxt: (fqdn, value) => post('/set-txt', { host: `${fqdn}.`, value }),
    clearTxt: (fqdn) => post('/clear-txt', { host: `${fqdn}.` }),
  };
}

const NAMES = ['mail.example.test', 'mta-sts.example.test', 'autoconfig.example.test'];
// 45 days, like Let's Encrypt's shortened certificates: renewBeforeDays 30 leaves it alone, 50 renews it.
const VALIDITY_SECONDS = 45 * 86400;

let pebble: Pebble;
let inputs: AcmeCertificateInputs;
let provider: Awaited<ReturnType<typeof loadSerializedProvider<ReturnType<typeof createAcmeProvider>>>>['provider'];
let serializedText = '';

before(async () => {
  pebble = await startPebble({ certificateValiditySeconds: VALIDITY_SECONDS });
  inputs = {
    directoryUrl: pebble.directoryUrl, directoryCaPem: pebble.httpsCaPem, email: 'postmaster@example.test',
    names: NAMES, renewBeforeDays: 30,
    dns: { managementUrl: pebble.challtestsrvUrl, apiToken: 'secret-token-never-in-provider-text' },
    propagation: { zoneName: 'example.test', nameServers: [pebble.dnsServer], timeoutSeconds: 20, intervalMs: 100 },
  };
  const loaded = await loadSerializedProvider(createAcmeProvider(challtestsrvApi));
  provider = loaded.provider;
  serializedText = loaded.text;
});

after(async () => { await pebble?.stop(); });

function sans(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '').split(', ').map((s) => s.replace(/^DNS:/, '')).sort();
}

async function pebbleIssued(outs: AcmeCertificateOutputs): Promise<X509Certificate> {
  const chain = outs.certificatePem.split(/(?=-----BEGIN CERTIFICATE-----)/).map((p) => new X509Certificate(p));
  const [leaf, intermediate] = chain;
  assert.ok(leaf && intermediate, 'leaf and intermediate in the chain');
  const root = new X509Certificate((await pebble.management('/roots/0')).body);
  assert.ok(leaf.verify(intermediate.publicKey), 'leaf signed by the intermediate');
  assert.ok(intermediate.verify(root.publicKey), "intermediate signed by Pebble's root");
  assert.ok(leaf.checkPrivateKey(createPrivateKey(outs.privateKeyPem)), 'private key belongs to the certificate');
  return leaf;
}

async function challengeTxt(name: string): Promise<string[][]> {
  const r = new Resolver();
  r.setServers([pebble.dnsServer]);
  return r.resolveTxt(`_acme-challenge.${name}`).catch(() => []);
}

let first: AcmeCertificateOutputs;

test('create issues a certificate for the mail host, mta-sts and autoconfig, and removes the challenge records', async () => {
  const checked = await provider.check!({} as never, inputs);
  assert.equal(checked.failures, undefined);
  const created = await provider.create(inputs);
  assert.ok(created.outs);
  first = created.outs;
  const leaf = await pebbleIssued(first);
  assert.deepEqual(sans(leaf), [...NAMES].sort());
  assert.equal(first.serial, leaf.serialNumber.toLowerCase());
  assert.match(first.accountKeyPem, /PRIVATE KEY/);
  assert.match(first.accountUrl, /^https:\/\/127\.0\.0\.1:\d+\//);
  for (const n of NAMES) assert.deepEqual(await challengeTxt(n), [], `no challenge TXT left for ${n}`);
  assert.ok(!serializedText.includes('secret-token-never-in-provider-text'));
});

test('an up with the same names and plenty of days left changes nothing', async () => {
  assert.deepEqual(await provider.diff!(first.serial, first, inputs), { changes: false });
  assert.deepEqual(await provider.diff!(first.serial, first, { ...inputs, names: [...NAMES].reverse() }), { changes: false });
});

test('fewer days left than renewBeforeDays renews with the same account', async () => {
  const due = { ...inputs, renewBeforeDays: 50 };
  assert.deepEqual(await provider.diff!(first.serial, first, due), { changes: true });
  const renewed = (await provider.update!(first.serial, first, due)).outs!;
  const leaf = await pebbleIssued(renewed);
  assert.notEqual(renewed.serial, first.serial);
  assert.equal(renewed.accountUrl, first.accountUrl);
  assert.equal(renewed.accountKeyPem, first.accountKeyPem);
  assert.notEqual(renewed.privateKeyPem, first.privateKeyPem);
  assert.ok(Date.parse(renewed.notAfter) >= Date.parse(first.notAfter));
  assert.deepEqual(sans(leaf), [...NAMES].sort());
});

test('changed names re-issue for the new names', async () => {
  const names = ['mail2.example.test', 'mta-sts.example.test', 'autoconfig.example.test'];
  assert.deepEqual(await provider.diff!(first.serial, first, { ...inputs, names }), { changes: true });
  const reissued = (await provider.update!(first.serial, first, { ...inputs, names })).outs!;
  assert.deepEqual(sans(await pebbleIssued(reissued)), [...names].sort());
  assert.equal(new X509Certificate(reissued.certificatePem).subject, 'CN=mail2.example.test');
});

test('delete revokes the certificate at the CA', async () => {
  const created = (await provider.create({ ...inputs, names: ['gone.example.test'] })).outs!;
  const before = await pebble.management(`/cert-status-by-serial/${created.serial}`);
  assert.match(before.body, /"Status":\s*"Valid"/);
  await provider.delete!(created.serial, created);
  const afterDelete = await pebble.management(`/cert-status-by-serial/${created.serial}`);
  assert.match(afterDelete.body, /"Status":\s*"Revoked"/);
});

test('a challenge record the name servers never serve fails with the names of the servers', async () => {
  const silentDns = async (): Promise<DnsChallengeApi> => ({ setTxt: async () => {}, clearTxt: async () => {} });
  const p = createAcmeProvider(silentDns);
  await assert.rejects(
    p.create({ ...inputs, names: ['silent.example.test'], propagation: { ...inputs.propagation, timeoutSeconds: 1 } }),
    (err: Error) => {
      assert.match(err.message, /_acme-challenge\.silent\.example\.test not served by 127\.0\.0\.1:\d+ after 1s/);
      return true;
    });
});

test('invalid inputs are refused before any order', async () => {
  const r = await provider.check!({} as never, { ...inputs, names: ['Mail.Example.test', 'bad host'], email: 'nobody', directoryUrl: 'http://x' });
  const props = (r.failures ?? []).map((f) => f.property).sort();
  assert.deepEqual(props, ['directoryUrl', 'email', 'names', 'names']);
});

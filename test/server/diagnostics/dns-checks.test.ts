// The doctor's DNS, PTR, MTA-STS and blocklist checks against real peers: Knot serves a clean domain and a domain
// with planted faults (missing DKIM, SPF needing 11 lookups, PTR that does not confirm, no IPv6 PTR, MTA-STS id
// mismatch), their reverse zones and test DNSBLs (one listing the faulty host with 127.0.0.2, one answering the
// refusal code 127.255.255.254); Unbound resolves through stub zones; the MTA-STS policy is fetched over real HTTPS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ensureDebianPackages } from '../../support/debian.ts';
import { startDoctorWorld, type DoctorWorld } from './doctor-world.ts';
import { targetFromServerConfig, type DiagnosticTarget } from '../../../src/server/diagnostics/target.ts';
import { parseServerConfig } from '../../../src/plan/server-config.ts';
import { runDiagnostics } from '../../../src/server/diagnostics/run.ts';
import { dnsResolver } from '../../../src/server/diagnostics/resolver.ts';
import { httpsFetcher } from '../../../src/server/diagnostics/https-fetch.ts';
import { SPAMHAUS_ZEN, SPAMHAUS_DBL, type DnsblList } from '../../../src/server/diagnostics/dnsbl-lists.ts';
import { evaluateSpf, checkSpf } from '../../../src/server/diagnostics/spf.ts';
import type { CheckResult } from '../../../src/server/diagnostics/check.ts';

ensureDebianPackages(['knot', 'unbound', 'openssl']);

const ZEN: DnsblList = { ...SPAMHAUS_ZEN, zone: 'zen.bl.test' };
const REFUSING: DnsblList = { ...SPAMHAUS_ZEN, zone: 'refuse.bl.test', name: 'Spamhaus ZEN (through a public resolver)' };
const DBL: DnsblList = { ...SPAMHAUS_DBL, zone: 'dbl.bl.test' };

let world: DoctorWorld;
let clean: DiagnosticTarget;
let faulty: DiagnosticTarget;

before(async () => {
  world = await startDoctorWorld();
  ({ clean, faulty } = world);
});

after(async () => {
  await world?.stop();
});

function options(lists: DnsblList[]) {
  const resolver = dnsResolver({ servers: [world.resolverAddress], timeoutMs: 2000, tries: 2 });
  return {
    groups: ['dns', 'ptr', 'dnsbl'] as const,
    resolver,
    fetchText: httpsFetcher({ ca: world.caPem, connectTo: { host: '127.0.0.1', port: world.httpsPort } }),
    dnsbls: lists, outboundTargets: [], now: new Date(),
  };
}

const find = (rs: CheckResult[], id: string) => {
  const r = rs.find((x) => x.id === id);
  assert.ok(r, `no result ${id} in:\n${rs.map((x) => `${x.status} ${x.id}: ${x.message}`).join('\n')}`);
  return r;
};

test('a clean domain reports every DNS, PTR and blocklist check ok', async () => {
  const results = await runDiagnostics(clean, options([ZEN, DBL]));
  const notOk = results.filter((r) => r.status !== 'ok');
  assert.deepEqual(notOk, [], notOk.map((r) => `${r.id}: ${r.message}`).join('\n'));
  assert.match(find(results, 'dns.records').message, /all \d+ planned DNS records are published/);
  assert.match(find(results, 'dns.spf').message, /needs 0 of 10 DNS lookups/);
  assert.ok(find(results, 'dns.dkim.postern-ed25519'));
  assert.match(find(results, 'ptr.ipv6').message, /2001:db8::10 is mail\.clean\.test/);
  assert.match(find(results, 'dns.mta-sts').message, /matches the served policy/);
  assert.match(find(results, 'dnsbl.zen.bl.test.192.0.2.10').message, /not listed on Spamhaus ZEN/);
  assert.match(find(results, 'dnsbl.dbl.bl.test.domain').message, /clean\.test is not listed/);
});

test('each planted fault is reported with its fix', async () => {
  const results = await runDiagnostics(faulty, options([ZEN, REFUSING, DBL]));

  const dkim = find(results, 'dns.dkim.postern-ed25519');
  assert.equal(dkim.status, 'fail');
  assert.match(dkim.message, /no DKIM key at postern-ed25519\._domainkey\.faulty\.test/);
  assert.match(dkim.fix, /^publish TXT postern-ed25519\._domainkey\.faulty\.test "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="/);
  assert.equal(find(results, 'dns.dkim.postern-rsa').status, 'ok');

  const spf = find(results, 'dns.spf');
  assert.equal(spf.status, 'fail');
  assert.match(spf.message, /needs 11 DNS lookups, over the RFC 7208 limit of 10/);
  assert.match(spf.message, /a \(1\), mx \(1\), include:_s1\.faulty\.test \(4\), include:_s2\.faulty\.test \(5\)/);
  assert.match(spf.fix, /TXT faulty\.test "v=spf1 ip4:192\.0\.2\.20 ip6:2001:db8::20 -all"/);

  const sts = find(results, 'dns.mta-sts');
  assert.equal(sts.status, 'fail');
  assert.match(sts.message, /id=old1 does not match the served policy's id [0-9a-f]{20}/);
  assert.equal(sts.fix, `publish TXT _mta-sts.faulty.test "v=STSv1; id=${faulty.mtaSts.id}"`);
  assert.equal(find(results, 'mta-sts.policy').status, 'ok');

  const ptr4 = find(results, 'ptr.ipv4');
  assert.equal(ptr4.status, 'fail');
  assert.match(ptr4.message, /PTR of 192\.0\.2\.20 is elsewhere\.faulty\.test, which does not resolve back/);
  assert.match(ptr4.fix, /set the reverse DNS of 192\.0\.2\.20 to mail\.faulty\.test/);
  const ptr6 = find(results, 'ptr.ipv6');
  assert.equal(ptr6.status, 'fail');
  assert.match(ptr6.message, /2001:db8::20 \(outbound IPv6\) has no PTR/);

  const listed = find(results, 'dnsbl.zen.bl.test.192.0.2.20');
  assert.equal(listed.status, 'fail');
  assert.match(listed.message, /LISTED on Spamhaus ZEN.*127\.0\.0\.2 = SBL/);
  assert.match(listed.fix, /https:\/\/check\.spamhaus\.org\//);
  assert.equal(find(results, 'dnsbl.zen.bl.test.2001:db8::20').status, 'ok');
  const refused = find(results, 'dnsbl.refuse.bl.test.192.0.2.20');
  assert.equal(refused.status, 'warn');
  assert.match(refused.message, /lookup refused .*127\.255\.255\.254.*not clean/);
  assert.match(refused.fix, /resolver of your own/);

  // The plan's diff names the same records: the missing key and the two changed TXT records.
  const recordIds = results.filter((r) => r.id.startsWith('dns.record.')).map((r) => `${r.status} ${r.id}`).sort();
  assert.deepEqual(recordIds, [
    'fail dns.record._mta-sts.faulty.test.TXT',
    'fail dns.record.faulty.test.TXT',
    'fail dns.record.postern-ed25519._domainkey.faulty.test.TXT',
  ]);
});

test('SPF lookups are counted through include and redirect, with loops and void includes reported', async () => {
  const resolver = dnsResolver({ servers: [world.resolverAddress] });
  const ev = await evaluateSpf(resolver, 'faulty.test');
  assert.equal(ev.lookups, 11);
  assert.deepEqual(ev.errors, []);
  const none = await evaluateSpf(resolver, 'nothing-here.faulty.test');
  assert.equal(none.record, null);
  const redirect = await evaluateSpf(resolver, '_redir.faulty.test');
  assert.equal(redirect.lookups, 6); // mx, redirect, then _s2's a, mx, include and _s3's a
  assert.deepEqual(redirect.breakdown, ['mx (1)', 'redirect=_s2.faulty.test (5)']);
  const loop = await evaluateSpf(resolver, '_loop.faulty.test');
  assert.match(loop.errors.join(), /loop: _loop\.faulty\.test includes itself/);
  const voids = await evaluateSpf(resolver, '_void.faulty.test');
  assert.equal(voids.voidLookups, 3);
  assert.match(voids.errors.join(), /_none1\.faulty\.test has no SPF record/);
  const r = await checkSpf(resolver, '_void.faulty.test');
  assert.equal(r.status, 'fail');
  assert.match(r.message, /is invalid: .*_none1/);
});

test('on the host, without the stack file, the DNS group checks each record against the server config', async () => {
  const policy = clean.mtaSts.policy!;
  const config = parseServerConfig({
    domain: 'clean.test', hostname: 'mail.clean.test', stateDir: '/nonexistent', tls: { certFile: 'c', keyFile: 'k' },
    dmarc: { policy: 'quarantine', reportAddress: 'postmaster@clean.test' }, mtaSts: { mode: 'enforce', policy },
  });
  assert.ok(config.ok);
  const target = targetFromServerConfig(config.value, { ipv4: '192.0.2.10', ipv6: '2001:db8::10', dkimPublicKeys: world.cleanDkim });
  const results = await runDiagnostics(target, { ...options([]), groups: ['dns'] });
  assert.deepEqual(results.filter((r) => r.status !== 'ok'), []);
  assert.deepEqual(results.map((r) => r.id).sort(), ['dns.dkim.postern-ed25519', 'dns.dkim.postern-rsa', 'dns.dmarc', 'dns.mta-sts', 'dns.spf', 'mta-sts.policy']);
  // A key the server signs with that differs from the published one is caught.
  const other = targetFromServerConfig(config.value, { ipv4: '192.0.2.10', dkimPublicKeys: world.cleanDkim.map((k, i) => (i === 1 ? { ...k, publicKey: world.faultyDkimEd25519 } : k)) });
  const dkim = (await runDiagnostics(other, { ...options([]), groups: ['dns'] })).find((r) => r.id === 'dns.dkim.postern-ed25519');
  assert.equal(dkim?.status, 'fail');
  assert.match(dkim!.message, /differs from the key the server signs with/);
});

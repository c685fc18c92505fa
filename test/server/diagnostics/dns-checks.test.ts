// The doctor's DNS, PTR, MTA-STS and blocklist checks against real peers: Knot serves a clean domain and a domain
// with planted faults (missing DKIM, SPF needing 11 lookups, PTR that does not confirm, no IPv6 PTR, MTA-STS id
// mismatch), their reverse zones and test DNSBLs (one listing the faulty host with 127.0.0.2, one answering the
// refusal code 127.255.255.254); Unbound resolves through stub zones; the MTA-STS policy is fetched over real HTTPS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { ensureDebianPackages } from '../../support/debian.ts';
import { startKnot, startUnbound, type RunningPeer } from './dns-peers.ts';
import { makeTestCa } from './test-pki.ts';
import { parseStackConfig, type StackConfig } from '../../../src/plan/stack-config.ts';
import { renderZoneFile } from '../../../src/plan/zone-file.ts';
import { renderMtaStsPolicy } from '../../../src/plan/client-config.ts';
import type { DnsRecord } from '../../../src/plan/dns-records.ts';
import { targetFromStack, type DiagnosticTarget } from '../../../src/server/diagnostics/target.ts';
import { runDiagnostics } from '../../../src/server/diagnostics/run.ts';
import { dnsResolver } from '../../../src/server/diagnostics/resolver.ts';
import { httpsFetcher } from '../../../src/server/diagnostics/https-fetch.ts';
import { SPAMHAUS_ZEN, SPAMHAUS_DBL, type DnsblList } from '../../../src/server/diagnostics/dnsbl-lists.ts';
import { reversedIp } from '../../../src/server/diagnostics/dnsbl.ts';
import { evaluateSpf, checkSpf } from '../../../src/server/diagnostics/spf.ts';
import type { CheckResult } from '../../../src/server/diagnostics/check.ts';

ensureDebianPackages(['knot', 'unbound', 'openssl']);

const HASH = '$argon2id$v=19$m=65536,t=3,p=4$mvibF0f8r3Oi6Ya+maJY+g$Xw93yVX4V6lqABw/klOXpMuqPUzzpnQxlkWCz2247lY';

function stack(domain: string): StackConfig {
  const r = parseStackConfig({
    domain, region: 'fra1', adminCidrs: ['203.0.113.7/32'],
    sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4BG3e7eRd5fUpjQd75+0ge/aYVk5zz8kkt47geJtmy admin@example.com',
    users: [{ address: `alice@${domain}`, passwordHash: HASH }],
    dmarc: { policy: 'quarantine', reportAddress: `postmaster@${domain}` },
    tlsRpt: { reportAddress: `postmaster@${domain}` },
    mtaSts: { mode: 'enforce', maxAge: '7d' },
  });
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.value;
}

function dkimKeys(s: StackConfig) {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return [
    { selector: `${s.dkim.selectorPrefix}-rsa`, algorithm: 'rsa-sha256' as const, publicKey: rsa },
    { selector: `${s.dkim.selectorPrefix}-ed25519`, algorithm: 'ed25519-sha256' as const, publicKey: ed },
  ];
}

const soa = (origin: string) => ({ origin, soa: { primary: `ns.${origin}`, contact: `hostmaster.${origin}`, serial: 1, minimum: 60 }, nameServers: [`ns.${origin}`], defaultTtl: 60 });
const zone = (origin: string, records: DnsRecord[], extra: string[] = []) => ({ origin, text: renderZoneFile(records, soa(origin)) + extra.join('\n') + '\n' });

let dir: string;
let knot: RunningPeer | undefined;
let unbound: RunningPeer | undefined;
let https: Server | undefined;
let clean: DiagnosticTarget;
let faulty: DiagnosticTarget;
let caPem: string;
let httpsPort: number;

const ZEN: DnsblList = { ...SPAMHAUS_ZEN, zone: 'zen.bl.test' };
const REFUSING: DnsblList = { ...SPAMHAUS_ZEN, zone: 'refuse.bl.test', name: 'Spamhaus ZEN (through a public resolver)' };
const DBL: DnsblList = { ...SPAMHAUS_DBL, zone: 'dbl.bl.test' };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-doctor-dns-'));
  const cleanStack = stack('clean.test');
  const faultyStack = stack('faulty.test');
  clean = targetFromStack(cleanStack, { ipv4: '192.0.2.10', ipv6: '2001:db8::10', dkimPublicKeys: dkimKeys(cleanStack) });
  faulty = targetFromStack(faultyStack, { ipv4: '192.0.2.20', ipv6: '2001:db8::20', dkimPublicKeys: dkimKeys(faultyStack) });

  // Faults: no Ed25519 DKIM key, an SPF needing 11 lookups, a stale MTA-STS id.
  const faultyRecords = faulty.dnsPlan.records.flatMap((r): DnsRecord[] => {
    if (r.type === 'TXT' && r.name === 'postern-ed25519._domainkey.faulty.test') return [];
    if (r.type === 'TXT' && r.name === 'faulty.test' && r.value.startsWith('v=spf1')) {
      return [{ ...r, value: 'v=spf1 a mx include:_s1.faulty.test include:_s2.faulty.test -all' }];
    }
    if (r.type === 'TXT' && r.name === '_mta-sts.faulty.test') return [{ ...r, value: 'v=STSv1; id=old1' }];
    return [r];
  });
  const spfChain = [
    '_s1.faulty.test. 60 IN TXT "v=spf1 a mx exists:%{i}.x.faulty.test -all"',
    '_s2.faulty.test. 60 IN TXT "v=spf1 a mx include:_s3.faulty.test -all"',
    '_s3.faulty.test. 60 IN TXT "v=spf1 a -all"',
    // The PTR of the faulty host names this host, whose address is another one: not forward-confirmed.
    'elsewhere.faulty.test. 60 IN A 192.0.2.99',
    '_loop.faulty.test. 60 IN TXT "v=spf1 include:_loop2.faulty.test -all"',
    '_loop2.faulty.test. 60 IN TXT "v=spf1 include:_loop.faulty.test -all"',
    '_void.faulty.test. 60 IN TXT "v=spf1 include:_none1.faulty.test include:_none2.faulty.test include:_none3.faulty.test -all"',
    '_redir.faulty.test. 60 IN TXT "v=spf1 mx redirect=_s2.faulty.test"',
  ];
  const ca = await makeTestCa(join(dir, 'ca'));
  caPem = ca.certPem;
  const now = Date.now();
  const web = await ca.issue('mta-sts', ['mta-sts.clean.test', 'mta-sts.faulty.test'], new Date(now - 86_400_000), new Date(now + 60 * 86_400_000));
  const policies: Record<string, string> = { 'mta-sts.clean.test': renderMtaStsPolicy(cleanStack), 'mta-sts.faulty.test': renderMtaStsPolicy(faultyStack) };
  https = createServer({ cert: web.cert, key: web.key }, (req, res) => {
    const policy = policies[(req.headers.host ?? '').split(':')[0]!];
    if (req.url !== '/.well-known/mta-sts.txt' || !policy) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(policy);
  });
  httpsPort = await new Promise<number>((resolve) => https!.listen(0, '127.0.0.1', () => resolve((https!.address() as { port: number }).port)));

  const zones = [
    zone('clean.test', clean.dnsPlan.records),
    zone('faulty.test', faultyRecords, spfChain),
    { origin: '2.0.192.in-addr.arpa', text: `${renderZoneFile([], soa('2.0.192.in-addr.arpa'))}10 60 IN PTR mail.clean.test.\n20 60 IN PTR elsewhere.faulty.test.\n` },
    { origin: '8.b.d.0.1.0.0.2.ip6.arpa', text: `${renderZoneFile([], soa('8.b.d.0.1.0.0.2.ip6.arpa'))}${reversedIp('2001:db8::10')}.ip6.arpa. 60 IN PTR mail.clean.test.\n` },
    { origin: 'zen.bl.test', text: `${renderZoneFile([], soa('zen.bl.test'))}${reversedIp('192.0.2.20')}.zen.bl.test. 60 IN A 127.0.0.2\n${reversedIp('192.0.2.20')}.zen.bl.test. 60 IN TXT "https://check.spamhaus.org/query/ip/192.0.2.20"\n` },
    { origin: 'refuse.bl.test', text: `${renderZoneFile([], soa('refuse.bl.test'))}*.refuse.bl.test. 60 IN A 127.255.255.254\n` },
    { origin: 'dbl.bl.test', text: renderZoneFile([], soa('dbl.bl.test')) },
  ];
  knot = await startKnot(join(dir, 'knot'), zones);
  unbound = await startUnbound(join(dir, 'unbound'), knot.port, zones.map((z) => z.origin));
});

after(async () => {
  await unbound?.stop();
  await knot?.stop();
  await new Promise<void>((r) => (https ? https.close(() => r()) : r()));
  await rm(dir, { recursive: true, force: true });
});

function options(lists: DnsblList[]) {
  const resolver = dnsResolver({ servers: [`127.0.0.1:${unbound!.port}`], timeoutMs: 2000, tries: 2 });
  return {
    groups: ['dns', 'ptr', 'dnsbl'] as const,
    resolver,
    fetchText: httpsFetcher({ ca: caPem, connectTo: { host: '127.0.0.1', port: httpsPort } }),
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
  const resolver = dnsResolver({ servers: [`127.0.0.1:${unbound!.port}`] });
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

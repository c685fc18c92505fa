// The DNS plan: the records a domain needs, checked by a real verifier (mailauth evaluates the planned SPF, DKIM
// and DMARC records through a resolver that answers from the plan, TXT split as DNS would carry it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { authenticate, dkimSign, type DNSResolver } from 'mailauth';
import { parseStackConfig, type StackConfig } from '../../src/plan/stack-config.ts';
import { planDns, certificateNames, type DnsFacts } from '../../src/plan/dns-plan.ts';
import { dkimSelectors, dkimPublicValue } from '../../src/plan/dkim.ts';
import { txtChunks, type DnsRecord } from '../../src/plan/dns-records.ts';
import { mtaStsPolicyId, renderMtaStsPolicy } from '../../src/plan/client-config.ts';

const HASH = '$argon2id$v=19$m=65536,t=3,p=4$mvibF0f8r3Oi6Ya+maJY+g$Xw93yVX4V6lqABw/klOXpMuqPUzzpnQxlkWCz2247lY';

function stack(extra: Record<string, unknown> = {}): StackConfig {
  const r = parseStackConfig({
    domain: 'example.com', region: 'fra1', adminCidrs: ['203.0.113.7/32'],
    sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4BG3e7eRd5fUpjQd75+0ge/aYVk5zz8kkt47geJtmy a@b',
    users: [{ address: 'alice@example.com', passwordHash: HASH }], ...extra,
  });
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  return r.value;
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const spki = (k: typeof rsa.publicKey): string => k.export({ type: 'spki', format: 'der' }).toString('base64');

function facts(s: StackConfig, ipv6?: string): DnsFacts {
  return {
    ipv4: '192.0.2.10', ...(ipv6 ? { ipv6 } : {}),
    dkim: [
      { selector: 'postern-rsa', algorithm: 'rsa-sha256', publicKey: spki(rsa.publicKey) },
      { selector: 'postern-ed25519', algorithm: 'ed25519-sha256', publicKey: spki(ed.publicKey) },
    ],
    mtaStsPolicyId: mtaStsPolicyId(renderMtaStsPolicy(s)),
  };
}

const show = (r: DnsRecord): string => {
  switch (r.type) {
    case 'MX': return `${r.name} MX ${r.priority} ${r.value}`;
    case 'SRV': return `${r.name} SRV ${r.priority} ${r.weight} ${r.port} ${r.target}`;
    case 'CAA': return `${r.name} CAA ${r.flags} ${r.tag} ${r.value}`;
    default: return `${r.name} ${r.type} ${r.value}`;
  }
};

test('the plan for a default stack lists every record a mail domain needs', () => {
  const s = stack();
  const plan = planDns(s, facts(s, '2001:DB8:0:0::10'));
  const id = mtaStsPolicyId(renderMtaStsPolicy(s));
  const lines = plan.records.map(show).filter((l) => !l.includes('._domainkey.'));
  assert.deepEqual(lines, [
    'mail.example.com A 192.0.2.10',
    'mail.example.com AAAA 2001:db8::10',
    'example.com MX 10 mail.example.com',
    'example.com TXT v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all',
    'mail.example.com TXT v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all',
    '_dmarc.example.com TXT v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com',
    `_mta-sts.example.com TXT v=STSv1; id=${id}`,
    'mta-sts.example.com A 192.0.2.10',
    'mta-sts.example.com AAAA 2001:db8::10',
    '_smtp._tls.example.com TXT v=TLSRPTv1; rua=mailto:postmaster@example.com',
    '_submissions._tcp.example.com SRV 0 1 465 mail.example.com',
    '_submission._tcp.example.com SRV 0 1 587 mail.example.com',
    '_imaps._tcp.example.com SRV 0 1 993 mail.example.com',
    '_pop3s._tcp.example.com SRV 0 1 995 mail.example.com',
    '_imap._tcp.example.com SRV 0 0 0 .',
    '_pop3._tcp.example.com SRV 0 0 0 .',
    '_autodiscover._tcp.example.com SRV 0 1 443 mail.example.com',
    'autoconfig.example.com A 192.0.2.10',
    'autoconfig.example.com AAAA 2001:db8::10',
    'autodiscover.example.com A 192.0.2.10',
    'autodiscover.example.com AAAA 2001:db8::10',
    'mail.example.com CAA 0 issue letsencrypt.org',
    'mta-sts.example.com CAA 0 issue letsencrypt.org',
    'autoconfig.example.com CAA 0 issue letsencrypt.org',
    'autodiscover.example.com CAA 0 issue letsencrypt.org',
  ]);
  assert.deepEqual(plan.ptr, [
    { address: '192.0.2.10', reverseName: '10.2.0.192.in-addr.arpa', target: 'mail.example.com' },
    { address: '2001:db8::10', reverseName: '0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', target: 'mail.example.com' },
  ]);
  assert.deepEqual(plan.owned.filter((o) => o.name === 'example.com'), [
    { name: 'example.com', type: 'MX' }, { name: 'example.com', type: 'TXT', valuePrefix: 'v=spf1' },
  ]);
  assert.deepEqual(certificateNames(s), ['mail.example.com', 'mta-sts.example.com', 'autoconfig.example.com', 'autodiscover.example.com']);
});

test('options change the plan: plaintext ports, relay include, no IPv6, strict DMARC, custom CA', () => {
  const s = stack({
    plaintextPorts: true, ipv6: false, dmarc: { policy: 'reject', subdomainPolicy: 'reject', reportAddress: 'dmarc@example.com' },
    aliases: { 'dmarc@example.com': 'alice@example.com' },
    relay: { host: 'smtp.relay.example', spfInclude: '_spf.relay.example' },
    acme: { ca: 'https://ca.example.net/dir', caaIdentity: 'ca.example.net' }, dnsTtl: 300,
  });
  const lines = planDns(s, facts(s, '2001:db8::10')).records.map(show);
  assert.ok(lines.includes('_imap._tcp.example.com SRV 0 1 143 mail.example.com'));
  assert.ok(lines.includes('_pop3._tcp.example.com SRV 0 1 110 mail.example.com'));
  assert.ok(lines.includes('example.com TXT v=spf1 ip4:192.0.2.10 include:_spf.relay.example -all'));
  assert.ok(lines.includes('_dmarc.example.com TXT v=DMARC1; p=reject; sp=reject; rua=mailto:dmarc@example.com'));
  assert.ok(lines.includes('mail.example.com CAA 0 issue ca.example.net'));
  assert.ok(!lines.some((l) => / AAAA /.test(l)), 'no AAAA when ipv6 is off');
  assert.ok(planDns(s, facts(s)).records.every((r) => r.ttl === 300));
});

test('DKIM keys: RSA publishes the SPKI, Ed25519 the raw 32 bytes; a missing or wrong key is refused', () => {
  const s = stack();
  const dkim = planDns(s, facts(s)).records.filter((r) => r.name.includes('._domainkey.')).map(show);
  const edRaw = ed.publicKey.export({ type: 'spki', format: 'der' }).subarray(12).toString('base64');
  assert.deepEqual(dkim, [
    `postern-rsa._domainkey.example.com TXT v=DKIM1; k=rsa; p=${spki(rsa.publicKey)}`,
    `postern-ed25519._domainkey.example.com TXT v=DKIM1; k=ed25519; p=${edRaw}`,
  ]);
  assert.equal(dkimPublicValue('x', 'ed25519-sha256', edRaw), edRaw, 'a p= value is taken as is');
  assert.equal(dkimPublicValue('x', 'rsa-sha256', rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string), spki(rsa.publicKey));
  assert.throws(() => planDns(s, { ...facts(s), dkim: [] }), { message: 'planDns: no public key given for DKIM selector postern-rsa (rsa-sha256)' });
  assert.throws(() => dkimPublicValue('postern-ed25519', 'ed25519-sha256', spki(rsa.publicKey)),
    { message: 'DKIM key for selector postern-ed25519: expected an Ed25519 public key (32 bytes raw or 44 bytes SPKI), found 294 bytes' });
  const pending = planDns(s, { ...facts(s), dkim: [], allowMissingDkim: true });
  assert.deepEqual(pending.pendingDkim.map((p) => p.name), ['postern-rsa._domainkey.example.com', 'postern-ed25519._domainkey.example.com']);
  assert.deepEqual(dkimSelectors(stack({ dkim: { selectorPrefix: 's2027', ed25519: false } })), [{ selector: 's2027-rsa', algorithm: 'rsa-sha256', rsaBits: 2048 }]);
});

test('bad facts are refused with a clear message', () => {
  const s = stack();
  assert.throws(() => planDns(s, { ...facts(s), ipv4: '2001:db8::1' }), { message: 'planDns: ipv4 "2001:db8::1" is not an IPv4 address' });
  assert.throws(() => planDns(s, { ...facts(s), ipv6: '192.0.2.1' }), { message: 'planDns: ipv6 "192.0.2.1" is not an IPv6 address' });
  assert.throws(() => planDns(s, { ...facts(s), mtaStsPolicyId: 'has space' }), { message: 'planDns: MTA-STS policy id "has space" must be 1-32 letters or digits' });
});

/** A resolver answering from planned records the way node:dns does (TXT as chunk arrays). */
function planResolver(records: DnsRecord[]): DNSResolver {
  // MX answers are objects, as from node:dns; mailauth's type only lists the TXT shapes.
  return (async (name: string, type: string): Promise<unknown[]> => {
    const found = records.filter((r) => r.name === name.toLowerCase().replace(/\.$/, '') && r.type === type);
    if (found.length === 0) throw Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' });
    return found.map((r) => {
      switch (r.type) {
        case 'TXT': return txtChunks(r.value);
        case 'MX': return { exchange: r.value, priority: r.priority };
        case 'A': case 'AAAA': case 'CNAME': return r.value;
        default: return r;
      }
    });
  }) as DNSResolver;
}

const message = Buffer.from([
  'From: Alice <alice@example.com>', 'To: bob@example.org', 'Subject: hello', 'Date: Sat, 28 Nov 2026 12:00:00 +0000',
  'Message-ID: <plan-test@example.com>', '', 'Hello Bob.', '',
].join('\r\n'));

for (const bits of [2048, 4096] as const) {
  test(`mailauth verifies SPF, both DKIM signatures and DMARC against the planned records (RSA ${bits})`, async () => {
    const key = bits === 2048 ? rsa : generateKeyPairSync('rsa', { modulusLength: bits });
    const s = stack({ dkim: { rsaBits: bits } });
    const f = facts(s, '2001:db8::10');
    f.dkim[0]!.publicKey = spki(key.publicKey);
    const plan = planDns(s, f);
    const resolver = planResolver(plan.records);
    const rsaSignature = { signingDomain: 'example.com', selector: 'postern-rsa', privateKey: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
    // With signatureData, mailauth signs each entry (the top-level fields are not used on their own).
    const signed = await dkimSign(message, {
      ...rsaSignature, canonicalization: 'relaxed/relaxed',
      signatureData: [
        rsaSignature,
        { signingDomain: 'example.com', selector: 'postern-ed25519', privateKey: ed.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string },
      ],
    });
    assert.deepEqual(signed.errors, []);
    const input = Buffer.concat([Buffer.from(signed.signatures), message]);
    const res = await authenticate(input, { ip: '192.0.2.10', helo: 'mail.example.com', sender: 'alice@example.com', mta: 'mx.example.org', resolver });
    assert.ok(res.spf && res.dmarc);
    assert.equal(res.spf.status.result, 'pass');
    assert.deepEqual(res.dkim.results.map((r) => `${r.signingDomain} ${r.selector} ${r.status.result}`),
      ['example.com postern-rsa pass', 'example.com postern-ed25519 pass']);
    assert.equal(res.dmarc.status.result, 'pass');
    // From another address the same records say fail: the SPF really names the host.
    const other = await authenticate(input, { ip: '198.51.100.1', helo: 'mail.example.com', sender: 'alice@example.com', mta: 'mx.example.org', resolver });
    assert.ok(other.spf);
    assert.equal(other.spf.status.result, 'fail');
  });
}

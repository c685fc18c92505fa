// Stack config validation: every problem at once, each naming the key path, the value found and what was expected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseStackConfig, parseStackFile, type StackConfig } from '../../src/plan/stack-config.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const HASH = '$argon2id$v=19$m=65536,t=3,p=4$mvibF0f8r3Oi6Ya+maJY+g$Xw93yVX4V6lqABw/klOXpMuqPUzzpnQxlkWCz2247lY';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4BG3e7eRd5fUpjQd75+0ge/aYVk5zz8kkt47geJtmy admin@example.com';

function valid(): Record<string, unknown> {
  return {
    domain: 'example.com', region: 'fra1', adminCidrs: ['203.0.113.7/32'], sshPublicKey: KEY,
    users: [{ address: 'alice@example.com', name: 'Alice', passwordHash: HASH, quota: '2GB' }],
  };
}

function ok(input: unknown): StackConfig {
  const r = parseStackConfig(input);
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  return r.value;
}

function errors(patch: (c: Record<string, unknown>) => void): string[] {
  const c = valid();
  patch(c);
  const r = parseStackConfig(c);
  assert.equal(r.ok, false, 'expected the config to be refused');
  return r.ok ? [] : r.errors;
}

const user = (c: Record<string, unknown>, i = 0) => (c.users as Record<string, unknown>[])[i]!;

test('a minimal config gets every default', () => {
  const s = ok(valid());
  assert.equal(s.hostname, 'mail.example.com');
  assert.equal(s.size, 's-1vcpu-1gb');
  assert.deepEqual(s.dkim, { selectorPrefix: 'postern', rsa: true, rsaBits: 2048, ed25519: true });
  assert.deepEqual(s.dmarc, { policy: 'quarantine', reportAddress: 'postmaster@example.com', inboundRejectAction: 'reject' });
  assert.equal(s.logLevel, 'info');
  assert.deepEqual(s.mtaSts, { mode: 'testing', maxAge: 604800 });
  assert.deepEqual(s.tlsRpt, { reportAddress: 'postmaster@example.com' });
  assert.deepEqual(s.acme, { ca: 'production', directoryUrl: 'https://acme-v02.api.letsencrypt.org/directory', email: 'postmaster@example.com', caaIdentity: 'letsencrypt.org' });
  assert.equal(s.users[0]!.quotaBytes, 2_000_000_000);
  assert.equal(s.plaintextPorts, false);
  assert.equal(s.ephemeral, false);
  assert.equal(s.relay, undefined);
});

test('an internationalised domain is stored as its A-label, addresses too', () => {
  const c = valid();
  c.domain = 'Bücher.DE';
  c.users = [{ address: 'anna@bücher.de', passwordHash: HASH }];
  c.aliases = { '@bücher.de': 'anna@xn--bcher-kva.de' };
  const s = ok(c);
  assert.equal(s.domain, 'xn--bcher-kva.de');
  assert.equal(s.hostname, 'mail.xn--bcher-kva.de');
  assert.equal(s.users[0]!.address, 'anna@xn--bcher-kva.de');
  assert.deepEqual(s.aliases, [{ from: '@xn--bcher-kva.de', to: ['anna@xn--bcher-kva.de'] }]);
});

test('ephemeral stacks use the staging CA unless told otherwise; a custom CA needs its CAA identity', () => {
  assert.equal(ok({ ...valid(), ephemeral: true }).acme.directoryUrl, 'https://acme-staging-v02.api.letsencrypt.org/directory');
  const custom = ok({ ...valid(), acme: { ca: 'https://localhost:14000/dir', caaIdentity: 'pebble.test' } }).acme;
  assert.deepEqual(custom, { ca: 'https://localhost:14000/dir', directoryUrl: 'https://localhost:14000/dir', email: 'postmaster@example.com', caaIdentity: 'pebble.test' });
});

test('relay password: an encrypted {secure} value from the stack file or a plain one from the program', () => {
  assert.deepEqual(ok({ ...valid(), relay: { host: 'smtp.relay.example', username: 'u', password: { secure: 'v1:abc' } } }).relay,
    { host: 'smtp.relay.example', port: 587, username: 'u', password: { secure: 'v1:abc' } });
  assert.deepEqual(ok({ ...valid(), relay: { host: 'smtp.relay.example', port: 465, username: 'u', password: 'pw', spfInclude: '_spf.relay.example' } }).relay,
    { host: 'smtp.relay.example', port: 465, username: 'u', password: { plaintext: 'pw' }, spfInclude: '_spf.relay.example' });
});

test('SSH from anywhere is allowed only when asked for', () => {
  assert.deepEqual(ok({ ...valid(), adminCidrs: ['0.0.0.0/0', '::/0'], allowSshFromAnywhere: true }).adminCidrs, ['0.0.0.0/0', '::/0']);
  assert.deepEqual(ok({ ...valid(), adminCidrs: ['198.51.100.9', '2001:DB8:0::/48'] }).adminCidrs, ['198.51.100.9/32', '2001:db8::/48']);
});

// Each case: a change to a valid config, and the exact list of errors it must produce.
const invalid: [string, (c: Record<string, unknown>) => void, string[]][] = [
  ['domain missing', (c) => { delete c.domain; }, ['postern:domain: found nothing; expected a domain name like example.com']],
  ['domain not a name', (c) => { c.domain = 'exa mple.com'; }, ['postern:domain: found "exa mple.com"; expected a domain name like example.com']],
  ['domain a single label', (c) => { c.domain = 'localhost'; c.users = [{ address: 'a@localhost', passwordHash: HASH }]; }, [
    'postern:domain: found "localhost"; expected a domain name like example.com',
    'postern:users[0].address: found "a@localhost"; expected an email address like name@example.com',
  ]],
  ['domain a number', (c) => { c.domain = 42; }, ['postern:domain: found 42; expected a domain name like example.com']],
  ['hostname outside the domain', (c) => { c.hostname = 'mail.example.net'; }, [
    'postern:hostname: found "mail.example.net"; expected a host name below example.com (Postern publishes its address in that zone), like mail.example.com',
  ]],
  ['hostname taken by a policy host', (c) => { c.hostname = 'mta-sts.example.com'; }, [
    'postern:hostname: found "mta-sts.example.com"; expected a name other than mta-sts.example.com, autoconfig.example.com, autodiscover.example.com (Postern publishes those itself), like mail.example.com',
  ]],
  ['region misspelt', (c) => { c.region = 'Frankfurt'; }, ['postern:region: found "Frankfurt"; expected a DigitalOcean region slug like fra1 or nyc3']],
  ['size not a slug', (c) => { c.size = 'large'; }, ['postern:size: found "large"; expected a DigitalOcean droplet size slug like s-1vcpu-1gb']],
  ['adminCidrs empty', (c) => { c.adminCidrs = []; }, ['postern:adminCidrs: found []; expected at least one CIDR block allowed to reach SSH, like ["203.0.113.7/32"]']],
  ['adminCidrs a string', (c) => { c.adminCidrs = '203.0.113.7/32'; }, [
    'postern:adminCidrs: found "203.0.113.7/32"; expected a list of CIDR blocks allowed to reach SSH, like ["203.0.113.7/32"]',
  ]],
  ['adminCidrs with host bits', (c) => { c.adminCidrs = ['203.0.113.7/24']; }, [
    'postern:adminCidrs[0]: found "203.0.113.7/24"; expected a network address: host bits are set (did you mean "203.0.113.0/24"?)',
  ]],
  ['adminCidrs prefix too long', (c) => { c.adminCidrs = ['203.0.113.7/33']; }, ['postern:adminCidrs[0]: found "203.0.113.7/33"; expected a prefix length from 0 to 32 after "/"']],
  ['adminCidrs not an address', (c) => { c.adminCidrs = ['10.0.0.0/8', 'office']; }, [
    'postern:adminCidrs[1]: found "office"; expected an IPv4 or IPv6 CIDR block like 203.0.113.0/24 or 2001:db8::/48',
  ]],
  ['SSH from anywhere without the switch', (c) => { c.adminCidrs = ['0.0.0.0/0', '::/0']; }, [
    'postern:adminCidrs[0]: found "0.0.0.0/0"; expected your own address block: SSH from anywhere is refused unless postern:allowSshFromAnywhere is true',
    'postern:adminCidrs[1]: found "::/0"; expected your own address block: SSH from anywhere is refused unless postern:allowSshFromAnywhere is true',
  ]],
  ['sshPublicKey is a private key', (c) => { c.sshPublicKey = '-----BEGIN OPENSSH PRIVATE KEY-----'; }, [
    'postern:sshPublicKey: found "-----BEGIN OPENSSH PRIVATE KEY-----"; expected an OpenSSH public key line like "ssh-ed25519 AAAA... you@laptop"',
  ]],
  ['sshPublicKey whose blob is of another type', (c) => { c.sshPublicKey = 'ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIB4BG3e7eRd5fUpjQd75+0ge/aYVk5zz8kkt47geJtmy me'; }, [
    // Long values are cut at 80 characters in messages.
    'postern:sshPublicKey: found "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIB4BG3e7eRd5fUpjQd75+0ge/aYVk5zz8kkt47geJtmy...; expected an OpenSSH public key line like "ssh-ed25519 AAAA... you@laptop"',
  ]],
  ['no users', (c) => { c.users = []; }, ['postern:users: found []; expected at least one user']],
  ['user address in another domain', (c) => { user(c).address = 'alice@example.net'; }, ['postern:users[0].address: found "alice@example.net"; expected an address @example.com']],
  ['user address malformed', (c) => { user(c).address = 'alice'; }, ['postern:users[0].address: found "alice"; expected an email address like name@example.com']],
  ['user key misspelt', (c) => { user(c).passwordHsh = user(c).passwordHash; delete user(c).passwordHash; }, [
    'postern:users[0].passwordHash: found nothing; expected an argon2id PHC string like $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>',
    'postern:users[0].passwordHsh: unknown key (did you mean "passwordHash"?)',
  ]],
  ['password in clear instead of a hash', (c) => { user(c).passwordHash = 'hunter2'; }, [
    'postern:users[0].passwordHash: found "hunter2"; expected an argon2id PHC string like $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>',
  ]],
  ['bcrypt hash', (c) => { user(c).passwordHash = '$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234'; }, [
    'postern:users[0].passwordHash: found "$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"; expected an argon2id PHC string like $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>',
  ]],
  ['quota unreadable', (c) => { user(c).quota = 'lots'; }, ['postern:users[0].quota: found "lots"; expected a size like "2GB", "500MiB" or a number of bytes (0 = unlimited)']],
  ['duplicate user', (c) => { c.users = [user(c), { ...user(c), address: 'Alice@example.com' }]; }, [
    'postern:users[1].address: found "Alice@example.com"; expected each user once (duplicate address)',
  ]],
  ['alias to a mailbox that does not exist', (c) => { c.aliases = { 'sales@example.com': ['alice@example.com', 'bob@example.com'] }; }, [
    'postern:aliases["sales@example.com"][1]: found "bob@example.com"; expected a user or alias of example.com (no such mailbox)',
  ]],
  ['catch-all for another domain', (c) => { c.aliases = { '@example.net': 'alice@example.com' }; }, [
    'postern:aliases["@example.net"]: found "@example.net" as alias; expected "@example.com" for a catch-all',
  ]],
  ['alias shadows a user', (c) => { c.aliases = { 'alice@example.com': 'someone@example.org' }; }, [
    'postern:aliases["alice@example.com"]: found "alice@example.com" as alias; expected an address that is not also a user',
  ]],
  ['alias with an empty target list', (c) => { c.aliases = { 'sales@example.com': [] }; }, [
    'postern:aliases["sales@example.com"]: found []; expected at least one target address',
  ]],
  ['aliases in a loop', (c) => { c.aliases = { 'a@example.com': 'b@example.com', 'b@example.com': ['alice@example.com', 'a@example.com'] }; }, [
    'postern:aliases["a@example.com"]: found a loop a@example.com → b@example.com → a@example.com; expected aliases that end at users or outside addresses',
  ]],
  ['the same alias twice', (c) => { c.aliases = { 'sales@example.com': 'alice@example.com', 'Sales@example.com': 'alice@example.com' }; }, [
    'postern:aliases["Sales@example.com"]: found "Sales@example.com" as alias; expected each alias once (addresses are case-insensitive)',
  ]],
  ['dmarc policy misspelt', (c) => { c.dmarc = { policy: 'rejct' }; }, ['postern:dmarc.policy: found "rejct"; expected one of "none", "quarantine", "reject" (did you mean "reject"?)']],
  ['dmarc report address malformed', (c) => { c.dmarc = { reportAddress: 'mailto:dmarc@example.com' }; }, [
    'postern:dmarc.reportAddress: found "mailto:dmarc@example.com"; expected an email address like name@example.com',
  ]],
  ['reports to a local mailbox that does not exist', (c) => { c.dmarc = { reportAddress: 'dmarc@example.com' }; c.tlsRpt = { reportAddress: 'tls@example.com' }; }, [
    'postern:dmarc.reportAddress: found "dmarc@example.com"; expected a user or alias of example.com (no such mailbox)',
    'postern:tlsRpt.reportAddress: found "tls@example.com"; expected a user or alias of example.com (no such mailbox)',
  ]],
  ['mtaSts mode unknown', (c) => { c.mtaSts = { mode: 'strict' }; }, ['postern:mtaSts.mode: found "strict"; expected one of "none", "testing", "enforce"']],
  ['mtaSts maxAge too long', (c) => { c.mtaSts = { maxAge: '400d' }; }, ['postern:mtaSts.maxAge: found "400d"; expected a duration from 1 day to 1 year, like "7d" or 604800 (seconds)']],
  ['dkim with no key at all', (c) => { c.dkim = { rsa: false, ed25519: false }; }, [
    'postern:dkim: found rsa false and ed25519 false; expected at least one DKIM key (rsa is the one every verifier understands)',
  ]],
  ['dkim selector typo', (c) => { c.dkim = { selector: 's1' }; }, ['postern:dkim.selector: unknown key (did you mean "selectorPrefix"?)']],
  ['dkim RSA size', (c) => { c.dkim = { rsaBits: 1024 }; }, ['postern:dkim.rsaBits: found 1024; expected 2048, 3072 or 4096']],
  ['dkim selector not a label', (c) => { c.dkim = { selectorPrefix: 'My_Selector' }; }, [
    'postern:dkim.selectorPrefix: found "My_Selector"; expected a DNS label like "postern" or "s2026" (lower-case letters, digits, hyphens; at most 42 characters)',
  ]],
  ['relay without host', (c) => { c.relay = { port: 587 }; }, ['postern:relay.host: found nothing; expected the relay\'s host name like smtp.relay.example']],
  ['relay password without user name', (c) => { c.relay = { host: 'smtp.relay.example', password: { secure: 'v1:x' } }; }, [
    'postern:relay.username: found nothing; expected a user name to go with postern:relay.password',
  ]],
  ['relay port out of range', (c) => { c.relay = { host: 'smtp.relay.example', port: 70000 }; }, ['postern:relay.port: found 70000; expected a port number (587 or 465 usually)']],
  ['acme ca misspelt', (c) => { c.acme = { ca: 'prodution' }; }, [
    'postern:acme.ca: found "prodution"; expected "production", "staging" or an https:// ACME directory URL (did you mean "production"?)',
  ]],
  ['acme custom CA without CAA identity', (c) => { c.acme = { ca: 'https://ca.internal.example/directory' }; }, [
    'postern:acme.caaIdentity: found nothing; expected the CA\'s CAA issuer domain (required when postern:acme.ca is a URL)',
  ]],
  ['acme over plain http', (c) => { c.acme = { ca: 'http://ca.example/dir', caaIdentity: 'ca.example' }; }, [
    'postern:acme.ca: found "http://ca.example/dir"; expected "production", "staging" or an https:// ACME directory URL',
  ]],
  ['boolean given as a string', (c) => { c.ephemeral = 'yes'; }, ['postern:ephemeral: found "yes"; expected true or false (a test stack: no deletion protection, staging CA by default)']],
  ['unknown top-level key with a near name', (c) => { c.plaintextPort = true; }, ['postern:plaintextPort: unknown key (did you mean "plaintextPorts"?)']],
  ['unknown top-level key with no near name', (c) => { c.webmailTheme = 'dark'; }, ['postern:webmailTheme: unknown key']],
  ['zoneId malformed', (c) => { c.zoneId = 'example.com'; }, ['postern:zoneId: found "example.com"; expected a Cloudflare zone id (32 hex digits)']],
  ['log level unknown', (c) => { c.logLevel = 'verbose'; }, ['postern:logLevel: found "verbose"; expected one of "trace", "debug", "info", "warn", "error", "fatal"']],
  ['inbound DMARC action unknown', (c) => { c.dmarc = { inboundRejectAction: 'junkk' }; }, [
    'postern:dmarc.inboundRejectAction: found "junkk"; expected one of "reject", "junk" (did you mean "junk"?)',
  ]],
  ['message size too small', (c) => { c.maxMessageSize = '10KB'; }, ['postern:maxMessageSize: found "10KB"; expected a size from 1MiB to 1GiB, like "50MB"']],
];

for (const [name, patch, expected] of invalid) {
  test(`refused: ${name}`, () => { assert.deepEqual(errors(patch), expected); });
}

test('an unreadable user does not shift the positions named for the others', () => {
  const errs = errors((c) => { c.users = [{ address: 'x' }, { ...user(c), address: 'bob@example.org' }]; });
  assert.deepEqual(errs, [
    'postern:users[0].address: found "x"; expected an email address like name@example.com',
    'postern:users[0].passwordHash: found nothing; expected an argon2id PHC string like $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>',
    'postern:users[1].address: found "bob@example.org"; expected an address @example.com',
  ]);
});

test('every problem is reported at once', () => {
  const errs = errors((c) => {
    c.region = 'mars'; c.adminCidrs = ['0.0.0.0/0']; user(c).address = 'alice@example.net'; c.dmarc = { policy: 'strict' }; c.tlsrpt = {};
  });
  assert.deepEqual(errs, [
    'postern:region: found "mars"; expected a DigitalOcean region slug like fra1 or nyc3',
    'postern:dmarc.policy: found "strict"; expected one of "none", "quarantine", "reject"',
    'postern:tlsrpt: unknown key (did you mean "tlsRpt"?)',
    'postern:adminCidrs[0]: found "0.0.0.0/0"; expected your own address block: SSH from anywhere is refused unless postern:allowSshFromAnywhere is true',
    'postern:users[0].address: found "alice@example.net"; expected an address @example.com',
  ]);
});

test('not a map at all', () => {
  assert.deepEqual(parseStackConfig(null), { ok: false, errors: ['postern: found null; expected a map of postern:* keys'] });
});

test('the example stack validates', () => {
  const r = parseStackFile(readFileSync(join(ROOT, 'stacks', 'Pulumi.example.yaml'), 'utf8'));
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  assert.equal(r.value.domain, 'example.com');
  assert.equal(r.value.users[0]!.address, 'alice@example.com');
});

test('stack files: provider keys are left alone, bare keys and bad YAML are refused', () => {
  const head = 'config:\n  digitalocean:token:\n    secure: v1:abc\n  cloudflare:apiToken:\n    secure: v1:def\n';
  const body = `  postern:domain: example.com\n  postern:region: fra1\n  postern:adminCidrs: [203.0.113.7/32]\n  postern:sshPublicKey: ${KEY}\n` +
    `  postern:users:\n    - address: alice@example.com\n      passwordHash: ${HASH}\n`;
  assert.ok(parseStackFile(head + body).ok);
  assert.deepEqual(parseStackFile(`${head + body}  size: s-2vcpu-4gb\n`), {
    ok: false, errors: ['size: unknown key (Pulumi config keys are namespaced: did you mean "postern:size"?)'],
  });
  assert.deepEqual(parseStackFile('config: [1, 2]\n'), { ok: false, errors: ['config: found [1,2]; expected a map of postern:* keys'] });
  const bad = parseStackFile('config:\n  postern:domain: [\n');
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : bad.errors[0]!, /^stack file: not valid YAML: /);
  assert.deepEqual(parseStackFile(`${head + body.replace(`postern:sshPublicKey: ${KEY}`, 'postern:sshPublicKey:\n    secure: v1:abc')}`), {
    ok: false, errors: ['postern:sshPublicKey: found an encrypted value; expected a plain value (only postern:relay.password is a secret: set this key without --secret)'],
  });
  assert.ok(parseStackFile(`${head + body}  postern:relay:\n    host: smtp.relay.example\n    username: u\n    password:\n      secure: v1:abc\n`).ok);
  const dup = parseStackFile('config:\n  postern:domain: a.example\n  postern:domain: b.example\n');
  assert.match(dup.ok ? '' : dup.errors[0]!, /^stack file: not valid YAML: Map keys must be unique/);
});

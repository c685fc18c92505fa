// `postern dns plan` prints a zone that Debian's `named-checkzone` (BIND 9) loads without a single complaint.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDebianPackages } from '../support/debian.ts';
import { runPosternCli } from '../support/postern-cli.ts';

ensureDebianPackages(['bind9-utils']);

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const postern = (args: string[]) => runPosternCli(args, { cwd: ROOT });

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'postern-dns-plan-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

/** Runs named-checkzone with every integrity check on; any line besides "loaded serial" and "OK" is a complaint. */
async function checkZone(origin: string, text: string): Promise<void> {
  const file = join(dir, `${origin}.zone`);
  await writeFile(file, text);
  const r = spawnSync('named-checkzone', ['-i', 'full', '-k', 'fail', '-m', 'fail', '-M', 'fail', '-n', 'fail', '-r', 'fail', '-S', 'fail', '-T', 'warn', origin, file], { encoding: 'utf8' });
  const complaints = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l && !/^zone \S+: loaded serial \d+$/.test(l) && l !== 'OK');
  assert.deepEqual(complaints, [], `named-checkzone complained:\n${r.stdout}${r.stderr}`);
  assert.equal(r.status, 0);
}

test('postern dns plan --stack example passes named-checkzone and marks unknown values', async () => {
  const r = await postern(['dns', 'plan', '--stack', 'example']);
  assert.equal(r.code, 0, r.stderr);
  await checkZone('example.com', r.stdout);
  assert.match(r.stdout, /^mail\.example\.com\.\s+3600 IN A\s+192\.0\.2\.1 ; unknown until deploy$/m);
  assert.match(r.stdout, /^; Unknown until deploy/m);
  assert.match(r.stdout, /^;\s+postern-rsa\._domainkey\.example\.com\. 3600 IN TXT "v=DKIM1; k=rsa; p=<public key>"$/m);
  assert.match(r.stdout, /^example\.com\.\s+3600 IN MX\s+10 mail\.example\.com\.$/m);
  assert.match(r.stdout, /^_imap\._tcp\.example\.com\.\s+3600 IN SRV\s+0 0 0 \.$/m);
});

test('with every fact given, a 4096-bit RSA DKIM record is split into 255-byte strings that named-checkzone loads', async () => {
  const stack = (await import('node:fs')).readFileSync(join(ROOT, 'stacks', 'Pulumi.example.yaml'), 'utf8')
    .replace('    rsa: true\n', '    rsa: true\n    rsaBits: 4096\n');
  await writeFile(join(dir, 'Pulumi.big.yaml'), stack);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 4096 });
  const ed = generateKeyPairSync('ed25519');
  await writeFile(join(dir, 'rsa.pem'), rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(join(dir, 'ed.pem'), ed.publicKey.export({ type: 'spki', format: 'pem' }));
  const r = await postern(['dns', 'plan', '--stack', 'big', '--stacks-dir', dir, '--ipv4', '203.0.113.25', '--ipv6', '2001:DB8:0:0::25',
    '--dkim-file', `postern-rsa=${join(dir, 'rsa.pem')}`, '--dkim-file', `postern-ed25519=${join(dir, 'ed.pem')}`,
    '--ns', 'ns1.dnshost.example', '--ns', 'ns2.dnshost.example']);
  assert.equal(r.code, 0, r.stderr);
  await checkZone('example.com', r.stdout);
  assert.doesNotMatch(r.stdout, /unknown until deploy/);
  assert.match(r.stdout, /^; All values are known/m);
  assert.match(r.stdout, /^mail\.example\.com\.\s+3600 IN AAAA\s+2001:db8::25$/m);
  const dkim = r.stdout.split('\n').find((l) => l.startsWith('postern-rsa._domainkey.'))!;
  const strings = [...dkim.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
  assert.ok(strings.length >= 3, 'a 4096-bit key needs at least three strings');
  assert.ok(strings.every((s) => Buffer.byteLength(s) <= 255));
  const spki = rsa.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  assert.equal(strings.join(''), `v=DKIM1; k=rsa; p=${spki}`);
  const edRaw = ed.publicKey.export({ type: 'spki', format: 'der' }).subarray(12).toString('base64');
  assert.match(r.stdout, new RegExp(`^postern-ed25519\\._domainkey\\.example\\.com\\.\\s+3600 IN TXT\\s+"v=DKIM1; k=ed25519; p=${edRaw.replace(/[+/]/g, '\\$&')}"$`, 'm'));
});

test('dns plan --format json lists records, ownership, PTR and what is still unknown', async () => {
  const r = await postern(['dns', 'plan', '--stack', 'example', '--format', 'json', '--ipv4', '203.0.113.25']);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout);
  assert.equal(plan.domain, 'example.com');
  assert.deepEqual(plan.records.find((x: { type: string; name: string }) => x.type === 'A' && x.name === 'mail.example.com'),
    { name: 'mail.example.com', type: 'A', ttl: 3600, value: '203.0.113.25' });
  assert.deepEqual(plan.records.find((x: { type: string; name: string }) => x.type === 'AAAA' && x.name === 'mail.example.com'),
    { name: 'mail.example.com', type: 'AAAA', ttl: 3600, value: '2001:db8::1', placeholder: true });
  assert.deepEqual(plan.ptr[0], { address: '203.0.113.25', reverseName: '25.113.0.203.in-addr.arpa', target: 'mail.example.com' });
  assert.deepEqual(plan.pendingDkim.map((p: { selector: string }) => p.selector), ['postern-rsa', 'postern-ed25519']);
  assert.ok(plan.owned.some((o: { name: string; type: string; valuePrefix?: string }) => o.name === 'example.com' && o.type === 'TXT' && o.valuePrefix === 'v=spf1'));
  const bad = await postern(['dns', 'plan', '--stack', 'example', '--format', 'yaml']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'postern dns: --format: expected "zone" or "json", got "yaml"\n');
});

test('named-checkzone catches a broken zone (the check can fail)', async () => {
  await assert.rejects(checkZone('example.com', '$ORIGIN example.com.\nexample.com. 3600 IN MX 10 mail.example.com.\n'));
});

test('dns plan refuses bad input with exit 2 and a clear message', async () => {
  const cases: [string[], string][] = [
    [['--stack', '../etc/passwd'], 'postern dns: --stack: "../etc/passwd" is not a stack name (letters, digits, ".", "-", "_")\n'],
    [['--stack', 'example', '--ipv4', '300.1.2.3'], 'postern dns: --ipv4: "300.1.2.3" is not an IPv4 address\n'],
    [['--stack', 'example', '--dkim-file', 'nosuch=/x'], 'postern dns: --dkim-file: expected <selector>=<key file> with selector one of postern-rsa, postern-ed25519; got "nosuch=/x"\n'],
  ];
  for (const [args, message] of cases) {
    const r = await postern(['dns', 'plan', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stderr, message);
  }
  await writeFile(join(dir, 'Pulumi.bad.yaml'), 'config:\n  postern:domain: example.com\n  postern:regoin: fra1\n');
  const r = await postern(['dns', 'plan', '--stack', 'bad', '--stacks-dir', dir]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /is not a valid stack:\n {2}postern:region: found nothing; expected a DigitalOcean region slug like fra1 or nyc3\n/);
  assert.match(r.stderr, /\n {2}postern:regoin: unknown key \(did you mean "region"\?\)\n/);
});

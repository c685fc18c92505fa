// `postern dns diff` against a real authoritative server (Knot DNS) serving one zone with planted drift and one
// zone in sync with the plan.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startKnot, type Knot } from '../support/knot.ts';
import { runPosternCli as postern } from '../support/postern-cli.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let dir: string;
let knot: Knot;
let facts: string[];
let rsaSpki: string;

const changeLines = (stdout: string): string[] => stdout.split('\n').filter((l) => /^[+~-] /.test(l));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-dns-diff-'));
  const example = await readFile(join(ROOT, 'stacks', 'Pulumi.example.yaml'), 'utf8');
  await writeFile(join(dir, 'Pulumi.drift.yaml'), example);
  await writeFile(join(dir, 'Pulumi.sync.yaml'), example.replaceAll('example.com', 'example.org'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  rsaSpki = rsa.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const ed = generateKeyPairSync('ed25519');
  await writeFile(join(dir, 'rsa.pem'), rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  await writeFile(join(dir, 'ed.pem'), ed.privateKey.export({ type: 'pkcs8', format: 'pem' })); // a private key works too
  facts = ['--stacks-dir', dir, '--ipv4', '192.0.2.10', '--ipv6', '2001:db8::10',
    '--dkim-file', `postern-rsa=${join(dir, 'rsa.pem')}`, '--dkim-file', `postern-ed25519=${join(dir, 'ed.pem')}`];
  const plan = async (stack: string): Promise<string> => {
    const r = await postern(['dns', 'plan', '--stack', stack, ...facts]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const syncZone = await plan('sync');
  // Drift: the RSA DKIM key is missing, the SPF is stale, an old MX lingers; www and a verification TXT are the
  // user's own records.
  const planned = await plan('drift');
  const lines = planned.split('\n');
  const withoutDkim = lines.filter((l) => !l.startsWith('postern-rsa._domainkey.'));
  assert.equal(withoutDkim.length, lines.length - 1, 'the plan has one RSA DKIM line to remove');
  const driftZone = withoutDkim.join('\n')
    .replace('"v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all"\n', '"v=spf1 ip4:198.51.100.7 -all"\n')
    + 'example.com. 3600 IN MX 20 old-mx.example.net.\n'
    + 'www.example.com. 3600 IN A 198.51.100.80\n'
    + 'example.com. 3600 IN TXT "google-site-verification=abc123"\n';
  assert.match(driftZone, /"v=spf1 ip4:198\.51\.100\.7 -all"/);
  knot = await startKnot({ 'example.com': driftZone, 'example.org': syncZone });
});

after(async () => {
  await knot?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('dns diff finds exactly the planted drift and leaves the user\'s own records alone', async () => {
  const r = await postern(['dns', 'diff', '--stack', 'drift', ...facts, '--server', knot.server]);
  assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
  const p = `v=DKIM1; k=rsa; p=${rsaSpki}`;
  assert.deepEqual(changeLines(r.stdout), [
    '- example.com MX 20 old-mx.example.net',
    '~ example.com TXT "v=spf1 ip4:198.51.100.7 -all" → example.com 3600 TXT "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all"',
    `+ postern-rsa._domainkey.example.com 3600 TXT ${JSON.stringify(p)}`,
  ]);
  assert.doesNotMatch(r.stdout, /www\.example\.com|google-site-verification/);
});

test('dns diff of a zone in sync exits 0', async () => {
  const r = await postern(['dns', 'diff', '--stack', 'sync', ...facts, '--server', knot.server]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /in sync: live DNS matches the plan/);
  assert.deepEqual(changeLines(r.stdout), []);
});

test('dns diff without host facts checks what it can and names what it could not', async () => {
  const r = await postern(['dns', 'diff', '--stack', 'sync', '--stacks-dir', dir, '--server', knot.server]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /Not checked \(unknown until deploy\):/);
  assert.match(r.stdout, /IPv4 address of mail\.example\.org: 192\.0\.2\.1 stands in \(pass --ipv4\)/);
  assert.match(r.stdout, /DKIM public key of selector postern-rsa/);
});

test('dns diff exits 2 with a clear message when the server refuses to answer for the domain', async () => {
  // Knot is authoritative for example.com/example.org only: a stack for another domain is refused.
  await writeFile(join(dir, 'Pulumi.other.yaml'), (await readFile(join(dir, 'Pulumi.drift.yaml'), 'utf8')).replaceAll('example.com', 'example.edu'));
  const r = await postern(['dns', 'diff', '--stack', 'other', ...facts.slice(2, 6), '--stacks-dir', dir, '--server', knot.server]);
  assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /^postern dns: DNS query [A-Z]+ \S+example\.edu at 127\.0\.0\.1:\d+ failed: (EREFUSED|ESERVFAIL)/);
});

test('dns diff exits 2 when nothing answers, or the server is not an address', async () => {
  const sock = createSocket('udp4');
  await new Promise<void>((res) => sock.bind(0, '127.0.0.1', () => res()));
  const closedPort = sock.address().port;
  await new Promise<void>((res) => sock.close(() => res()));
  const r = await postern(['dns', 'diff', '--stack', 'sync', ...facts, '--server', `127.0.0.1:${closedPort}`]);
  assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^postern dns: DNS query [A-Z]+ \\S+ at 127\\.0\\.0\\.1:${closedPort} failed: (ECONNREFUSED|ETIMEOUT)\n$`));
  const bad = await postern(['dns', 'diff', '--stack', 'sync', '--stacks-dir', dir, '--server', 'nonsense:x']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'postern dns: --server: expected host:port, got "nonsense:x"\n');
});

test('dns diff exits 2 for a stack that does not exist', async () => {
  const r = await postern(['dns', 'diff', '--stack', 'missing', '--stacks-dir', dir, '--server', knot.server]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `postern dns: cannot read stack "missing": ${join(dir, 'Pulumi.missing.yaml')} does not exist\n`);
});

// `postern doctor` as a user runs it: the real CLI process against stack files, asking a real Unbound (stub zones
// on Knot) and fetching the MTA-STS policy over HTTPS. Exit status 0 when all is well, 1 with a failure, 2 on
// bad usage; one line per check with the fix, or JSON.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runPosternCli as postern } from '../support/postern-cli.ts';
import { ensureDebianPackages } from '../support/debian.ts';
import { startDoctorWorld, type DoctorWorld } from '../server/diagnostics/doctor-world.ts';
import { runDoctor } from '../../src/cli/doctor.ts';

ensureDebianPackages(['knot', 'unbound', 'openssl']);

let world: DoctorWorld;

before(async () => {
  world = await startDoctorWorld();
});
after(async () => {
  await world?.stop();
});

const common = () => ['--stacks-dir', world.stacksDir, '--server', world.resolverAddress, '--only', 'dns,ptr,dnsbl',
  '--dnsbl', 'zen.bl.test', '--dnsbl-domain', 'dbl.bl.test', '--connect', '127.0.0.1', '--port-map', `443=${world.httpsPort}`,
  '--ca', world.caFile, '--timeout', '3000'];

test('a clean stack: every check ok, exit 0, addresses found through DNS, DKIM compared with the key files', async () => {
  const keyArgs: string[] = [];
  for (const k of world.cleanDkim) {
    const file = join(world.dir, `${k.selector}.pem`);
    await writeFile(file, k.privateKeyPem);
    keyArgs.push('--dkim-file', `${k.selector}=${file}`);
  }
  const r = await postern(['doctor', '--stack', 'clean', ...common(), ...keyArgs, '--json']);
  assert.equal(r.stderr, '');
  const out = JSON.parse(r.stdout) as { ok: boolean; results: { id: string; status: string; message: string }[] };
  assert.deepEqual(out.results.filter((x) => x.status !== 'ok'), []);
  assert.equal(out.ok, true);
  assert.equal(r.code, 0);
  assert.ok(out.results.some((x) => x.id === 'ptr.ipv4' && x.message.includes('192.0.2.10')), 'IPv4 found from the A record');
  assert.ok(out.results.some((x) => x.id === 'dnsbl.zen.bl.test.2001:db8::10'), 'IPv6 found from the AAAA record');
});

test('a faulty stack: one line per failure with its fix, exit 1', async () => {
  const r = await postern(['doctor', '--stack', 'faulty', ...common(), '--dnsbl', 'refuse.bl.test']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /^FAILURE  dns\.dkim\.postern-ed25519: no DKIM key at postern-ed25519\._domainkey\.faulty\.test.*\n {9}fix: publish TXT postern-ed25519\._domainkey\.faulty\.test "v=DKIM1; k=ed25519; p=<public key>" .*postern doctor --local/m);
  assert.match(r.stdout, /^FAILURE  dns\.spf: SPF of faulty\.test needs 11 DNS lookups/m);
  assert.match(r.stdout, /^FAILURE  dns\.mta-sts: MTA-STS TXT id=old1 does not match/m);
  assert.match(r.stdout, /^FAILURE  ptr\.ipv4: PTR of 192\.0\.2\.20 is elsewhere\.faulty\.test/m);
  assert.match(r.stdout, /^FAILURE  ptr\.ipv6: 2001:db8::20 \(outbound IPv6\) has no PTR/m);
  assert.match(r.stdout, /^FAILURE  dnsbl\.zen\.bl\.test\.192\.0\.2\.20: 192\.0\.2\.20 is LISTED on zen\.bl\.test \(zen\.bl\.test\): 127\.0\.0\.2/m);
  assert.match(r.stdout, /^warning  dnsbl\.refuse\.bl\.test\.192\.0\.2\.20: refuse\.bl\.test: lookup refused .*127\.255\.255\.254/m);
  assert.match(r.stdout, /^ok       dns\.dkim\.postern-rsa: /m);
  // The refusing list answers for both addresses: two warnings, neither counted as clean.
  assert.match(r.stdout, /\d+ ok, 2 warning\(s\), \d+ failure\(s\)\n$/);
});

test('bad usage is refused with exit 2 and a clear message', async () => {
  const none = await postern(['doctor']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /pass --stack <name> \(from your laptop\) or --local/);
  // The same checks in-process (each CLI start loads every module, which is slow on a busy machine).
  const base = { stacksDir: world.stacksDir, config: '/nonexistent', dnsbl: [], dnsblDomain: [], dkimFile: [], timeout: '3000' };
  await assert.rejects(runDoctor({ ...base, stack: '../etc/passwd' }), /is not a stack name/);
  await assert.rejects(runDoctor({ ...base, stack: 'clean', only: 'dns,bogus' }), /unknown check group "bogus"/);
  await assert.rejects(runDoctor({ ...base, stack: 'clean', portMap: '25=x' }), /--port-map: expected port=port/);
  await assert.rejects(runDoctor({ ...base, stack: 'clean', server: world.resolverAddress, ipv4: '::1' }), /--ipv4: "::1" is not an IPv4 address/);
});

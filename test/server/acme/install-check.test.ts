// What a renewal installs is checked first: a CA answer that does not cover the names, or whose key does not
// match, never replaces the certificate in place; a good one replaces key and certificate together.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createSelfSignedCertificate } from '../../../src/server/self-signed.ts';
import { runRenewal, type RenewalSettings } from '../../../src/server/acme/renewal.ts';

const NAMES = ['mail.example.test', 'mta-sts.example.test'];
const silent = pino({ level: 'silent' });
let dir: string;

before(async () => { dir = await mkdtemp(join(tmpdir(), 'postern-acme-install-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

async function setup(name: string): Promise<{ s: RenewalSettings; cert: string; key: string }> {
  const base = await mkdtemp(join(dir, `${name}-`));
  const old = await createSelfSignedCertificate({ names: NAMES, days: 2 });
  const s: RenewalSettings = {
    directoryUrl: 'https://ca.invalid/dir', email: 'postmaster@example.test', names: NAMES, renewBeforeDays: 30,
    certFile: join(base, 'cert.pem'), keyFile: join(base, 'key.pem'), stateDir: base,
  };
  await writeFile(s.certFile, old.cert);
  await writeFile(s.keyFile, old.key);
  return { s, cert: old.cert, key: old.key };
}

test('an issued certificate missing a name or not matching its key is refused; the old pair stays', async () => {
  const wrongNames = await createSelfSignedCertificate({ names: ['mail.example.test'], days: 90 });
  const other = await createSelfSignedCertificate({ names: NAMES, days: 90 });
  const mismatched = { keyPem: other.key, chainPem: (await createSelfSignedCertificate({ names: NAMES, days: 90 })).cert };
  for (const [issued, reason] of [[{ keyPem: wrongNames.key, chainPem: wrongNames.cert }, /does not cover mta-sts\.example\.test/], [mismatched, /does not match/]] as const) {
    const { s, cert, key } = await setup('bad');
    const r = await runRenewal(s, null, silent, () => new Date(), async () => issued);
    assert.equal(r.result, 'failed');
    assert.match(r.state.lastError ?? '', reason);
    assert.equal(await readFile(s.certFile, 'utf8'), cert);
    assert.equal(await readFile(s.keyFile, 'utf8'), key);
    assert.deepEqual((await readdir(s.stateDir)).sort(), ['cert.pem', 'key.pem'], 'no temp files left behind');
  }
});

test('a good issued pair replaces key and certificate', async () => {
  const { s } = await setup('good');
  const issued = await createSelfSignedCertificate({ names: NAMES, days: 90 });
  const r = await runRenewal(s, null, silent, () => new Date(), async () => ({ keyPem: issued.key, chainPem: issued.cert }));
  assert.equal(r.result, 'renewed');
  assert.equal(await readFile(s.certFile, 'utf8'), issued.cert);
  assert.equal(await readFile(s.keyFile, 'utf8'), issued.key);
  assert.equal(r.state.consecutiveFailures, 0);
});

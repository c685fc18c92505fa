// The doctor's "certificate renewal job healthy" check on the records the renewal job writes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkAcmeRenewal } from '../../../src/server/diagnostics/acme-renewal.ts';
import { writeRenewalState, renewalStateFile, type RenewalState } from '../../../src/server/acme/renewal-state.ts';
import { retryDelay } from '../../../src/server/acme/service.ts';
import { monitorChecks } from '../../../src/server/diagnostics/monitor-service.ts';
import type { DiagnosticResolver } from '../../../src/server/diagnostics/resolver.ts';
import { createSelfSignedCertificate } from '../../../src/server/self-signed.ts';

const NOW = new Date('2026-11-28T12:00:00Z');
const DAY = 86_400_000;
const at = (ms: number) => new Date(NOW.getTime() + ms).toISOString();
let dir: string;

before(async () => { dir = await mkdtemp(join(tmpdir(), 'postern-acme-check-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

const healthy: RenewalState = {
  lastCheck: at(-3_600_000), lastAttempt: at(-40 * DAY), lastSuccess: at(-3_600_000), lastRenewal: at(-40 * DAY),
  lastError: null, consecutiveFailures: 0, notAfter: at(50 * DAY), names: ['mail.example.com'], nextCheck: at(11 * 3_600_000),
};

async function check(state: RenewalState | string | null, enabled = true) {
  const stateDir = await mkdtemp(join(dir, 's-'));
  if (typeof state === 'string') await writeFile(renewalStateFile(stateDir), state);
  else if (state) await writeRenewalState(stateDir, state);
  return checkAcmeRenewal({ enabled, stateDir, now: NOW });
}

test('a recent successful run is ok and names the expiry', async () => {
  const r = await check(healthy);
  assert.equal(r.status, 'ok');
  assert.match(r.message, /expires in 50 days \(2027-01-17\)/);
});

test('disabled renewal, a job that never ran, or an unreadable record warn with a fix', async () => {
  for (const r of [await check(healthy, false), await check(null), await check('{"lastCheck": 1')]) {
    assert.equal(r.status, 'warn', r.message);
    assert.notEqual(r.fix, '');
  }
  assert.match((await check(healthy, false)).message, /disabled/);
  assert.match((await check(null)).message, /has not run/);
});

test('a last success older than a day and a half warns that the job is stuck', async () => {
  const r = await check({ ...healthy, lastCheck: at(-3 * DAY), lastSuccess: at(-3 * DAY) });
  assert.equal(r.status, 'warn');
  assert.match(r.message, /72 hours ago/);
});

test('a failed attempt warns while 14 days or more are left and fails below that', async () => {
  const failed = { ...healthy, lastAttempt: at(-3_600_000), lastError: 'connection refused', consecutiveFailures: 2 };
  const early = await check({ ...failed, notAfter: at(20 * DAY) });
  assert.equal(early.status, 'warn');
  assert.match(early.message, /connection refused/);
  const late = await check({ ...failed, notAfter: at(10 * DAY) });
  assert.equal(late.status, 'fail');
  assert.match(late.message, /expires in 10 days/);
  assert.match(late.fix, /port 80/);
  assert.equal((await check({ ...failed, notAfter: null })).status, 'fail');
});

test('retries back off exponentially up to the regular interval', () => {
  const base = 15 * 60_000;
  const interval = 12 * 3_600_000;
  assert.deepEqual([0, 1, 2, 3, 6, 7, 40].map((n) => retryDelay(n, base, interval)), [interval, base, 2 * base, 4 * base, 32 * base, interval, interval]);
});

test('host monitoring reports a renewal failing close to expiry (so the postmaster hears of it)', async () => {
  const stateDir = await mkdtemp(join(dir, 'monitor-'));
  await writeRenewalState(stateDir, { ...healthy, lastAttempt: at(-3_600_000), lastError: 'unauthorized: 404', consecutiveFailures: 5, notAfter: at(5 * DAY) });
  const pair = await createSelfSignedCertificate({ names: ['mail.example.com'], days: 5 });
  const certFile = join(stateDir, 'cert.pem');
  await writeFile(certFile, pair.cert);
  // No resolver answers here: the blocklist part reports that, the certificate checks come first.
  const unreachable = async (): Promise<never> => { throw new Error('resolver unreachable'); };
  const resolver: DiagnosticResolver = { txt: unreachable, a: unreachable, aaaa: unreachable, mx: unreachable, ptr: unreachable, cname: unreachable, srv: unreachable, caa: unreachable };
  const config = { domain: 'example.com', hostname: 'mail.example.com', tls: { certFile, keyFile: join(stateDir, 'key.pem') } };
  const results = await monitorChecks(config, resolver, [], new Date(), { stateDir });
  const renewal = results.find((r) => r.id === 'server.acme-renewal');
  assert.equal(renewal?.status, 'fail', JSON.stringify(results));
  assert.match(renewal.message, /unauthorized: 404/);
  assert.equal((await monitorChecks(config, resolver, [], new Date())).some((r) => r.id === 'server.acme-renewal'), false, 'not checked when renewal is off');
});

// The propagation check as production runs it: find the zone's name servers through its NS records, then ask
// each of them for the challenge TXT. A real authoritative server (Debian's Knot DNS) on a random loopback port
// serves the zone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authoritativeServers, waitForTxt } from '../../../src/infra/providers/dns-challenge.ts';
import { ensureDebianPackages } from '../../support/debian.ts';
import { freePort } from '../../support/pebble.ts';

let dir: string;
let port: number;
let knot: ChildProcess;
let log = '';

before(async () => {
  ensureDebianPackages(['knot']);
  dir = await mkdtemp(join(tmpdir(), 'postern-knot-'));
  port = await freePort();
  await writeFile(join(dir, 'example.test.zone'), [
    '$ORIGIN example.test.', '$TTL 60',
    '@ SOA ns1 hostmaster 1 3600 900 604800 60',
    '@ NS ns1',
    'ns1 A 127.0.0.1',
    '_acme-challenge.mail TXT "token-one"',
    // A long value arrives as several character-strings; the check must join them.
    `_acme-challenge.mta-sts TXT "${'a'.repeat(255)}" "tail"`, '',
  ].join('\n'));
  await writeFile(join(dir, 'knot.conf'), [
    'server:', `  rundir: "${dir}"`, `  listen: 127.0.0.1@${port}`,
    'database:', `  storage: "${dir}/db"`,
    'log:', '  - target: stderr', '    any: info',
    'template:', '  - id: default', `    storage: "${dir}"`,
    'zone:', '  - domain: example.test', '    file: "example.test.zone"', '',
  ].join('\n'));
  knot = spawn('knotd', ['-c', join(dir, 'knot.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  knot.stderr?.on('data', (b: Buffer) => { log = (log + b.toString()).slice(-4000); });
  const r = new Resolver({ timeout: 500, tries: 1 });
  r.setServers([`127.0.0.1:${port}`]);
  for (let i = 0; i < 50; i++) {
    if (await r.resolveSoa('example.test').then(() => true, () => false)) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`knotd did not start:\n${log}`);
});

after(async () => {
  if (knot && knot.exitCode === null) {
    const exited = new Promise((r) => knot.once('exit', r));
    knot.kill('SIGTERM');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

test('the name servers come from the zone\'s NS records', async () => {
  assert.deepEqual(await authoritativeServers('example.test', [`127.0.0.1:${port}`], port), [`127.0.0.1:${port}`]);
  await assert.rejects(authoritativeServers('nonexistent.invalid', [`127.0.0.1:${port}`], port));
});

test('waitForTxt resolves once the zone\'s servers serve the value, joining split strings', async () => {
  const settings = { zoneName: 'example.test', lookupServers: [`127.0.0.1:${port}`], authoritativePort: port, timeoutSeconds: 5, intervalMs: 100 };
  await waitForTxt('_acme-challenge.mail.example.test', 'token-one', settings);
  await waitForTxt('_acme-challenge.mta-sts.example.test', `${'a'.repeat(255)}tail`, settings);
});

test('a value the servers do not serve fails after the timeout, naming the servers', async () => {
  const settings = { zoneName: 'example.test', lookupServers: [`127.0.0.1:${port}`], authoritativePort: port, timeoutSeconds: 1, intervalMs: 200 };
  await assert.rejects(waitForTxt('_acme-challenge.mail.example.test', 'token-two', settings),
    new RegExp(`TXT _acme-challenge\\.mail\\.example\\.test not served by 127\\.0\\.0\\.1:${port} after 1s`));
});

// The propagation check as production runs it: find the zone's name servers through its NS records, then ask
// each of them for the challenge TXT. A real authoritative server (Debian's Knot DNS) on a random loopback port
// serves the zone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { authoritativeServers, waitForTxt } from '../../../src/infra/providers/dns-challenge.ts';
import { startKnot, type Knot } from '../../support/knot.ts';

let port: number;
let knot: Knot;

before(async () => {
  knot = await startKnot({
    'example.test': [
      '$ORIGIN example.test.', '$TTL 60',
      '@ SOA ns1 hostmaster 1 3600 900 604800 60',
      '@ NS ns1',
      'ns1 A 127.0.0.1',
      '_acme-challenge.mail TXT "token-one"',
      // A long value arrives as several character-strings; the check must join them.
      `_acme-challenge.mta-sts TXT "${'a'.repeat(255)}" "tail"`, '',
    ].join('\n'),
  });
  port = knot.port;
});

after(async () => {
  await knot?.stop();
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

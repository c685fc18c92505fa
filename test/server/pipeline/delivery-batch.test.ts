// Deliveries start after a short pause so that several share their fsyncs: messages accepted during the pause are
// handed to the store together, after the last of them got its 250 (the pause is set long here so the order
// cannot depend on the machine's speed).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { openSession } from '../../support/raw-smtp.ts';
import { startPostern } from '../../support/smtp-harness.ts';
import type { RunningPostern } from '../../support/smtp-harness.ts';

let p: RunningPostern | undefined;
after(async () => { await p?.stop(); });

test('messages accepted during the delivery pause are delivered together, after the last 250', { timeout: 30_000 }, async () => {
  p = await startPostern({ extra: { deliveryBatchDelayMs: 1500 } });
  const log: string[] = [];
  const deliver = p.store.deliver.bind(p.store);
  p.store.deliver = (account, message, options) => {
    log.push('deliver');
    return deliver(account, message, options);
  };
  const s = await openSession(p.ports.mx);
  for (let i = 1; i <= 3; i++) {
    assert.equal((await s.command('MAIL FROM:<carol@example.org>')).code, 250);
    assert.equal((await s.command('RCPT TO:<bob@example.com>')).code, 250);
    assert.equal((await s.command('DATA')).code, 354);
    const r = await s.command(`From: carol@example.org\r\nSubject: batch ${i}\r\nMessage-ID: <batch-${i}@example.org>\r\n\r\nbody ${i}\r\n.`);
    assert.equal(r.code, 250, r.text);
    log.push(`250 #${i}`);
  }
  await s.command('QUIT');
  for (let i = 0; i < 200 && p.store.messages('bob@example.com').length < 3; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(p.store.messages('bob@example.com').length, 3);
  assert.deepEqual(log, ['250 #1', '250 #2', '250 #3', 'deliver', 'deliver', 'deliver']);
});

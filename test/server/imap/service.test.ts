// The Service lifecycle: stop() says BYE to waiting and idling clients, lets a running command finish, and
// closes the listeners.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { RawImap, taggedLine } from './raw-client.ts';
import { PASSWORD, USER, startImap } from './harness.ts';

test('stop(): BYE to every session, idle or not, then the listeners are closed', async () => {
  const h = await startImap();
  const waiting = await RawImap.tls(h.imapsPort, h.certPem);
  const idling = await RawImap.tls(h.imapsPort, h.certPem);
  try {
    for (const c of [waiting, idling]) assert.match(taggedLine(await c.command('l', `LOGIN "${USER}" "${PASSWORD}"`), 'l'), /^l OK/);
    await idling.command('s', 'SELECT INBOX');
    idling.write('i IDLE\r\n');
    await idling.readUntil(/^\+ [^\r\n]*\r\n/m);
    const stopped = h.stop();
    assert.match(await waiting.readUntil(/^\* BYE[^\r\n]*\r\n/m), /BYE Server shutting down/);
    assert.match(await idling.readUntil(/^\* BYE[^\r\n]*\r\n/m), /BYE Server shutting down/);
    await Promise.all([waiting.waitClosed(), idling.waitClosed()]);
    await stopped;
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(h.imapsPort, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(false); });
      s.once('error', () => resolve(true));
    });
    assert.equal(refused, true, 'the listener is closed');
  } finally {
    waiting.close();
    idling.close();
  }
});

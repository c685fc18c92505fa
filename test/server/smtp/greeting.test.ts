// The pause before the greeting: none by default (Postfix's smtpd greets at once, and smtp-server's own fixed
// 100 ms pause made every new connection cost 100 ms); when configured, a client that talks before the greeting
// is refused with 421 and a client that waits is served.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { RawSmtp } from '../../support/raw-smtp.ts';
import { startPostern } from '../../support/smtp-harness.ts';
import type { RunningPostern } from '../../support/smtp-harness.ts';

const running: RunningPostern[] = [];
after(async () => { for (const p of running) await p.stop(); });

/** Connects, writes EHLO in the same breath, and returns everything the server said until it closed or 2 s passed. */
function talkFirst(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const s = connect({ port, host: '127.0.0.1' }, () => s.write('EHLO early.example\r\n'));
    s.setEncoding('utf8');
    s.on('data', (d: string) => { text += d; });
    s.on('error', reject);
    const timer = setTimeout(() => { s.destroy(); resolve(text); }, 2000);
    s.on('close', () => { clearTimeout(timer); resolve(text); });
  });
}

test('with a 500 ms greeting pause, an early talker gets 421 and a patient client is served', async () => {
  const p = await startPostern({ extra: { greetPauseMs: 500 } });
  running.push(p);
  const early = await talkFirst(p.ports.mx);
  assert.match(early, /^421 .*talk too soon/m);
  assert.doesNotMatch(early, /^220 /m, 'no greeting for a client that talked first');
  const patient = await RawSmtp.connect(p.ports.mx);
  assert.equal((await patient.read())?.code, 220);
  assert.equal((await patient.command('EHLO patient.example')).code, 250);
  await patient.command('QUIT');
});

test('by default the greeting comes first and a client that waits for it is served on every listener', async () => {
  const p = await startPostern();
  running.push(p);
  for (const [port, tls] of [[p.ports.mx, false], [p.ports.submission, false], [p.ports.submissions, true]] as const) {
    const c = await RawSmtp.connect(port, { tls });
    const greeting = await c.read();
    assert.equal(greeting?.code, 220);
    assert.match(greeting!.text, /mail\.example\.com/);
    assert.equal((await c.command('EHLO client.example')).code, 250);
    await c.command('QUIT');
  }
});

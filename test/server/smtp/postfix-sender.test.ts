// Debian's Postfix, started by the test, as a real sending MTA relaying to Postern's MX over STARTTLS: accepted
// mail lands in the mailbox with Postern's Received header; a refused recipient comes back to the sender as
// Postfix's own bounce quoting Postern's 550 5.1.1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { ensureDebianPackages } from '../../support/debian.ts';
import { makeCert, startPostern } from '../../support/smtp-harness.ts';
import type { RunningPostern } from '../../support/smtp-harness.ts';
import { randomLoopbackBase, startPostfix } from '../queue/support/peers.ts';
import type { RunningPostfix } from '../queue/support/peers.ts';

ensureDebianPackages(['postfix', 'openssl']);

let dir: string;
let p: RunningPostern;
let postfix: RunningPostfix;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-pfsend-'));
  p = await startPostern();
  const cert = await makeCert(await mkdtemp(join(dir, 'cert-')), 'mx.sender.test');
  postfix = await startPostfix(join(dir, 'postfix'), {
    address: `${randomLoopbackBase()}.1`, hostname: 'mx.sender.test', domain: 'sender.test', certFile: cert.certFile, keyFile: cert.keyFile,
    extraMain: [
      `transport_maps = inline:{ example.com=smtp:[127.0.0.1]:${p.ports.mx} }`,
      // Postern's test certificate is self-signed: require encryption, not verification.
      'smtp_tls_security_level = encrypt',
      'smtp_tls_loglevel = 1',
      'bounce_queue_lifetime = 0',
    ],
  });
});
after(async () => {
  await postfix?.stop();
  await p?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function waitFor<T>(what: string, fn: () => T | undefined | false): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const v = fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}\n${postfix.log().split('\n').slice(-30).join('\n')}`);
}

test('Postfix relays to the MX over TLS; a refused recipient bounces back to the sender with 550 5.1.1', async () => {
  const t = nodemailer.createTransport({ host: postfix.address, port: 25, localAddress: postfix.address, ignoreTLS: true, name: 'client.sender.test' });
  await t.sendMail({ from: 'carol@sender.test', to: ['bob@example.com', 'nobody@example.com'], subject: 'from postfix', text: 'relayed by postfix', messageId: '<via-postfix@sender.test>' });
  t.close();
  const stored = await waitFor('delivery to bob', () => p.store.messages('bob@example.com').find((m) => m.includes('via-postfix@sender.test')));
  const text = stored.toString();
  assert.match(text, /^Received: from mx\.sender\.test \(\[127\.0\.0\.1\]\)\r\n\tby mail\.example\.com \(Postern\) with ESMTPS id \S+ \(TLSv1\.3 /m);
  assert.match(text, /^Received: from client\.sender\.test/m, "Postfix's own Received header is kept");
  assert.match(postfix.log(), /to=<bob@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent \(250 2\.6\.0 Ok: queued as [0-9a-f]{24}\)/);
  assert.match(postfix.log(), /Trusted|Untrusted|Anonymous TLS connection established to 127\.0\.0\.1/);
  const bounce = await waitFor('bounce to carol', () => postfix.messages().find((m) => /Final-Recipient: rfc822; nobody@example\.com/.test(m)));
  assert.match(bounce, /550 5\.1\.1 No such user here/);
  // Postern's trace tells the same story.
  // (The message file is visible in the Maildir a moment before the index commit that the stored event follows.)
  await waitFor('stored in the trace', () => p.trace.find('via-postfix@sender.test')[0]?.events.some((e) => e.kind === 'stored' && e.recipient === 'bob@example.com'));
  assert.ok(p.trace.find('nobody@example.com')[0]!.events.some((e) => e.kind === 'rejected' && /550 5\.1\.1/.test(e.detail)));
});

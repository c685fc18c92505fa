// Submission to a remote recipient end to end: Postern signs (RSA + Ed25519), its outbound queue delivers to Debian's
// Postfix as the remote MX (found through MX records served by knotd), and the copy Postfix stores verifies with
// mailauth and with OpenDKIM's opendkim-testmsg.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import nodemailer from 'nodemailer';
import { ensureDebianPackages } from '../../support/debian.ts';
import { startKnot, txt, zoneText } from '../../support/knot.ts';
import type { Knot } from '../../support/knot.ts';
import { DEFAULT_ALIASES, DEFAULT_USERS, DOMAIN, HOSTNAME, makeCert, quietLog, staticTls } from '../../support/smtp-harness.ts';
import { FileTestStore } from '../../support/smtp-test-store.ts';
import { randomLoopbackBase, startPostfix } from '../queue/support/peers.ts';
import type { RunningPostfix } from '../queue/support/peers.ts';
import { createQueue } from '../../../src/server/queue/service.ts';
import type { QueueModule } from '../../../src/server/queue/service.ts';
import { openTrace } from '../../../src/server/trace/sqlite-trace.ts';
import type { Trace } from '../../../src/server/trace/api.ts';
import { createSmtpModule } from '../../../src/server/smtp/service.ts';
import type { SmtpModule } from '../../../src/server/smtp/service.ts';
import type { DkimKey } from '../../../src/server/pipeline/dkim-signer.ts';

ensureDebianPackages(['postfix', 'knot', 'knot-dnsutils', 'opendkim-tools', 'iproute2', 'openssl']);

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const keys: DkimKey[] = [
  { selector: 'rsa1', algorithm: 'rsa-sha256', privateKey: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
  { selector: 'ed1', algorithm: 'ed25519-sha256', privateKey: ed.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
];

let dir: string;
let dns: Knot;
let nsDns: Knot;
let postfix: RunningPostfix;
let queue: QueueModule;
let smtp: SmtpModule;
let trace: Trace;
let submissionPort = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-dkimout-'));
  chmodSync(dir, 0o755);
  const base = randomLoopbackBase();
  const zones = {
    'example.com': zoneText('example.com', [
      `rsa1._domainkey TXT ${txt(`v=DKIM1; k=rsa; p=${rsa.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`)}`,
      `ed1._domainkey TXT "v=DKIM1; k=ed25519; p=${ed.publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64')}"`,
    ]),
    'pf.test': zoneText('pf.test', ['@ MX 10 mx', `mx A ${base}.1`]),
  };
  dns = await startKnot(zones);
  nsDns = await startKnot(zones, { netns: true });
  const pfCert = await makeCert(await mkdtemp(join(dir, 'pfcert-')), 'mx.pf.test');
  postfix = await startPostfix(join(dir, 'postfix'), { address: `${base}.1`, hostname: 'mx.pf.test', domain: 'pf.test', certFile: pfCert.certFile, keyFile: pfCert.keyFile });
  const state = join(dir, 'state');
  trace = openTrace(state);
  const store = new FileTestStore(join(state, 'mail'), DEFAULT_USERS, DEFAULT_ALIASES);
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([`127.0.0.1:${dns.port}`]);
  const limits = { maxMessageBytes: 1024 * 1024, maxRecipients: 20, maxConnectionsPerIp: 20, maxLineBytes: 65536 };
  queue = createQueue({ config: { hostname: HOSTNAME, limits }, stateDir: state, store, trace, warn: () => {}, resolver, tuning: { retryScheduleMs: [500] } });
  await queue.service.start();
  const cert = await makeCert(await mkdtemp(join(dir, 'cert-')));
  smtp = createSmtpModule({
    config: { domain: DOMAIN, hostname: HOSTNAME, listenAddress: '127.0.0.1', users: DEFAULT_USERS.map((u) => ({ address: u.address, name: '', passwordHash: '$argon2id$unused', quotaBytes: 0 })), aliases: DEFAULT_ALIASES, limits, dmarc: { policy: 'reject', inboundRejectAction: 'reject' } },
    ports: { mx: null, submission: 0, submissions: null }, tls: staticTls(cert), store, spool: queue.spool, trace, log: quietLog, dkimKeys: keys,
    resolver: (name, type) => resolver.resolve(name, type) as Promise<string[] | string[][]>, reverseDns: false,
  });
  const listening = await smtp.service.start();
  submissionPort = Number(new URL(listening[0]!.url.replace(/^\w+:/, 'http:')).port);
});
after(async () => {
  await smtp?.service.stop(Date.now() + 500);
  await queue?.service.stop(Date.now() + 500);
  trace?.close();
  await postfix?.stop();
  await dns?.stop();
  await nsDns?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('mail submitted for a remote domain reaches Postfix with signatures both verifiers accept', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: submissionPort, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice@example.com', pass: 'alice-secret-1' } });
  await t.sendMail({ from: 'Alice <alice@example.com>', to: 'carol@pf.test', subject: 'over the wire', text: 'Signed and sent.\n', messageId: '<outbound-1@example.com>' });
  t.close();
  let received: string | undefined;
  for (let i = 0; i < 400 && !received; i++) {
    received = postfix.messages().find((m) => m.includes('outbound-1@example.com'));
    if (!received) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(received, `Postfix got the message\n${postfix.log().split('\n').slice(-20).join('\n')}`);
  // Postfix's Maildir copy has LF line ends; DKIM works on CRLF.
  const wire = Buffer.from(received.replace(/\r?\n/g, '\r\n'));
  const v = await dkimVerify(wire, { resolver: (name, type) => dns.resolver(name, type) });
  assert.deepEqual(v.results.map((r) => `${r.selector}=${r.status.result}`).sort(), ['ed1=pass', 'rsa1=pass']);
  const rsaOnly = wire.toString().replace(/^DKIM-Signature: v=1; a=ed25519-sha256[^\r]*(\r\n[ \t][^\r]*)*\r\n/m, '');
  const od = await new Promise<{ code: number; out: string }>((resolve) => {
    const c = execFile('ip', ['netns', 'exec', nsDns.netns!, 'opendkim-testmsg'], { timeout: 20_000 }, (err, so, se) => resolve({ code: err ? 1 : 0, out: so + se }));
    c.stdin!.end(rsaOnly);
  });
  assert.equal(od.code, 0, od.out);
  const events = trace.find('outbound-1@example.com')[0]!.events.map((e) => e.kind);
  assert.ok(events.includes('queued') && events.includes('delivered'), events.join(' '));
});

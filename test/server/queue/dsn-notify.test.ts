// The DSN extension end to end (RFC 3461/3464): Python's smtplib submits with NOTIFY/ORCPT/RET/ENVID; Knot DNS
// routes to scripted remote MXs that answer 5xx, keep answering 4xx, accept and announce DSN (recording what they
// receive), or accept without DSN. What the sender (a local account) finds in its INBOX, and what the trace says.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { chmodSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureDebianPackages } from '../../support/debian.ts';
import { startKnot, zoneText } from '../../support/knot.ts';
import type { Knot } from '../../support/knot.ts';
import { startPostern } from '../../support/smtp-harness.ts';
import type { RunningPostern } from '../../support/smtp-harness.ts';
import { smtplibSession } from '../../support/smtplib.ts';
import { makePki, randomLoopbackBase } from './support/peers.ts';
import { startScriptedRemote } from './support/remotes.ts';
import type { ScriptedRemote } from './support/remotes.ts';
import { FileSpool } from '../../../src/server/queue/spool.ts';
import { wantsNotice } from '../../../src/server/queue/dsn.ts';

ensureDebianPackages(['python3', 'knot', 'openssl']);

let root: string;
let knot: Knot;
let p: RunningPostern;
let dsnMx: ScriptedRemote;
let plainMx: ScriptedRemote;
const remotes: ScriptedRemote[] = [];

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'postern-dsn-'));
  chmodSync(root, 0o755);
  const base = randomLoopbackBase();
  const pki = makePki(join(root, 'pki'));
  const cert = pki.issue('remotes', ['mx.reject.test', 'mx.slow.test', 'mx.dsn.test', 'mx.plain.test']);
  knot = await startKnot({ test: zoneText('test', [
    'reject MX 10 mx.reject', `mx.reject A ${base}.1`,
    'slow MX 10 mx.slow', `mx.slow A ${base}.2`,
    'dsn MX 10 mx.dsn', `mx.dsn A ${base}.3`,
    'plain MX 10 mx.plain', `mx.plain A ${base}.4`,
  ], { ttl: 5, ns: 'ns' }) });
  const remote = (n: number, extra: Partial<Parameters<typeof startScriptedRemote>[0]>) =>
    startScriptedRemote({ host: `${base}.${n}`, port: 25, key: cert.key, cert: cert.cert, ...extra });
  remotes.push(await remote(1, { rcptReply: () => '550 5.1.1 no such user here' }));
  remotes.push(await remote(2, { rcptReply: () => '451 4.3.0 try again later' }));
  dsnMx = await remote(3, { dsn: true });
  plainMx = await remote(4, {});
  remotes.push(dsnMx, plainMx);
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([`127.0.0.1:${knot.port}`]);
  p = await startPostern({ queue: { resolver, tuning: {
    // Every deferral is already past the delay threshold, and nothing expires during the test.
    retryScheduleMs: [300], delayNoticeMs: 0, maxAgeMs: 3_600_000, rescanMs: 1000, idleSessionMs: 500,
    client: { ca: pki.ca, connectTimeoutMs: 5000 },
  } } });
});

after(async () => {
  await p?.stop();
  for (const r of remotes) await r.close();
  await knot?.stop();
  await rm(root, { recursive: true, force: true });
});

const ALICE: [string, string] = ['alice@example.com', 'alice-secret-1'];

function body(subject: string, to: string): string {
  return `From: <alice@example.com>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@example.com>\r\n\r\nBody line of ${subject}.\r\n`;
}

/** Alice submits one message on port 587 (STARTTLS, AUTH) with these DSN parameters. */
async function submit(subject: string, mailOptions: string[], rcpts: [string, string[]][]): Promise<void> {
  const replies = await smtplibSession(p.ports.submission, [
    ['mail', 'alice@example.com', mailOptions],
    ...rcpts.map(([to, o]) => ['rcpt', to, o] as ['rcpt', string, string[]]),
    ['data', body(subject, rcpts[0]![0])],
  ], ALICE);
  assert.deepEqual(replies.map((r) => r.code), replies.map(() => 250), `accepted: ${JSON.stringify(replies)}`);
}

/** DSNs in Alice's INBOX about the message with this subject. */
function dsnsAbout(subject: string): string[] {
  return p.store.messages('alice@example.com').map((m) => m.toString('latin1'))
    .filter((m) => /^Content-Type: multipart\/report; report-type=delivery-status/m.test(m) && m.includes(`\r\nSubject: ${subject}\r\n`));
}

async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The trace of the message with this subject (its Message-ID). */
function traceOf(subject: string) {
  return p.trace.find(`${subject}@example.com`)[0]?.events ?? [];
}

const removed = (subject: string) => traceOf(subject).some((e) => e.kind === 'removed');

describe('DSN extension end to end', () => {
  it('NOTIFY=SUCCESS to a local user: a success DSN with Original-Envelope-Id and Original-Recipient in the sender\'s INBOX', async () => {
    await submit('local-plain', [], [['bob@example.com', []]]);
    await submit('local-success', ['ENVID=env+2Blocal-1'], [['bob@example.com', ['NOTIFY=SUCCESS', 'ORCPT=rfc822;Bobby+2Bdsn@example.com']]]);
    const [dsn] = await waitFor('success DSN', () => { const d = dsnsAbout('local-success'); return d.length ? d : undefined; });
    assert.match(dsn!, /^Subject: Successful Mail Delivery Report$/m);
    assert.match(dsn!, /^Original-Envelope-Id: env\+2Blocal-1$/m);
    assert.match(dsn!, /^Original-Recipient: rfc822;Bobby\+2Bdsn@example\.com$/m);
    assert.match(dsn!, /^Final-Recipient: rfc822; bob@example\.com$/m);
    assert.match(dsn!, /^Action: delivered$/m);
    assert.match(dsn!, /^Status: 2\.0\.0$/m);
    assert.match(dsn!, /^Content-Type: text\/rfc822-headers$/m, 'a success DSN returns headers only');
    assert.doesNotMatch(dsn!, /Body line of/);
    assert.doesNotMatch(dsn!, /[^\x00-\x7f]/, '7-bit');
    assert.equal(p.store.messages('bob@example.com').filter((m) => m.includes('Subject: local-success')).length, 1, 'delivered once');
    // The trace records the report just after storing it: the report may show in INBOX a moment before.
    await waitFor('the report in the trace', () => traceOf('local-success').some((e) => e.kind === 'dsn' && /^success notice stored for alice@example\.com in INBOX$/.test(e.detail)));
    await waitFor('plain message removed', () => removed('local-plain'));
    assert.deepEqual(dsnsAbout('local-plain'), [], 'no NOTIFY: no success DSN');
  });

  it('NOTIFY=SUCCESS to an alias of several accounts says expanded; an alias of one account says delivered', async () => {
    await submit('alias-success', [], [['team@example.com', ['NOTIFY=SUCCESS']], ['sales@example.com', ['NOTIFY=SUCCESS']]]);
    const dsns = await waitFor('two success DSNs', () => { const d = dsnsAbout('alias-success'); return d.length >= 2 ? d : undefined; });
    const about = (rcpt: string) => dsns.filter((d) => d.includes(`\r\nFinal-Recipient: rfc822; ${rcpt}\r\n`));
    assert.equal(about('team@example.com').length, 1);
    assert.match(about('team@example.com')[0]!, /^Action: expanded$/m, 'team@ is alice and bob');
    assert.match(about('team@example.com')[0]!, /^An address marked expanded is a list of several mailboxes here/m);
    assert.equal(about('sales@example.com').length, 1);
    assert.match(about('sales@example.com')[0]!, /^Action: delivered$/m, 'sales@ is bob alone');
    for (const user of ['alice@example.com', 'bob@example.com']) {
      assert.equal(p.store.messages(user).filter((m) => m.includes('\r\nSubject: alias-success\r\n') && !m.includes('report-type=delivery-status')).length, 1, `${user}: one copy`);
    }
  });

  it('5xx: NOTIFY=NEVER gets no DSN (the trace says why); no NOTIFY gets one; RET=FULL returns the whole message, RET=HDRS its headers', async () => {
    await submit('reject-never', ['RET=FULL'], [['nina@reject.test', ['NOTIFY=NEVER']]]);
    await submit('reject-full', ['RET=FULL', 'ENVID=full-1'], [['olga@reject.test', ['ORCPT=rfc822;olga@reject.test']]]);
    await submit('reject-hdrs', ['RET=HDRS'], [['pete@reject.test', ['NOTIFY=FAILURE']]]);
    await submit('reject-default', [], [['quin@reject.test', []]]);
    const [full] = await waitFor('RET=FULL DSN', () => { const d = dsnsAbout('reject-full'); return d.length ? d : undefined; });
    assert.match(full!, /^Action: failed$/m);
    assert.match(full!, /^Original-Envelope-Id: full-1$/m);
    assert.match(full!, /^Original-Recipient: rfc822;olga@reject\.test$/m);
    assert.match(full!, /^Content-Type: message\/rfc822$/m);
    assert.doesNotMatch(full!, /text\/rfc822-headers/);
    assert.match(full!, /\r\n\r\nBody line of reject-full\.\r\n/, 'the original body is returned');
    const [hdrs] = await waitFor('RET=HDRS DSN', () => { const d = dsnsAbout('reject-hdrs'); return d.length ? d : undefined; });
    assert.match(hdrs!, /^Content-Type: text\/rfc822-headers$/m);
    assert.doesNotMatch(hdrs!, /Body line of/);
    assert.doesNotMatch(hdrs!, /^Original-Envelope-Id:/m);
    const [dflt] = await waitFor('DSN without NOTIFY', () => { const d = dsnsAbout('reject-default'); return d.length ? d : undefined; });
    assert.match(dflt!, /^Final-Recipient: rfc822; quin@reject\.test$/m);
    assert.doesNotMatch(dflt!, /Body line of/);
    await waitFor('NOTIFY=NEVER message removed', () => removed('reject-never'));
    const never = traceOf('reject-never');
    assert.ok(never.some((e) => e.kind === 'failed' && e.recipient === 'nina@reject.test'), 'it did fail');
    assert.ok(never.some((e) => e.kind === 'dsn' && e.detail === 'no failure DSN for nina@reject.test: NOTIFY=NEVER'), 'the trace says why');
    assert.ok(!never.some((e) => e.kind === 'dsn' && /bounce/.test(e.detail)), 'no bounce stored or queued');
    assert.deepEqual(dsnsAbout('reject-never'), []);
  });

  it('4xx past the delay threshold: a delay notice without NOTIFY, none with NOTIFY=FAILURE', async () => {
    await submit('slow-failure-only', [], [['rita@slow.test', ['NOTIFY=FAILURE']]]);
    await submit('slow-default', [], [['sam@slow.test', []]]);
    const [notice] = await waitFor('delay notice for the default', () => { const d = dsnsAbout('slow-default'); return d.length ? d : undefined; });
    assert.match(notice!, /^Action: delayed$/m);
    const skipped = await waitFor('NOTIFY=FAILURE decision traced', () => traceOf('slow-failure-only').find((e) => e.kind === 'dsn'));
    assert.equal(skipped.detail, 'no delay notice for rita@slow.test: NOTIFY=FAILURE');
    await sleep(700); // two more retries
    assert.deepEqual(dsnsAbout('slow-failure-only'), []);
    assert.equal(traceOf('slow-failure-only').filter((e) => e.kind === 'dsn').length, 1, 'decided once, not at every retry');
  });

  it('passes RET/ENVID/NOTIFY/ORCPT to a next hop that announces DSN, in one transaction, and sends no success DSN itself', async () => {
    await submit('pass-through', ['RET=HDRS', 'ENVID=pass+2B1'], [
      ['una@dsn.test', ['NOTIFY=SUCCESS', 'ORCPT=rfc822;una+2Borig@dsn.test']],
      ['vic@dsn.test', ['NOTIFY=FAILURE,DELAY']],
      ['wes@dsn.test', []],
    ]);
    await waitFor('pass-through message removed', () => removed('pass-through'));
    const got = dsnMx.received.filter((m) => m.data.includes('Subject: pass-through'));
    assert.equal(got.length, 1, 'one transaction for the three recipients');
    assert.deepEqual(got[0]!.dsn, {
      ret: 'HDRS', envid: 'pass+1',
      rcpts: [
        { address: 'una@dsn.test', notify: ['SUCCESS'], orcpt: 'rfc822;una+orig@dsn.test' },
        { address: 'vic@dsn.test', notify: ['FAILURE', 'DELAY'] },
        { address: 'wes@dsn.test' },
      ],
    });
    assert.ok(traceOf('pass-through').some((e) => e.kind === 'dsn' && e.recipient === 'una@dsn.test' && /passed on to mx\.dsn\.test/.test(e.detail)));
    assert.deepEqual(dsnsAbout('pass-through'), [], 'the next hop reports success, not Postern');
  });

  it('NOTIFY=SUCCESS to a next hop without DSN: a "relayed" DSN after its 2xx', async () => {
    await submit('relayed', ['ENVID=rel-1'], [['xena@plain.test', ['NOTIFY=SUCCESS,FAILURE']], ['yuri@plain.test', []]]);
    const [dsn] = await waitFor('relayed DSN', () => { const d = dsnsAbout('relayed'); return d.length ? d : undefined; });
    assert.match(dsn!, /^Action: relayed$/m);
    assert.match(dsn!, /^Final-Recipient: rfc822; xena@plain\.test$/m);
    assert.doesNotMatch(dsn!, /yuri@plain\.test/, 'only the recipient that asked');
    assert.match(dsn!, /^Remote-MTA: dns; mx\.plain\.test$/m);
    assert.match(dsn!, /^Original-Envelope-Id: rel-1$/m);
    assert.ok(plainMx.received.some((m) => m.data.includes('Subject: relayed')));
  });
});

describe('DSN parameters in the spool', () => {
  it('survive a restart (the spool opened again), through a state change; an entry without them loads as before', async () => {
    const dir = join(root, 'spool-restart');
    const client = { remoteAddress: '192.0.2.7', helo: 'client.example', tls: true, listener: 'submission' as const };
    const first = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const withDsn = await first.accept({
      from: 'alice@example.com', to: ['bob@far.test', 'carol@far.test'], client,
      dsn: { ret: 'FULL', envid: 'id+2B1' },
      recipientDsn: { 'bob@far.test': { notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;bob@far.test' }, 'CAROL@far.test': { notify: ['NEVER'] } },
    }, Readable.from([Buffer.from('Subject: a\r\n\r\nx\r\n')]));
    const without = await first.accept({ from: 'alice@example.com', to: ['dave@far.test'], client }, Readable.from([Buffer.from('Subject: b\r\n\r\ny\r\n')]));
    await first.enqueueRemote(withDsn.id, ['bob@far.test']); // the state now comes from the side file
    await first.close();
    const again = await FileSpool.open({ dir, maxMessageBytes: 1 << 20 });
    const e = (await again.load(withDsn.id))!;
    assert.deepEqual(e.envelope.dsn, { ret: 'FULL', envid: 'id+2B1' });
    assert.deepEqual(e.recipients.map((r) => [r.address, r.status, r.notify, r.orcpt]), [
      ['bob@far.test', 'queued', ['SUCCESS', 'FAILURE'], 'rfc822;bob@far.test'],
      ['carol@far.test', 'pending', ['NEVER'], undefined],
    ]);
    const old = (await again.load(without.id))!;
    assert.equal(old.envelope.dsn, undefined);
    assert.deepEqual(Object.keys(old.recipients[0]!).sort(), ['address', 'attempts', 'status']);
    assert.equal(wantsNotice(old.recipients[0]!, 'FAILURE'), true, 'no NOTIFY: failure and delay DSNs as before');
    assert.equal(wantsNotice(old.recipients[0]!, 'DELAY'), true);
    assert.equal(wantsNotice(old.recipients[0]!, 'SUCCESS'), false);
    await again.close();
  });
});

// Outbound delivery end to end with real peers: Knot DNS serves the MX records, Debian's Postfix is the remote MX
// (STARTTLS, Maildir), scripted smtp-server remotes answer 4xx-then-2xx or 5xx, and a smarthost requires AUTH over
// TLS. Every remote listens on port 25 of a random 127.x.y.z address of this run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { Resolver } from 'node:dns/promises';
import { createServer as createHttpsServer } from 'node:https';
import { fileURLToPath } from 'node:url';
import { chmodSync } from 'node:fs';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { DeliveryStore } from '../../../src/server/store/api.ts';
import { createStore } from '../../../src/server/store/create-store.ts';
import { hashPassword } from '../../../src/server/store/password.ts';
import type { MailStore } from '../../../src/server/store/types.ts';
import type { Trace } from '../../../src/server/trace/api.ts';
import { openTrace } from '../../../src/server/trace/sqlite-trace.ts';
import { resolveMxRoute } from '../../../src/server/queue/mx.ts';
import { mxAllowed } from '../../../src/server/queue/mta-sts.ts';
import { createQueue } from '../../../src/server/queue/service.ts';
import type { QueueDeps, QueueModule } from '../../../src/server/queue/service.ts';
import type { StsPolicy } from '../../../src/server/queue/mta-sts.ts';
import { ensureDebianPackages } from '../../support/debian.ts';
import { makePki, randomLoopbackBase, startPostfix } from './support/peers.ts';
import type { RunningPostfix, TestPki } from './support/peers.ts';
import { startKnot, zoneText } from '../../support/knot.ts';
import type { Knot } from '../../support/knot.ts';
import { startBrokenTlsRemote, startScriptedRemote } from './support/remotes.ts';
import type { ScriptedRemote } from './support/remotes.ts';

ensureDebianPackages(['postfix', 'knot', 'knot-dnsutils', 'openssl']);
const execFileAsync = promisify(execFile);

/** The real mailbox store with one account, alice@home.test; `inbox()` reads her INBOX as a client would. */
class AliceStore {
  readonly store: MailStore;
  private constructor(store: MailStore) { this.store = store; }
  static async open(dir: string): Promise<AliceStore> {
    const store = await createStore({
      stateDir: dir,
      users: [{ address: 'alice@home.test', name: 'Alice', passwordHash: hashPassword('alice password', { memory: 1024, passes: 1 }), quotaBytes: 0 }],
      aliases: [],
      limits,
    }, pino({ level: 'silent' }));
    stores.push(store);
    return new AliceStore(store);
  }
  async inbox(): Promise<string[]> {
    const box = this.store.getMailbox('alice@home.test', 'INBOX');
    if (!box) return [];
    const out: string[] = [];
    for (const uid of this.store.listUids(box.id)) out.push((await this.store.readMessage(box.id, uid))!.toString('latin1'));
    return out;
  }
}

const stores: MailStore[] = [];
const aliceStoreIn = (dir: string) => AliceStore.open(dir);

async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 25_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

let root: string;
let base: string;
let pki: TestPki;
let knot: Knot;
let postfix: RunningPostfix;
let resolver: Resolver;
const remotes: ScriptedRemote[] = [];
const queues: { q: QueueModule; trace: Trace }[] = [];
const policies = new Map<string, StsPolicy>();
let flaky: ScriptedRemote;
let rejecting: ScriptedRemote;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'postern-queue-'));
  chmodSync(root, 0o755);
  base = randomLoopbackBase();
  pki = makePki(join(root, 'pki'));
  const pfCert = pki.issue('mx-pf', ['mx.pf.test']);
  const remoteCert = pki.issue('remote', ['mx.flaky.test', 'mx.reject.test']);
  knot = await startKnot({ test: zoneText('test', [
    'pf MX 10 mx.pf', `mx.pf A ${base}.1`,
    'flaky MX 10 mx.flaky', `mx.flaky A ${base}.2`,
    'reject MX 10 mx.reject', `mx.reject A ${base}.3`,
    'down MX 10 mx.down', `mx.down A ${base}.4`,
    'nomail MX 0 .',
    'sts MX 10 mx.sts', `mx.sts A ${base}.1`,
    'stsnames MX 10 mx.pf',
    'relay A 127.0.0.1',
    `relay465 A ${base}.5`,
    `implicit A ${base}.9`,
    'slow MX 10 mx.slow', `mx.slow A ${base}.6`,
    'small MX 10 mx.small', `mx.small A ${base}.8`,
    'brokentls MX 10 mx.brokentls', `mx.brokentls A ${base}.10`,
    'stuck MX 10 mx.stuck', `mx.stuck A ${base}.11`,
    '_mta-sts.published TXT "v=STSv1; id=20261128T1"', `mta-sts.published A ${base}.7`,
    '_mta-sts.badcert TXT "v=STSv1; id=20261128T2"', `mta-sts.badcert A ${base}.7`,
  ], { ttl: 5, ns: 'ns' }) });
  resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([`127.0.0.1:${knot.port}`]);
  postfix = await startPostfix(join(root, 'postfix'), { address: `${base}.1`, hostname: 'mx.pf.test', domain: 'pf.test', certFile: pfCert.certFile, keyFile: pfCert.keyFile });
  flaky = await startScriptedRemote({ host: `${base}.2`, port: 25, key: remoteCert.key, cert: remoteCert.cert, rcptReply: (_a, n) => (n === 0 ? '451 4.7.1 greylisted, try again later' : undefined) });
  rejecting = await startScriptedRemote({ host: `${base}.3`, port: 25, key: remoteCert.key, cert: remoteCert.cert, rcptReply: () => '550 5.1.1 no such user here' });
  remotes.push(flaky, rejecting);
});

after(async () => {
  for (const { q, trace } of queues) {
    await q.service.stop(Date.now() + 2000);
    trace.close();
  }
  for (const r of remotes) await r.close();
  for (const st of stores) await st.close();
  await postfix?.stop();
  await knot?.stop();
  await rm(root, { recursive: true, force: true });
});

const limits = { maxMessageBytes: 10 * 1024 * 1024, maxRecipients: 100, maxConnectionsPerIp: 20, maxLineBytes: 65536 };

function makeQueue(name: string, alice: AliceStore, overrides: Partial<QueueDeps> = {}): { q: QueueModule; trace: Trace; stateDir: string } {
  const stateDir = join(root, name);
  const trace = openTrace(stateDir);
  const store: DeliveryStore = alice.store;
  const q = createQueue({
    config: { hostname: 'mail.home.test', relay: undefined, limits },
    stateDir,
    store,
    trace,
    warn: () => {},
    resolver,
    stsPolicy: async (domain) => policies.get(domain) ?? { mode: 'none', mx: [] },
    ...overrides,
    tuning: { retryScheduleMs: [300], rescanMs: 1000, idleSessionMs: 1000, client: { ca: pki.ca, connectTimeoutMs: 5000 }, ...overrides.tuning },
  });
  queues.push({ q, trace });
  return { q, trace, stateDir };
}

let seq = 0;
function message(from: string, to: string, subject: string): Buffer {
  seq++;
  return Buffer.from(`From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <q${seq}.${Date.now()}@home.test>\r\nDate: ${new Date().toUTCString()}\r\n\r\nBody of ${subject}.\r\n`);
}

/** What the pipeline does for remote recipients: spool, then hand them to the queue. */
async function submit(q: QueueModule, from: string, to: string[], subject: string, prependHeaders?: string): Promise<string> {
  const entry = await q.spool.accept(
    { from, to, client: { remoteAddress: '127.0.0.1', helo: 'client.test', tls: true, listener: 'submission' }, authenticatedUser: from },
    Readable.from([message(from, to[0]!, subject)]),
  );
  await q.spool.enqueueRemote(entry.id, to, prependHeaders ? { prependHeaders } : {});
  return entry.id;
}

describe('outbound queue', () => {
  it('finds where mail goes: MX, implicit MX from an A record, null MX, missing domain, IDN', async () => {
    assert.deepEqual(await resolveMxRoute(resolver, 'PF.test'), { kind: 'hosts', implicit: false, hosts: [{ name: 'mx.pf.test', addresses: [`${base}.1`] }] });
    assert.deepEqual(await resolveMxRoute(resolver, 'implicit.test'), { kind: 'hosts', implicit: true, hosts: [{ name: 'implicit.test', addresses: [`${base}.9`] }] });
    const nullMx = await resolveMxRoute(resolver, 'nomail.test');
    assert.equal(nullMx.kind, 'permanent');
    const missing = await resolveMxRoute(resolver, 'missing.test');
    assert.deepEqual(missing, { kind: 'permanent', reason: 'domain missing.test does not exist (NXDOMAIN)' });
    const idn = await resolveMxRoute(resolver, 'bücher.test');
    assert.deepEqual(idn, { kind: 'permanent', reason: 'domain xn--bcher-kva.test does not exist (NXDOMAIN)' }, 'looked up by its A-label');
    assert.equal((await resolveMxRoute(resolver, '[192.0.2.1]')).kind, 'permanent');
  });

  it('fetches a published MTA-STS policy over HTTPS (TXT record through our resolver), and none from a host with a wrong certificate', async () => {
    const cert = pki.issue('mta-sts', ['mta-sts.published.test']);
    const https = createHttpsServer({ key: cert.key, cert: cert.cert }, (req, res) => {
      if (req.url !== '/.well-known/mta-sts.txt') { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('version: STSv1\r\nmode: enforce\r\nmx: mx.published.test\r\nmx: *.backup.published.test\r\nmax_age: 86400\r\n');
    });
    await new Promise<void>((resolve) => https.listen(443, `${base}.7`, resolve));
    try {
      const probe = fileURLToPath(new URL('./support/sts-probe.ts', import.meta.url));
      // Asynchronous: the HTTPS server answering the child runs in this process.
      const r = await execFileAsync(process.execPath, [probe, String(knot.port), 'published.test', 'badcert.test', 'pf.test'], {
        encoding: 'utf8', timeout: 30_000, env: { ...process.env, NODE_EXTRA_CA_CERTS: pki.caFile },
      });
      const got = JSON.parse(r.stdout) as Record<string, StsPolicy>;
      assert.deepEqual(got['published.test'], { mode: 'enforce', mx: ['mx.published.test', '*.backup.published.test'] });
      assert.deepEqual(got['badcert.test'], { mode: 'none', mx: [] }, 'a policy host whose certificate does not match is not trusted');
      assert.deepEqual(got['pf.test'], { mode: 'none', mx: [] }, 'no _mta-sts record');
      assert.equal(mxAllowed(got['published.test']!, 'mx.published.test'), true);
      assert.equal(mxAllowed(got['published.test']!, 'a.backup.published.test'), true);
      assert.equal(mxAllowed(got['published.test']!, 'evil.test'), false);
    } finally {
      await new Promise((resolve) => https.close(resolve));
    }
  });

  it('delivers to Postfix found through MX, over STARTTLS with a verified certificate under MTA-STS enforce, reusing connections', async () => {
    policies.set('pf.test', { mode: 'enforce', mx: ['mx.pf.test'] });
    const store = await aliceStoreIn(join(root, 'store-pf'));
    const { q, trace } = makeQueue('pf', store, { tuning: { perDestinationConcurrency: 2 } });
    await q.service.start();
    const tlsSessions = () => (postfix.log().match(/smtpd\[\d+\]: \w+ TLS connection established from/g) ?? []).length;
    const connectsBefore = tlsSessions();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push(await submit(q, 'alice@home.test', ['bob@pf.test', 'carol@pf.test'], `pf-${i}`, 'DKIM-Signature: v=1; d=home.test; s=test; b=dGVzdA==\r\n'));
    }
    // Postfix's virtual agent writes one copy per recipient: 4 messages x (bob, carol).
    const got = await waitFor('8 copies in the Postfix Maildir', () => {
      const m = postfix.messages().filter((x) => /Subject: pf-\d/.test(x));
      return m.length >= 8 ? m : undefined;
    });
    for (let i = 0; i < 4; i++) {
      const copies = got.filter((m) => m.includes(`Subject: pf-${i}\n`) || m.includes(`Subject: pf-${i}\r\n`));
      assert.deepEqual(copies.map((m) => /Delivered-To: (\S+)/.exec(m)?.[1]).sort(), ['bob@pf.test', 'carol@pf.test'], `pf-${i} delivered once to each`);
    }
    for (const m of got) {
      assert.match(m, /DKIM-Signature: v=1; d=home\.test/, 'prepended header sent with the message');
      assert.match(m, /Received: from mail\.home\.test .*\r?\n\s+\(using TLSv1\.[23]/, 'Postfix saw the message arrive over TLS');
    }
    assert.equal((postfix.log().match(/from=<alice@home\.test>, size=\d+, nrcpt=2 /g) ?? []).length, 4, 'one transaction per message carries both recipients');
    const connects = tlsSessions() - connectsBefore;
    assert.ok(connects >= 1 && connects <= 2, `at most 2 concurrent connections for the domain, reused across 4 messages (saw ${connects})`);
    await waitFor('spool emptied', async () => (await q.fileSpool.list()).length === 0);
    const events = trace.get(ids[0]!)!.events;
    const delivered = events.filter((e) => e.kind === 'delivered');
    assert.deepEqual(delivered.map((e) => e.recipient).sort(), ['bob@pf.test', 'carol@pf.test']);
    assert.equal(delivered[0]!.data.secure, true);
    assert.equal(delivered[0]!.data.mtaSts, 'enforce');
    assert.match(delivered[0]!.detail, /^250 /);
    assert.ok(events.some((e) => e.kind === 'removed'));
  });

  it('under MTA-STS enforce refuses an MX whose certificate does not match, and one the policy does not list', async () => {
    policies.set('sts.test', { mode: 'enforce', mx: ['mx.sts.test'] });
    policies.set('stsnames.test', { mode: 'enforce', mx: ['mx.other.test'] });
    const { q } = makeQueue('sts', await aliceStoreIn(join(root, 'store-sts')), { tuning: { retryScheduleMs: [60_000] } });
    await q.service.start();
    const badCert = await submit(q, 'alice@home.test', ['dave@sts.test'], 'sts-cert');
    const notListed = await submit(q, 'alice@home.test', ['erin@stsnames.test'], 'sts-names');
    const a = await waitFor('attempt on the mismatched certificate', async () => {
      const e = await q.fileSpool.load(badCert);
      return e?.recipients[0]?.attempts ? e : undefined;
    });
    assert.equal(a.recipients[0]!.status, 'queued', 'deferred, not delivered and not bounced');
    assert.match(a.recipients[0]!.lastResult ?? '', /mx\.sts\.test.*(certificate|altnames|Hostname)/i);
    const b = await waitFor('attempt with no listed MX', async () => {
      const e = await q.fileSpool.load(notListed);
      return e?.recipients[0]?.attempts ? e : undefined;
    });
    assert.equal(b.recipients[0]!.status, 'queued');
    assert.match(b.recipients[0]!.lastResult ?? '', /MTA-STS policy of stsnames\.test \(enforce\) allows none/);
    await sleep(300);
    assert.equal(postfix.messages().filter((m) => /Subject: sts-/.test(m)).length, 0, 'nothing reached Postfix');
  });

  it('without MTA-STS, falls back to plaintext on the same host when its STARTTLS handshake is broken', async () => {
    const broken = await startBrokenTlsRemote(`${base}.10`, 25);
    try {
      const { q, trace } = makeQueue('brokentls', await aliceStoreIn(join(root, 'store-brokentls')));
      await q.service.start();
      const id = await submit(q, 'alice@home.test', ['una@brokentls.test'], 'broken-tls');
      await waitFor('delivered in plaintext', () => broken.received.find((m) => /Subject: broken-tls/.test(m)));
      assert.equal(broken.starttlsAttempts, 1, 'STARTTLS was tried first');
      await waitFor('spool emptied', async () => (await q.fileSpool.list()).length === 0);
      const delivered = trace.get(id)!.events.find((e) => e.kind === 'delivered')!;
      assert.equal(delivered.data.secure, false);
      // With MTA-STS enforce the same failure must not fall back.
      policies.set('brokentls.test', { mode: 'enforce', mx: ['mx.brokentls.test'] });
      const id2 = await submit(q, 'alice@home.test', ['vic@brokentls.test'], 'broken-tls-enforced');
      const e = await waitFor('attempt under enforce', async () => { const x = await q.fileSpool.load(id2); return x?.recipients[0]?.attempts ? x : undefined; });
      assert.equal(e.recipients[0]!.status, 'queued');
      assert.equal(broken.received.filter((m) => /Subject: broken-tls-enforced/.test(m)).length, 0);
    } finally {
      await broken.close();
    }
  });

  it('retries a 4xx with backoff and delivers on the next attempt', async () => {
    const { q, trace } = makeQueue('flaky', await aliceStoreIn(join(root, 'store-flaky')));
    await q.service.start();
    const id = await submit(q, 'alice@home.test', ['frank@flaky.test'], 'flaky-1');
    await waitFor('delivery after the retry', () => flaky.received.find((m) => /Subject: flaky-1/.test(m.data)));
    await waitFor('spool emptied', async () => (await q.fileSpool.list()).length === 0);
    assert.deepEqual(flaky.rcpts.filter((r) => r.address === 'frank@flaky.test').map((r) => r.reply.slice(0, 3)), ['451', '250']);
    const events = trace.get(id)!.events.filter((e) => e.recipient === 'frank@flaky.test');
    assert.deepEqual(events.filter((e) => e.kind !== 'attempt').map((e) => e.kind), ['deferred', 'delivered']);
    assert.match(events.find((e) => e.kind === 'deferred')!.detail, /451 4\.7\.1 greylisted/);
    assert.equal(flaky.received.at(-1)!.secure, true, 'STARTTLS offered, so used');
  });

  it('bounces a 5xx: a DSN in the local sender\'s INBOX, through the queue with <> for a remote sender, none for a bounce', async () => {
    const store = await aliceStoreIn(join(root, 'store-reject'));
    const { q, trace } = makeQueue('reject', store);
    await q.service.start();
    await submit(q, 'alice@home.test', ['gina@reject.test'], 'reject-local');
    const [dsn] = await waitFor('DSN in alice\'s INBOX', async () => { const m = await store.inbox(); return m.length ? m : undefined; });
    assert.match(dsn!, /^Content-Type: multipart\/report; report-type=delivery-status;/m);
    assert.match(dsn!, /^To: <alice@home\.test>/m);
    assert.match(dsn!, /^Content-Type: message\/delivery-status/m);
    assert.match(dsn!, /^Final-Recipient: rfc822; gina@reject\.test$/m);
    assert.match(dsn!, /^Action: failed$/m);
    assert.match(dsn!, /^Status: 5\.1\.1$/m);
    assert.match(dsn!, /^Remote-MTA: dns; mx\.reject\.test$/m);
    assert.match(dsn!, /^Diagnostic-Code: smtp; 550 5\.1\.1 no such user here$/m);
    assert.match(dsn!, /^Subject: reject-local$/m, 'original headers included');

    // A remote sender's bounce goes out through the queue, with the null sender, to Postfix.
    await submit(q, 'harry@pf.test', ['ivan@reject.test'], 'reject-remote');
    const bounce = await waitFor('bounce delivered to Postfix', () => postfix.messages().find((m) => /Final-Recipient: rfc822; ivan@reject\.test/.test(m)));
    assert.match(bounce, /^Return-Path: <>$/m, 'sent with MAIL FROM:<>');
    assert.match(bounce, /^Delivered-To: harry@pf\.test$/m);

    // A message from the null sender that fails gets no DSN.
    await waitFor('queue empty', async () => (await q.fileSpool.list()).length === 0);
    const entry = await q.spool.accept({ from: '', to: ['judy@reject.test'], client: { remoteAddress: '127.0.0.1', helo: 'x', tls: false, listener: 'mx' } }, Readable.from([message('mailer-daemon@x.test', 'judy@reject.test', 'bounce-of-bounce')]));
    await q.spool.enqueueRemote(entry.id, ['judy@reject.test']);
    await waitFor('null-sender message failed and removed', async () => !(await q.fileSpool.load(entry.id)));
    assert.ok(rejecting.rcpts.some((r) => r.address === 'judy@reject.test'));
    await sleep(300);
    assert.deepEqual(await q.fileSpool.list(), [], 'no DSN entry was queued');
    assert.ok(trace.get(entry.id)!.events.some((e) => e.kind === 'dsn' && /null sender/.test(e.detail)));
    assert.equal((await store.inbox()).length, 1);
  });

  it('bounces a permanent local delivery failure reported by the pipeline, even when the entry is removed at once', async () => {
    const store = await aliceStoreIn(join(root, 'store-local'));
    const { q } = makeQueue('local', store);
    await q.service.start();
    const entry = await q.spool.accept(
      { from: 'alice@home.test', to: ['zed@home.test'], client: { remoteAddress: '127.0.0.1', helo: 'c', tls: true, listener: 'submission' } },
      Readable.from([message('alice@home.test', 'zed@home.test', 'local-full')]),
    );
    await q.spool.markLocal(entry.id, 'zed@home.test', { ok: false, permanent: true, message: '552 5.2.2 mailbox full' });
    assert.equal(await q.spool.removeIfDone(entry.id), true);
    const [dsn] = await waitFor('DSN for the local failure', async () => { const m = await store.inbox(); return m.length ? m : undefined; });
    assert.match(dsn!, /^Final-Recipient: rfc822; zed@home\.test$/m);
    assert.match(dsn!, /^Status: 5\.2\.2$/m);
    assert.match(dsn!, /^Subject: local-full$/m, 'original headers kept although the entry is gone');
  });

  it('bounces at once a message larger than the SIZE the remote announces', async () => {
    const cert = pki.issue('small', ['mx.small.test']);
    const small = await startScriptedRemote({ host: `${base}.8`, port: 25, key: cert.key, cert: cert.cert, size: 100 });
    remotes.push(small);
    const store = await aliceStoreIn(join(root, 'store-small'));
    const { q } = makeQueue('small', store);
    await q.service.start();
    await submit(q, 'alice@home.test', ['sam@small.test'], 'too-big');
    const [dsn] = await waitFor('DSN for the oversized message', async () => { const m = await store.inbox(); return m.length ? m : undefined; });
    assert.match(dsn!, /^Status: 5\.3\.4$/m);
    assert.match(dsn!, /larger than mx\.small\.test accepts/);
    assert.equal(small.received.length, 0);
  });

  it('queues the DSN for a local sender when the store cannot take it now', async () => {
    const store = await aliceStoreIn(join(root, 'store-broken'));
    store.store.deliver = async () => { throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }); };
    const { q, trace } = makeQueue('broken', store);
    await q.service.start();
    const id = await submit(q, 'alice@home.test', ['tom@reject.test'], 'store-broken');
    const ev = await waitFor('DSN queued', () => trace.get(id)?.events.find((e) => e.kind === 'dsn'));
    assert.match(ev.detail, /^bounce queued to alice@home\.test as [0-9a-f]{24}$/);
    const dsnId = String(ev.data.dsnId);
    const dsnEvents = await waitFor('the DSN entry attempted', () => trace.get(dsnId)?.events.find((e) => e.kind === 'failed'));
    assert.match(dsnEvents.detail, /home\.test does not exist/, 'sent like any mail (here the test domain has no DNS)');
  });

  it('fails a null MX domain permanently without connecting anywhere', async () => {
    const store = await aliceStoreIn(join(root, 'store-nullmx'));
    const { q } = makeQueue('nullmx', store);
    await q.service.start();
    await submit(q, 'alice@home.test', ['kim@nomail.test'], 'nullmx');
    const [dsn] = await waitFor('DSN for the null MX', async () => { const m = await store.inbox(); return m.length ? m : undefined; });
    assert.match(dsn!, /^Status: 5\.1\.10$/m);
    assert.match(dsn!, /null MX/);
    assert.doesNotMatch(dsn!, /^Remote-MTA:/m);
  });

  it('sends a delay notice, then gives up at expiry with a DSN', async () => {
    const store = await aliceStoreIn(join(root, 'store-down'));
    const { q } = makeQueue('down', store, { tuning: { retryScheduleMs: [200], maxAgeMs: 1500, delayNoticeMs: 0 } });
    await q.service.start();
    const id = await submit(q, 'alice@home.test', ['leo@down.test'], 'down-1');
    const notices = await waitFor('delay notice and final DSN', async () => { const m = await store.inbox(); return m.length >= 2 ? m : undefined; });
    assert.match(notices[0]!, /^Action: delayed$/m);
    assert.match(notices[0]!, /^Will-Retry-Until: /m);
    assert.match(notices[0]!, /ECONNREFUSED/);
    assert.match(notices[1]!, /^Action: failed$/m);
    assert.match(notices[1]!, /^Status: 4\.4\.7$/m);
    assert.match(notices[1]!, /gave up after/);
    assert.equal(notices.length, 2, 'exactly one delay notice');
    await waitFor('entry removed', async () => !(await q.fileSpool.load(id)));
  });

  it('survives a restart: a queued entry is delivered by the next queue instance on the same state folder', async () => {
    const store = await aliceStoreIn(join(root, 'store-restart'));
    const first = makeQueue('restart', store);
    const id = await submit(first.q, 'alice@home.test', ['mona@pf.test'], 'restart-1'); // scheduler never started
    first.trace.close();
    queues.splice(queues.findIndex((x) => x.q === first.q), 1);
    const second = makeQueue('restart', store);
    assert.equal((await second.q.fileSpool.load(id))?.recipients[0]?.status, 'queued');
    await second.q.service.start();
    await waitFor('delivered after restart', () => postfix.messages().find((m) => /Subject: restart-1/.test(m)));
    await waitFor('entry removed', async () => !(await second.q.fileSpool.load(id)));
  });

  it('after a SIGKILL mid-delivery, a restarted queue delivers every message (none lost, at most the in-flight ones twice)', async () => {
    const N = 40;
    const stateDir = join(root, 'crash');
    const alice = await aliceStoreIn(join(root, 'store-crash'));
    const seeding = makeQueue('crash', alice); // same state folder; scheduler not started: spool only
    const subjects: string[] = [];
    for (let i = 0; i < N; i++) {
      subjects.push(`crash-${i}`);
      await submit(seeding.q, 'alice@home.test', [`u${i}@pf.test`], `crash-${i}`);
    }
    seeding.trace.close();
    queues.splice(queues.findIndex((x) => x.q === seeding.q), 1);
    const delivered = () => postfix.messages().filter((m) => /Subject: crash-\d+\r?\n/.test(m)).map((m) => /Subject: (crash-\d+)/.exec(m)![1]!);
    const runner = fileURLToPath(new URL('./support/queue-runner.ts', import.meta.url));
    const child = spawn(process.execPath, [runner, stateDir, String(knot.port), pki.caFile], { stdio: ['ignore', 'ignore', 'inherit'] });
    try {
      await waitFor('some deliveries before the kill', () => delivered().length >= 8);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    const atKill = delivered().length;
    assert.ok(atKill < N, `killed mid-run (${atKill} of ${N} delivered)`);
    const { q } = makeQueue('crash', alice);
    await q.service.start();
    await waitFor('spool emptied after restart', async () => (await q.fileSpool.list()).length === 0, 60_000);
    // Postfix files what it accepted into the Maildir a moment later.
    await waitFor('every message in the Maildir', () => new Set(delivered()).size === N).catch(() => {});
    await sleep(200);
    const got = delivered();
    assert.deepEqual([...new Set(got)].sort(), [...subjects].sort(), 'every message delivered');
    assert.ok(got.length - N <= 5, `duplicates only for sessions in flight at the kill (at most 5): ${got.length - N}`);
  });

  it('stop() lets an in-flight delivery finish and records it', async () => {
    const cert = pki.issue('slow', ['mx.slow.test']);
    const slow = await startScriptedRemote({ host: `${base}.6`, port: 25, key: cert.key, cert: cert.cert, dataDelayMs: 800 });
    remotes.push(slow);
    const { q } = makeQueue('drain', await aliceStoreIn(join(root, 'store-drain')));
    await q.service.start();
    const id = await submit(q, 'alice@home.test', ['ruth@slow.test'], 'drain-1');
    await waitFor('the message is being transferred', () => slow.received.length > 0);
    await q.service.stop(Date.now() + 10_000);
    assert.equal(await q.fileSpool.load(id), null, 'the remote\'s 250 was recorded before stop() resolved, and the entry removed');
  });

  it('stop() cuts a delivery still running at its deadline and keeps the recipient queued for the next start', async () => {
    const cert = pki.issue('stuck', ['mx.stuck.test']);
    const stuck = await startScriptedRemote({ host: `${base}.11`, port: 25, key: cert.key, cert: cert.cert, dataDelayMs: 60_000 });
    remotes.push(stuck);
    const { q } = makeQueue('cut', await aliceStoreIn(join(root, 'store-cut')));
    await q.service.start();
    const id = await submit(q, 'alice@home.test', ['will@stuck.test'], 'cut-1');
    await waitFor('the message is being transferred', () => stuck.received.length > 0);
    await q.service.stop(Date.now() + 200);
    const e = await q.fileSpool.load(id);
    assert.equal(e?.recipients[0]?.status, 'queued', 'not recorded as sent: the remote never answered');
  });

  it('relay mode sends everything through the smarthost, over STARTTLS with AUTH', async () => {
    const relayCert = pki.issue('relay', ['relay.test']);
    const relay = await startScriptedRemote({ host: '127.0.0.1', port: 0, key: relayCert.key, cert: relayCert.cert, auth: { user: 'postern', pass: 's3cret pass' } });
    remotes.push(relay);
    const passwordFile = join(root, 'relay-password');
    await writeFile(passwordFile, 's3cret pass\n', { mode: 0o600 });
    const { q } = makeQueue('relay', await aliceStoreIn(join(root, 'store-relay')), {
      config: { hostname: 'mail.home.test', limits, relay: { host: 'relay.test', port: relay.port, username: 'postern', passwordFile } },
    });
    await q.service.start();
    await submit(q, 'alice@home.test', ['nina@pf.test', 'oscar@reject.test'], 'relayed-1');
    const m = await waitFor('message at the smarthost', () => relay.received.find((x) => /Subject: relayed-1/.test(x.data)));
    assert.deepEqual(m.to.sort(), ['nina@pf.test', 'oscar@reject.test'], 'one transaction for every recipient domain');
    assert.equal(m.secure, true);
    assert.equal(m.user, 'postern');
    assert.deepEqual(relay.logins, [{ user: 'postern', ok: true }]);
    assert.equal(postfix.messages().filter((x) => /Subject: relayed-1/.test(x)).length, 0, 'not sent to the MX');

    // A wrong password is a temporary failure: the message waits in the queue.
    await writeFile(passwordFile, 'wrong\n');
    const bad = makeQueue('relay-bad', await aliceStoreIn(join(root, 'store-relay-bad')), {
      config: { hostname: 'mail.home.test', limits, relay: { host: 'relay.test', port: relay.port, username: 'postern', passwordFile } },
      tuning: { retryScheduleMs: [60_000] },
    });
    await bad.q.service.start();
    const id = await submit(bad.q, 'alice@home.test', ['pia@pf.test'], 'relayed-2');
    const e = await waitFor('failed AUTH recorded', async () => { const x = await bad.q.fileSpool.load(id); return x?.recipients[0]?.attempts ? x : undefined; });
    assert.equal(e.recipients[0]!.status, 'queued');
    assert.match(e.recipients[0]!.lastResult ?? '', /535/);
    assert.equal(relay.received.filter((x) => /Subject: relayed-2/.test(x.data)).length, 0);
  });

  it('relay mode on port 465 uses implicit TLS', async () => {
    const relayCert = pki.issue('relay465', ['relay465.test']);
    const relay = await startScriptedRemote({ host: `${base}.5`, port: 465, implicitTls: true, key: relayCert.key, cert: relayCert.cert, auth: { user: 'postern', pass: 'pw465' } });
    remotes.push(relay);
    const passwordFile = join(root, 'relay465-password');
    await writeFile(passwordFile, 'pw465\n', { mode: 0o600 });
    const { q } = makeQueue('relay465', await aliceStoreIn(join(root, 'store-relay465')), {
      config: { hostname: 'mail.home.test', limits, relay: { host: 'relay465.test', port: 465, username: 'postern', passwordFile } },
    });
    await q.service.start();
    await submit(q, 'alice@home.test', ['quinn@pf.test'], 'relayed-465');
    const m = await waitFor('message at the 465 smarthost', () => relay.received.find((x) => /Subject: relayed-465/.test(x.data)));
    assert.equal(m.secure, true);
    assert.equal(m.user, 'postern');
  });
});

// Host monitoring: blocklist and certificate checks against the real DNS peers (Knot + Unbound; zen.bl.test lists
// the faulty host), results recorded in the state folder, and exactly one notice per new problem delivered into
// the postmaster's INBOX of a real store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { simpleParser } from 'mailparser';
import { ensureDebianPackages } from '../../support/debian.ts';
import { startDoctorWorld, FAULTY, type DoctorWorld } from './doctor-world.ts';
import { makeTestCa } from './test-pki.ts';
import { createStore } from '../../../src/server/store/create-store.ts';
import type { MailStore } from '../../../src/server/store/types.ts';
import { Monitor, readMonitorRecord } from '../../../src/server/diagnostics/monitor.ts';
import { monitorChecks } from '../../../src/server/diagnostics/monitor-service.ts';
import { dnsResolver } from '../../../src/server/diagnostics/resolver.ts';
import { SPAMHAUS_ZEN } from '../../../src/server/diagnostics/dnsbl-lists.ts';

ensureDebianPackages(['knot', 'unbound', 'openssl']);

const HASH = '$argon2id$v=19$m=65536,t=3,p=4$mvibF0f8r3Oi6Ya+maJY+g$Xw93yVX4V6lqABw/klOXpMuqPUzzpnQxlkWCz2247lY';
let world: DoctorWorld;
let dir: string;
let store: MailStore;

before(async () => {
  world = await startDoctorWorld();
  dir = await mkdtemp(join(tmpdir(), 'postern-monitor-'));
  store = await createStore({
    stateDir: join(dir, 'state'),
    users: [{ address: `alice@${FAULTY.domain}`, name: 'Alice', passwordHash: HASH, quotaBytes: 0 }],
    aliases: [{ from: `postmaster@${FAULTY.domain}`, to: [`alice@${FAULTY.domain}`] }],
    limits: { maxMessageBytes: 10 * 1024 * 1024, maxRecipients: 100, maxConnectionsPerIp: 20, maxLineBytes: 65536 },
  }, pino({ level: 'silent' }));
});

after(async () => {
  await store?.close();
  await world?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function inbox(): Promise<string[]> {
  const box = store.getMailbox(`alice@${FAULTY.domain}`, 'INBOX');
  assert.ok(box);
  const out: string[] = [];
  for (const m of store.listMessages(box.id)) {
    const raw = await store.readMessage(box.id, m.uid);
    const mail = await simpleParser(raw!);
    out.push(`${mail.subject}\n${mail.text}`);
  }
  return out;
}

test('a new listing sends one notice; the same listing next run sends none; a new failure sends another', async () => {
  const ca = await makeTestCa(join(dir, 'ca'));
  const now = Date.now();
  const valid = await ca.issue('valid', ['mail.faulty.test'], new Date(now - 86_400_000), new Date(now + 80 * 86_400_000));
  const expired = await ca.issue('expired', ['mail.faulty.test'], new Date(now - 100 * 86_400_000), new Date(now - 86_400_000));
  const certFile = join(dir, 'served.crt');
  await copyFile(valid.certFile, certFile);

  // The host name resolves through the world's DNS to the faulty host's addresses, which zen.bl.test lists.
  const resolver = dnsResolver({ servers: [world.resolverAddress] });
  const config = { domain: FAULTY.domain, hostname: 'mail.faulty.test', tls: { certFile, keyFile: valid.keyFile } };
  const stateDir = join(dir, 'state');
  const monitor = new Monitor({
    run: () => monitorChecks(config, resolver, [{ ...SPAMHAUS_ZEN, zone: 'zen.bl.test' }], new Date()),
    store, postmaster: `postmaster@${FAULTY.domain}`, hostname: 'mail.faulty.test', stateDir, intervalMs: 3_600_000,
  });

  const first = await monitor.runOnce();
  assert.deepEqual(first.newlyFailing.map((r) => r.id), ['dnsbl.zen.bl.test.192.0.2.20']);
  assert.equal(first.noticeSent, true);
  let mails = await inbox();
  assert.equal(mails.length, 1);
  assert.match(mails[0]!, /^\[postern\] mail\.faulty\.test: 1 new problem \(dnsbl\.zen\.bl\.test\.192\.0\.2\.20\)/);
  assert.match(mails[0]!, /192\.0\.2\.20 is LISTED on Spamhaus ZEN .*127\.0\.0\.2 = SBL/);
  assert.match(mails[0]!, /fix: .*https:\/\/check\.spamhaus\.org\//);

  const second = await monitor.runOnce();
  assert.equal(second.noticeSent, false);
  assert.equal((await inbox()).length, 1, 'no second notice for the same listing');
  const record = await readMonitorRecord(stateDir);
  assert.equal(record?.results.find((r) => r.id === 'server.certificate')?.status, 'ok');
  assert.deepEqual(record?.lastNotice?.ids, ['dnsbl.zen.bl.test.192.0.2.20']);

  await copyFile(expired.certFile, certFile);
  const third = await monitor.runOnce();
  assert.deepEqual(third.newlyFailing.map((r) => r.id), ['server.certificate']);
  mails = await inbox();
  assert.equal(mails.length, 2);
  assert.match(mails[1]!, /server\.certificate: .* expired on/);
  assert.match(mails[1]!, /Still failing since an earlier notice:\n\n\* dnsbl\.zen\.bl\.test\.192\.0\.2\.20/);
});

test('a notice that cannot be delivered is retried on the next run', async () => {
  const stateDir = await mkdtemp(join(dir, 'retry-'));
  let failDelivery = true;
  const delivered: Buffer[] = [];
  const monitor = new Monitor({
    run: async () => [{ id: 'x', status: 'fail', message: 'broken', fix: 'mend it' }],
    store: {
      resolveRecipient: () => ({ kind: 'local', accounts: ['alice@faulty.test'] }),
      deliver: async (_a, message) => {
        if (failDelivery) throw new Error('database busy');
        delivered.push(message);
        return { ok: true, mailbox: 'INBOX', uid: 1 };
      },
    },
    postmaster: 'postmaster@faulty.test', hostname: 'mail.faulty.test', stateDir, intervalMs: 3_600_000,
  });
  await assert.rejects(monitor.runOnce(), /database busy/);
  assert.equal(await readMonitorRecord(stateDir), null);
  failDelivery = false;
  assert.equal((await monitor.runOnce()).noticeSent, true);
  assert.equal((await monitor.runOnce()).noticeSent, false);
  assert.equal(delivered.length, 1);
  await writeFile(join(stateDir, 'monitor.json'), 'not json');
  assert.equal(await readMonitorRecord(stateDir), null);
});

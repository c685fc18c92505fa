// POP3 against real clients: Python's poplib (STLS, POP3_SSL, AUTH PLAIN, UIDL, TOP, RETR, DELE with and without
// QUIT, the lock, bad commands) and fetchmail over TLS downloading a mailbox.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { promisify } from 'node:util';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { createPop3Service } from '../../../src/server/pop3/service.ts';
import type { Service } from '../../../src/server/service.ts';
import { ensureDebianPackages } from '../../support/debian.ts';
import { message, PASSWORD, storeFixture, testTls, user, type StoreFixture, type TestTls } from '../store/fixture.ts';

ensureDebianPackages(['python3', 'fetchmail']);
const run = promisify(execFile);
const CLIENT = path.join(import.meta.dirname, 'pop3_client.py');
const ALICE = 'alice@example.com';

let f: StoreFixture;
let tls: TestTls;
let service: Service;
let plainPort = 0;
let tlsPort = 0;
let caFile = '';

async function py(scenario: string): Promise<Record<string, unknown>> {
  const { stdout } = await run('python3', [CLIENT, scenario, '127.0.0.1', String(plainPort), String(tlsPort), caFile, ALICE, PASSWORD], { timeout: 60_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

function inboxId(): number {
  return f.store.getMailbox(ALICE, 'INBOX')!.id;
}

async function resetInbox(messages: Buffer[]): Promise<void> {
  const id = inboxId();
  f.store.storeFlags(id, [[1, Infinity]], { mode: 'add', flags: ['\\Deleted'] });
  await f.store.expunge(id);
  for (const m of messages) await f.store.append(id, m);
}

before(async () => {
  f = await storeFixture([user(ALICE)]);
  tls = await testTls();
  caFile = path.join(f.stateDir, 'ca.pem');
  await writeFile(caFile, tls.certPem);
  service = createPop3Service({
    store: f.store, tls, logger: f.logger, hostname: 'mail.example.com', listenAddress: '127.0.0.1',
    ports: { pop3: 0, pop3s: 0 }, maxConnectionsPerIp: 20, limits: { authFailureDelayMs: 200 },
  });
  const listening = await service.start();
  plainPort = Number(new URL(listening.find((l) => l.scheme === 'pop3')!.url).port);
  tlsPort = Number(new URL(listening.find((l) => l.scheme === 'pop3s')!.url).port);
});

after(async () => {
  await service.stop(Date.now());
  await f.cleanup();
});

describe('POP3 with poplib', () => {
  beforeEach(async () => {
    await resetInbox([message('first', 'line one\r\nline two\r\nline three\r\n'), message('second', 'the second body\r\n')]);
  });

  it('offers STLS, refuses credentials before it, then serves STAT/LIST/UIDL/TOP/RETR', async () => {
    const r = await py('stls');
    assert.match(String(r.greeting), /^\+OK /);
    assert.ok((r.capa_plain as string[]).includes('STLS'));
    assert.ok(!(r.capa_plain as string[]).includes('USER'), 'USER must not be offered before TLS');
    assert.match(String(r.user_before_tls), /^-ERR/);
    assert.match(String(r.auth_before_tls), /^-ERR/);
    assert.ok(!(r.capa_tls as string[]).includes('STLS'));
    assert.ok((r.capa_tls as string[]).includes('SASL'));
    assert.match(String(r.pass), /^\+OK/);
    const sizes = f.store.listMessages(inboxId()).map((m) => m.size);
    assert.deepEqual(r.stat, [2, sizes[0]! + sizes[1]!]);
    assert.deepEqual(r.list, [`1 ${sizes[0]}`, `2 ${sizes[1]}`]);
    const validity = f.store.getMailbox(ALICE, 'INBOX')!.uidValidity;
    const uids = f.store.listMessages(inboxId()).map((m) => m.uid);
    assert.deepEqual(r.uidl, [`1 ${validity}.${uids[0]}`, `2 ${validity}.${uids[1]}`]);
    const top = r.top as string[];
    assert.ok(top.includes('Subject: first'));
    assert.equal(top.at(-1), 'line one', 'TOP 1 1 ends after one body line');
    const retr = r.retr as string[];
    assert.ok(retr.includes('Subject: second'));
    assert.equal(retr.at(-1), 'the second body');
    assert.match(String(r.quit), /^\+OK/);
    // RETR marks the message seen at QUIT.
    assert.deepEqual(f.store.listMessages(inboxId()).map((m) => m.flags.includes('\\Seen')), [false, true]);
  });

  it('authenticates with SASL PLAIN, with an initial response and with a continuation', async () => {
    const r = await py('sasl');
    assert.match(String(r.bad), /^-ERR \[AUTH\]/);
    assert.match(String(r.good), /^OK b'\+OK/);
    assert.deepEqual((r.stat as number[])[0], 2);
    const c = await py('sasl-continuation');
    assert.equal(String(c.challenge).trim(), '+');
    assert.match(String(c.good), /^OK b'\+OK/);
  });

  it('applies DELE only at a clean QUIT', async () => {
    const r = await py('dele-quit');
    assert.equal((r.stat_after_dele as number[])[0], 1);
    assert.match(String(r.retr_deleted), /^-ERR/);
    assert.deepEqual((r.stat_next_session as number[])[0], 1);
    assert.deepEqual(f.store.listMessages(inboxId()).length, 1);
  });

  it('keeps messages when the connection drops after DELE', async () => {
    const r = await py('dele-drop');
    assert.equal((r.stat_next_session as number[])[0], 2);
    assert.equal(f.store.listMessages(inboxId()).length, 2);
  });

  it('refuses a second session on the same mailbox with [IN-USE]', async () => {
    const r = await py('in-use');
    assert.match(String(r.second), /^-ERR \[IN-USE\]/);
    assert.equal((r.first_still_works as number[])[0], 2);
    assert.match(String(r.after_release), /^OK b'\+OK/);
  });

  it('answers bad commands with -ERR and carries on', async () => {
    const r = await py('bad-commands');
    for (const k of ['unknown', 'retr_word', 'retr_zero', 'retr_missing', 'top_no_lines', 'user_again', 'long_line', 'nul']) {
      assert.match(String(r[k]), /^-ERR/, `${k}: ${String(r[k])}`);
    }
    assert.match(String(r.noop_after), /^\+OK/);
    assert.equal((r.stat_after as number[])[0], 2);
  });

  it('answers every pipelined command, in order, however many arrive at once', async () => {
    const r = await py('pipelining');
    assert.equal(r.answered, 20000);
    assert.equal(r.all_ok, true);
    assert.match(String(r.quit), /^\+OK/);
  });

  it('dot-stuffs lines that start with a dot', async () => {
    await resetInbox([message('dots', '.hidden\r\n..two\r\n.\r\nend\r\n')]);
    const r = await py('dot-stuffing');
    assert.deepEqual((r.retr as string[]).slice(-4), ['.hidden', '..two', '.', 'end']);
  });
});

describe('POP3 STLS command injection', () => {
  it('ignores commands sent in the clear after STLS, before the handshake (RFC 2595 §3.1)', async () => {
    const plain = net.connect(plainPort, '127.0.0.1');
    const lines = lineReader(plain);
    assert.match(await lines.next(), /^\+OK/);
    plain.write('STLS\r\nUSER alice@example.com\r\n');
    assert.match(await lines.next(), /^\+OK begin TLS/);
    lines.detach();
    const secure = tlsConnect({ socket: plain, ca: tls.certPem, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => { secure.once('secureConnect', () => resolve()); secure.once('error', reject); });
    const tlsLines = lineReader(secure);
    secure.write(`PASS ${PASSWORD}\r\n`);
    assert.match(await tlsLines.next(), /^-ERR USER first/, 'the injected USER must not have been kept');
    secure.write('QUIT\r\n');
    assert.match(await tlsLines.next(), /^\+OK/);
    secure.destroy();
  });
});

/** Reads CRLF lines from a socket, one at a time. */
function lineReader(sock: Duplex): { next(): Promise<string>; detach(): void } {
  let buf = '';
  const waiting: Array<(l: string) => void> = [];
  const queued: string[] = [];
  const onData = (d: Buffer) => {
    buf += d.toString('latin1');
    for (let i = buf.indexOf('\r\n'); i !== -1; i = buf.indexOf('\r\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const w = waiting.shift();
      if (w) w(line); else queued.push(line);
    }
  };
  sock.on('data', onData);
  return {
    next: () => queued.length ? Promise.resolve(queued.shift()!) : new Promise((r) => waiting.push(r)),
    detach: () => { sock.off('data', onData); },
  };
}

describe('POP3 with fetchmail', () => {
  it('downloads the whole mailbox over TLS and deletes it on the server', async () => {
    const bodies = ['alpha body\r\n', 'beta body\r\n.leading dot\r\n', 'gamma body\r\n'];
    await resetInbox(bodies.map((b, i) => message(`fetch ${i}`, b)));
    const out = path.join(f.stateDir, 'fetched.bsmtp');
    const rc = path.join(f.stateDir, 'fetchmailrc');
    await writeFile(rc, `poll localhost via 127.0.0.1 with proto POP3 port ${tlsPort}\n` +
      `  user "${ALICE}" there with password "${PASSWORD}" is "local" here\n` +
      `  options ssl sslcertck sslcertfile "${caFile}" sslcommonname "localhost" sslproto "TLS1.2+" nokeep fetchall\n`);
    await chmod(rc, 0o600);
    const env = { ...process.env, HOME: f.stateDir, FETCHMAILHOME: f.stateDir };
    // Its own pid file: as root, fetchmail's lock is /var/run/fetchmail.pid whatever FETCHMAILHOME says, and any
    // other fetchmail on the machine (another test run, the host's own) would make this one refuse to start.
    const r = await run('fetchmail', ['-f', rc, '--pidfile', path.join(f.stateDir, 'fetchmail.pid'), '--bsmtp', out, '--nosyslog', '-v'], { env, timeout: 60_000 }).catch((e: { stdout: string; stderr: string; code: number }) => e);
    const text = await readFile(out, 'utf8').catch(() => '');
    assert.equal((r as { code?: number }).code ?? 0, 0, `fetchmail failed: ${(r as { stderr: string }).stderr}`);
    for (let i = 0; i < 3; i++) assert.ok(text.includes(`Subject: fetch ${i}`), `message ${i} missing from fetchmail output`);
    assert.ok(text.includes('..leading dot'), 'BSMTP output keeps the message line that starts with a dot (stuffed again)');
    assert.equal(f.store.listMessages(inboxId()).length, 0, 'nokeep: fetchmail deleted every message at QUIT');
  });
});

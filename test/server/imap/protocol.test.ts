// Exact protocol behaviour over a bare TLS connection, for what client libraries hide: ESEARCH, STATUS items,
// LIST-EXTENDED, LSUB, NAMESPACE, ID, ENABLE, CLOSE vs UNSELECT, BINARY, AUTHENTICATE with a continuation,
// IDLE without a mailbox, STARTTLS command injection, QUOTA, and APPEND's date-time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { RawImap, taggedLine } from './raw-client.ts';
import { PASSWORD, USER, startImap, type ImapHarness } from './harness.ts';

let h: ImapHarness;
let c: RawImap;

before(async () => {
  h = await startImap({ quotaBytes: 1024 * 1024 });
  c = await RawImap.tls(h.imapsPort, h.certPem);
  assert.match(taggedLine(await c.command('l', `LOGIN "${USER}" "${PASSWORD}"`), 'l'), /^l OK/);
  for (let i = 1; i <= 5; i++) {
    const body = `From: p${i}@example.org\r\nSubject: item ${i}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from([i, 0, 255, 10]).toString('base64')}\r\n`;
    const flags = i % 2 ? '(\\Seen)' : '()';
    assert.match(taggedLine(await c.command('a', `APPEND INBOX ${flags} " 7-Nov-2026 09:08:07 +0130" {${body.length}+}\r\n${body}`), 'a'), /^a OK \[APPENDUID/);
  }
});

after(async () => {
  c.close();
  await h.stop();
});

test('APPEND keeps the date-time with its zone as INTERNALDATE', async () => {
  await c.command('s', 'SELECT INBOX');
  assert.match(await c.command('f', 'FETCH 1 INTERNALDATE'), /\* 1 FETCH \(INTERNALDATE "07-Nov-2026 09:08:07 \+0130"\)/);
});

test('ESEARCH: RETURN (MIN MAX COUNT ALL) with and without UID', async () => {
  const r = await c.command('e1', 'SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN');
  assert.match(r, /\* ESEARCH \(TAG "e1"\) MIN 2 MAX 4 ALL 2,4 COUNT 2\r\n/);
  const u = await c.command('e2', 'UID SEARCH RETURN (COUNT) SEEN');
  assert.match(u, /\* ESEARCH \(TAG "e2"\) UID COUNT 3\r\n/);
  const none = await c.command('e3', 'SEARCH RETURN () SUBJECT nothing-matches');
  assert.match(none, /\* ESEARCH \(TAG "e3"\)\r\n/);
  assert.match(await c.command('e4', 'SEARCH CHARSET KOI8-R ALL'), /^e4 NO \[BADCHARSET \(UTF-8 US-ASCII\)\]/m);
  assert.match(await c.command('e5', 'SEARCH 2:3 NOT 3'), /\* SEARCH 2\r\n/);
});

test('SEARCHRES: RETURN (SAVE) keeps the result for $ in FETCH, STORE and SEARCH', async () => {
  const saved = await c.command('r1', 'UID SEARCH RETURN (SAVE) UNSEEN');
  assert.doesNotMatch(saved, /ESEARCH/, 'SAVE alone answers with no ESEARCH');
  assert.match(await c.command('r2', 'FETCH $ (UID)'), /\* 2 FETCH \(UID 2\)\r\n\* 4 FETCH \(UID 4\)\r\n/);
  assert.match(await c.command('r3', 'SEARCH RETURN (SAVE COUNT) $ SUBJECT "item 4"'), /\* ESEARCH \(TAG "r3"\) COUNT 1/);
  assert.match(await c.command('r4', 'UID FETCH $ (FLAGS)'), /\* 4 FETCH \(UID 4 FLAGS \((\\Recent)?\)\)\r\nr4 OK/);
  await c.command('u', 'UNSELECT');
  await c.command('s', 'SELECT INBOX');
  assert.doesNotMatch(await c.command('r5', 'FETCH $ (UID)'), /FETCH \(UID/, 'the saved result ends with the selection');
});

test('BINARY decodes the transfer encoding; BINARY.SIZE gives the decoded size', async () => {
  const r = await c.command('b', 'FETCH 3 (BINARY.PEEK[1] BINARY.SIZE[1])');
  assert.ok(r.includes('BINARY[1] ~{4}\r\n\x03\x00\xff\n'), JSON.stringify(r));
  assert.match(r, /BINARY\.SIZE\[1\] 4/);
});

test('STATUS with SIZE, DELETED, HIGHESTMODSEQ; NAMESPACE; ID', async () => {
  assert.match(await c.command('st', 'STATUS INBOX (MESSAGES UNSEEN DELETED SIZE HIGHESTMODSEQ UIDNEXT)'), /\* STATUS "?INBOX"? \(MESSAGES 5 UNSEEN 2 DELETED 0 SIZE \d+ HIGHESTMODSEQ \d+ UIDNEXT 6\)/);
  assert.match(await c.command('n', 'NAMESPACE'), /\* NAMESPACE \(\("" "\/"\)\) NIL NIL\r\n/);
  assert.match(await c.command('i', 'ID ("name" "raw-test" "version" "1")'), /\* ID \("name" "Postern"/);
  assert.match(await c.command('q', 'GETQUOTAROOT INBOX'), /\* QUOTAROOT "?INBOX"? ""\r\n\* QUOTA "" \(STORAGE \d+ 1024\)\r\n/);
  assert.match(await c.command('q2', 'GETQUOTA "other"'), /^q2 NO \[NONEXISTENT\]/m);
});

test('LIST-EXTENDED: SUBSCRIBED with RECURSIVEMATCH, RETURN (CHILDREN STATUS), special-use selection; LSUB', async () => {
  await c.command('c1', 'CREATE Lists/Work');
  await c.command('c2', 'SUBSCRIBE Lists/Work');
  await c.command('c3', 'SUBSCRIBE Gone/Away');
  const sub = await c.command('l1', 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"');
  assert.match(sub, /\* LIST \(\\HasChildren\) "\/" "?Lists"? \("CHILDINFO" \("SUBSCRIBED"\)\)\r\n/);
  assert.match(sub, /\* LIST \(\\HasChildren \\Subscribed\) "\/" "?INBOX"?|\* LIST \(\\HasNoChildren \\Subscribed\) "\/" "?INBOX"?/);
  const all = await c.command('l2', 'LIST (SUBSCRIBED) "" "*"');
  assert.match(all, /\* LIST \(\\NonExistent \\Subscribed\) "\/" "?Gone\/Away"?\r\n/);
  const st = await c.command('l3', 'LIST "" "Lists/*" RETURN (CHILDREN STATUS (MESSAGES))');
  assert.match(st, /\* LIST \(\\HasNoChildren\) "\/" "?Lists\/Work"?\r\n\* STATUS "?Lists\/Work"? \(MESSAGES 0\)\r\n/);
  const su = await c.command('l4', 'LIST (SPECIAL-USE) "" "*"');
  assert.equal([...su.matchAll(/^\* LIST/gm)].length, 5, su);
  assert.match(await c.command('l5', 'LSUB "" "*"'), /\* LSUB \(\\Noselect\) "\/" "?Gone\/Away"?\r\n/);
  assert.match(await c.command('l6', 'LIST "" ""'), /\* LIST \(\\Noselect\) "\/" ""\r\n/);
});

test('UNSELECT keeps \\Deleted messages; CLOSE expunges them silently', async () => {
  await c.command('s', 'SELECT INBOX');
  await c.command('d', 'STORE 5 +FLAGS.SILENT (\\Deleted)');
  assert.doesNotMatch(await c.command('u', 'UNSELECT'), /EXPUNGE/);
  assert.match(await c.command('s2', 'SELECT INBOX'), /\* 5 EXISTS/);
  const closed = await c.command('x', 'CLOSE');
  assert.doesNotMatch(closed, /EXPUNGE/);
  assert.match(taggedLine(closed, 'x'), /^x OK/);
  assert.match(await c.command('s3', 'STATUS INBOX (MESSAGES)'), /MESSAGES 4/);
  assert.match(taggedLine(await c.command('f', 'FETCH 1 FLAGS'), 'f'), /^f BAD/, 'no mailbox is selected after CLOSE');
});

test('IDLE works without a selected mailbox and ends with DONE', async () => {
  c.write('i IDLE\r\n');
  await c.readUntil(/^\+ [^\r\n]*\r\n/m);
  c.write('DONE\r\n');
  assert.match(await c.readUntil(/^i (OK|BAD|NO)[^\r\n]*\r\n/m), /^i OK/m);
});

test('ENABLE answers only what it enabled; CONDSTORE adds MODSEQ to FETCH FLAGS', async () => {
  const r = await c.command('e', 'ENABLE CONDSTORE X-UNKNOWN');
  assert.match(r, /\* ENABLED CONDSTORE\r\n/);
  await c.command('s', 'SELECT INBOX');
  assert.match(await c.command('f', 'FETCH 1 (FLAGS)'), /\* 1 FETCH \(FLAGS \([^)]*\) MODSEQ \(\d+\)\)/);
  assert.match(await c.command('c', 'FETCH 1:* (UID) (CHANGEDSINCE 1)'), /MODSEQ/);
  await c.command('u', 'UNSELECT');
});

test('AUTHENTICATE PLAIN with a continuation, and cancelled with *', async () => {
  const a = await RawImap.tls(h.imapsPort, h.certPem);
  a.write('x AUTHENTICATE PLAIN\r\n');
  await a.readUntil(/^\+ [^\r\n]*\r\n/m);
  a.write('*\r\n');
  assert.match(taggedLine(await a.readUntil(/^x (OK|NO|BAD)[^\r\n]*\r\n/m), 'x'), /^x BAD/);
  a.write('y AUTHENTICATE PLAIN\r\n');
  await a.readUntil(/^\+ [^\r\n]*\r\n/m);
  a.write(`${Buffer.from(`\0${USER}\0${PASSWORD}`).toString('base64')}\r\n`);
  assert.match(taggedLine(await a.readUntil(/^y (OK|NO|BAD)[^\r\n]*\r\n/m), 'y'), /^y OK \[CAPABILITY /);
  a.close();
});

test('STARTTLS: commands sent with it in plaintext are dropped, not run after the handshake', async () => {
  const p = await RawImap.plain(h.imapPort);
  p.write(`s STARTTLS\r\nb LOGIN "${USER}" "${PASSWORD}"\r\n`);
  await p.readUntil(/^s OK[^\r\n]*\r\n/m);
  p.socket.removeAllListeners('data');
  const t = tlsConnect({ socket: p.socket, ca: [h.certPem], servername: 'localhost' });
  await new Promise<void>((res, rej) => { t.once('secureConnect', () => res()); t.once('error', rej); });
  let got = '';
  t.on('data', (d: Buffer) => { got += d.toString('latin1'); });
  t.write('c CAPABILITY\r\n');
  for (let i = 0; i < 100 && !/^c OK/m.test(got); i++) await new Promise((r) => setTimeout(r, 20));
  assert.doesNotMatch(got, /^b /m, 'the injected LOGIN got no answer');
  assert.match(got, /AUTH=PLAIN/);
  assert.doesNotMatch(got, /LOGINDISABLED|STARTTLS/);
  t.destroy();
});

test('UID EXPUNGE removes only the given \\Deleted messages; COPY/MOVE/APPEND to a missing mailbox say TRYCREATE; quota is enforced', async () => {
  await c.command('a1', 'APPEND INBOX (\\Deleted) {14+}\r\nSubject: d1\r\n\r\n');
  await c.command('a2', 'APPEND INBOX (\\Deleted) {14+}\r\nSubject: d2\r\n\r\n');
  await c.command('s', 'SELECT INBOX');
  const uids = [...(await c.command('f', 'UID SEARCH DELETED')).matchAll(/\d+/g)].map((m) => Number(m[0])).filter((n) => n > 5);
  assert.equal(uids.length, 2);
  const x = await c.command('x', `UID EXPUNGE ${uids[0]}`);
  assert.equal([...x.matchAll(/^\* \d+ EXPUNGE/gm)].length, 1);
  assert.match(await c.command('y', 'UID SEARCH DELETED'), new RegExp(`\\* SEARCH ${uids[1]}\\r\\n`));
  assert.match(await c.command('m', 'MOVE 1 NoSuchBox'), /^m NO \[TRYCREATE\]/m);
  assert.match(await c.command('k', 'COPY 1 NoSuchBox'), /^k NO \[TRYCREATE\]/m);
  assert.match(await c.command('p', 'APPEND NoSuchBox {14+}\r\nSubject: zz\r\n\r\n'), /^p NO \[TRYCREATE\]/m);
  const big = `Subject: big\r\n\r\n${'x'.repeat(1_100_000)}\r\n`;
  assert.match(await c.command('q', `APPEND INBOX {${big.length}+}\r\n${big}`), /^q NO \[OVERQUOTA\]/m);
  await c.command('u', 'UNSELECT');
});

// Bad input over a real TLS connection: each gets its protocol error and the session goes on; limits end a
// connection with BYE, never with a crash. Also the state rules (wrong state, LOGINDISABLED before TLS).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawImap, taggedLine } from './raw-client.ts';
import { PASSWORD, USER, startImap, type ImapHarness } from './harness.ts';

let h: ImapHarness;
const clients: RawImap[] = [];

before(async () => {
  h = await startImap({ limits: { maxLiteralBytes: 4096, maxAppendBytes: 100_000, maxLineBytes: 8192, maxCommandsBeforeAuth: 15, maxConnectionsPerIp: 12, maxAuthFailures: 3 } });
});
after(async () => {
  for (const c of clients) c.close();
  await h.stop();
});

async function tlsClient(): Promise<RawImap> {
  const c = await RawImap.tls(h.imapsPort, h.certPem);
  clients.push(c);
  return c;
}

async function loggedIn(): Promise<RawImap> {
  const c = await tlsClient();
  assert.match(taggedLine(await c.command('l', `LOGIN "${USER}" "${PASSWORD}"`), 'l'), /^l OK/);
  return c;
}

test('before TLS, LOGIN and AUTHENTICATE are refused and LOGINDISABLED is advertised', async () => {
  const c = await RawImap.plain(h.imapPort);
  clients.push(c);
  const caps = await c.command('c', 'CAPABILITY');
  assert.match(caps, /LOGINDISABLED/);
  assert.match(caps, /STARTTLS/);
  assert.doesNotMatch(caps, /AUTH=PLAIN/);
  assert.match(taggedLine(await c.command('l', `LOGIN "${USER}" "${PASSWORD}"`), 'l'), /^l NO \[PRIVACYREQUIRED\]/);
  const plain = Buffer.from(`\0${USER}\0${PASSWORD}`).toString('base64');
  assert.match(taggedLine(await c.command('a', `AUTHENTICATE PLAIN ${plain}`), 'a'), /^a NO \[PRIVACYREQUIRED\]/);
  assert.match(taggedLine(await c.command('n', 'NOOP'), 'n'), /^n OK/);
});

test('commands in the wrong state get BAD and the session goes on', async () => {
  const c = await tlsClient();
  assert.match(taggedLine(await c.command('a', 'SELECT INBOX'), 'a'), /^a BAD/);
  assert.match(taggedLine(await c.command('b', 'FETCH 1 FLAGS'), 'b'), /^b BAD/);
  assert.match(taggedLine(await c.command('c', 'ENABLE CONDSTORE'), 'c'), /^c BAD/);
  assert.match(taggedLine(await c.command('d', `LOGIN "${USER}" "${PASSWORD}"`), 'd'), /^d OK/);
  assert.match(taggedLine(await c.command('e', `LOGIN "${USER}" "${PASSWORD}"`), 'e'), /^e BAD/);
  assert.match(taggedLine(await c.command('f', 'EXPUNGE'), 'f'), /^f BAD/);
  assert.match(taggedLine(await c.command('g', 'CLOSE'), 'g'), /^g BAD/);
  assert.match(taggedLine(await c.command('h', 'UID FOO 1'), 'h'), /^h BAD/);
  assert.match(taggedLine(await c.command('i', 'UID LIST "" *'), 'i'), /^i BAD/);
  assert.match(taggedLine(await c.command('j', 'NOOP'), 'j'), /^j OK/);
});

test('unbalanced parentheses, NUL and 8-bit bytes get BAD and the session goes on', async () => {
  const c = await loggedIn();
  assert.match(taggedLine(await c.command('s', 'SELECT INBOX'), 's'), /^s OK \[READ-WRITE\]/);
  assert.match(taggedLine(await c.command('a', 'FETCH 1:* (FLAGS (UID)'), 'a'), /^a BAD .*parenthes/i);
  assert.match(taggedLine(await c.command('b', 'FETCH 1:* FLAGS)'), 'b'), /^b BAD .*parenthes/i);
  assert.match(taggedLine(await c.command('c', Buffer.from('STATUS INB\0OX (MESSAGES)', 'latin1')), 'c'), /^c BAD .*NUL/);
  assert.match(taggedLine(await c.command('d', Buffer.from('STATUS INB\xe9OX (MESSAGES)', 'latin1')), 'd'), /^d BAD .*8-bit/);
  assert.match(taggedLine(await c.command('e', Buffer.from('STATUS "INB\xe9OX" (MESSAGES)', 'latin1')), 'e'), /^e BAD/);
  assert.match(taggedLine(await c.command('f', 'SEARCH (FLAGGED'), 'f'), /^f BAD/);
  assert.match(taggedLine(await c.command('g', 'FETCH 1 (BODY[1.MIME)'), 'g'), /^g BAD/);
  assert.match(taggedLine(await c.command('h', 'NOOP'), 'h'), /^h OK/);
});

test('a literal announced larger than the limit is refused at once; the session goes on', async () => {
  const c = await loggedIn();
  c.write('a STATUS {5000}\r\n');
  const r = await c.readUntil(/^a (OK|NO|BAD)[^\r\n]*\r\n/m);
  assert.match(taggedLine(r, 'a'), /^a BAD \[TOOBIG\]/);
  assert.doesNotMatch(r, /^\+ /m, 'no continuation was offered');
  c.write('b APPEND INBOX {200000}\r\n');
  assert.match(taggedLine(await c.readUntil(/^b (OK|NO|BAD)[^\r\n]*\r\n/m), 'b'), /^b NO \[TOOBIG\]/);
  // A non-synchronising one that is too large arrives anyway: it is skipped, not stored.
  c.write(`c APPEND INBOX {150000+}\r\n${'x'.repeat(150000)}\r\n`);
  assert.match(taggedLine(await c.readUntil(/^c (OK|NO|BAD)[^\r\n]*\r\n/m), 'c'), /^c NO \[TOOBIG\]/);
  assert.match(taggedLine(await c.command('d', 'STATUS INBOX (MESSAGES)'), 'd'), /^d OK/);
  const long = await c.command('e', `NOOP ${'y'.repeat(20000)}`);
  assert.match(taggedLine(long, 'e'), /^e BAD \[TOOBIG\]/);
  assert.match(taggedLine(await c.command('f', 'NOOP'), 'f'), /^f OK/);
});

test('mailbox names with .., empty levels, wildcards, control characters or too long are refused', async () => {
  const c = await loggedIn();
  for (const [tag, name] of [['a', '"x/../y"'], ['b', '".."'], ['c', '"/abs"'], ['d', '"a//b"'], ['e', '"a%b"'], ['f', '"a*b"'], ['g', `"${'n'.repeat(300)}"`], ['h', `"${'n/'.repeat(600)}n"`], ['i', '"a\tb"']] as const) {
    const line = taggedLine(await c.command(tag, `CREATE ${name}`), tag);
    assert.match(line, new RegExp(`^${tag} (NO|BAD)`), `${name} → ${line}`);
  }
  assert.match(taggedLine(await c.command('j', 'SELECT "x/../INBOX"'), 'j'), /^j (NO|BAD)/);
  const list = await c.command('k', 'LIST "" *');
  assert.doesNotMatch(list, /\.\.|a%b|a\*b/, 'none of them was created');
  assert.match(taggedLine(await c.command('l', 'CREATE "Projects/2026"'), 'l'), /^l OK/);
  assert.match(await c.command('m', 'LIST "" "Projects/%"'), /\* LIST \(\\HasNoChildren\) "\/" "?Projects\/2026"?\r\n/);
});

test('before login, an APPEND literal is held to the small literal limit', async () => {
  const c = await tlsClient();
  c.write('a APPEND INBOX {50000}\r\n');
  assert.match(taggedLine(await c.readUntil(/^a (OK|NO|BAD)[^\r\n]*\r\n/m), 'a'), /^a BAD \[TOOBIG\]/);
  assert.match(taggedLine(await c.command('b', 'APPEND INBOX {3+}\r\nabc'), 'b'), /^b BAD .*not allowed before authentication/);
});

test('failed logins are delayed and limited per connection, then BYE', async () => {
  const c = await tlsClient();
  assert.match(taggedLine(await c.command('a', `LOGIN "${USER}" wrong`), 'a'), /^a NO \[AUTHENTICATIONFAILED\]/);
  assert.match(taggedLine(await c.command('b', `LOGIN nobody@example.test wrong`), 'b'), /^b NO \[AUTHENTICATIONFAILED\]/);
  const r = await c.command('c', `LOGIN "${USER}" wrong`);
  assert.match(r, /^\* BYE \[LIMIT\]/m);
  await c.waitClosed();
});

test('too many commands before authentication end with BYE', async () => {
  const c = await tlsClient();
  for (let i = 0; i < 15; i++) await c.command(`n${i}`, 'NOOP');
  c.write('z NOOP\r\n');
  assert.match(await c.readUntil(/^\* BYE[^\r\n]*\r\n/m), /BYE \[LIMIT\]/);
  await c.waitClosed();
});

test('connections over the per-address limit get BYE; the others keep working', async () => {
  const extra: RawImap[] = [];
  let refused = 0;
  for (let i = 0; i < 14; i++) {
    try {
      const c = await RawImap.tls(h.imapsPort, h.certPem);
      extra.push(c);
    } catch (err) {
      if (/BYE \[LIMIT\]/.test(String(err))) refused++;
      else throw err;
    }
  }
  // Each refused connection got "* BYE [LIMIT]" as its greeting.
  const byes = extra.filter((c) => c.closed).length + refused;
  assert.ok(byes >= 1, 'at least one connection was refused');
  for (const c of extra) c.close();
  await new Promise((r) => setTimeout(r, 200));
  const ok = await loggedIn();
  assert.match(taggedLine(await ok.command('x', 'NOOP'), 'x'), /^x OK/);
});

// Python's imaplib (Debian's python3) as the client: STARTTLS, LOGIN, APPEND and SEARCH with synchronising
// literals, FETCH RFC822 (which sets \Seen), STORE, UID COPY, EXPUNGE, LIST with modified UTF-7 names.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ensureDebianPackages } from '../../support/debian.ts';
import { PASSWORD, USER, startImap, type ImapHarness } from './harness.ts';

ensureDebianPackages(['python3']);

let h: ImapHarness;

interface ScriptOutput {
  pre_caps: string[]; login: string; caps: string[]; append: string; create: string; list: string[]; exists: string;
  search_literal: string; search_plain: string; flags_before: string; rfc822: string; rfc822_head: string;
  flags_after: string; partial: string; copy_status: string; copy: string; store: string; expunge: string[];
  status: string; logout: string;
}
before(async () => { h = await startImap(); });
after(async () => { await h.stop(); });

const SCRIPT = String.raw`
import imaplib, json, os, ssl, sys
ctx = ssl.create_default_context(cafile=os.environ['CA'])
ctx.check_hostname = False
out = {}
M = imaplib.IMAP4('127.0.0.1', int(os.environ['PORT']))
out['pre_caps'] = list(M.capabilities)
M.starttls(ssl_context=ctx)
out['login'] = M.login(os.environ['USER'], os.environ['PASS'])[0]
out['caps'] = M.capability()[1][0].decode().split()
msg = 'From: py@example.org\r\nTo: alice@example.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from Python\r\n\r\nline one\r\nline "two" \\ three\r\n'.encode()
out['append'] = M.append('INBOX', '(\\Flagged $Py)', imaplib.Time2Internaldate(1780000000), msg)[1][0].decode()
out['create'] = M.create('"Entw&APw-rfe/Q4"')[0]
out['list'] = [x.decode() for x in M.list('""', '*')[1]]
typ, data = M.select('INBOX')
out['exists'] = data[0].decode()
M.literal = 'Grüße'.encode()
out['search_literal'] = M.uid('SEARCH', 'CHARSET', 'UTF-8', 'SUBJECT')[1][0].decode()
out['search_plain'] = M.search(None, 'FLAGGED', 'KEYWORD', '$Py')[1][0].decode()
out['flags_before'] = M.fetch('1', '(FLAGS)')[1][0].decode()
typ, data = M.fetch('1', '(RFC822 FLAGS)')
out['rfc822'] = data[0][1].decode()
out['rfc822_head'] = data[0][0].decode()
out['flags_after'] = M.fetch('1', '(FLAGS)')[1][0].decode()
out['partial'] = M.fetch('1', '(BODY.PEEK[TEXT]<5.8>)')[1][0][1].decode()
out['copy_status'] = M.uid('COPY', '1', '"Entw&APw-rfe/Q4"')[0]
out['copy'] = M.response('COPYUID')[1][0].decode()
out['store'] = M.store('1', '+FLAGS', '(\\Deleted)')[1][0].decode()
out['expunge'] = [x.decode() for x in M.expunge()[1] if x]
out['status'] = M.status('"Entw&APw-rfe/Q4"', '(MESSAGES UIDNEXT)')[1][0].decode()
out['logout'] = M.logout()[0]
print(json.dumps(out))
`;

test('imaplib over STARTTLS: literals, fetch, store, copy, expunge, modified UTF-7', async () => {
  // Asynchronous: the server runs in this process.
  const r = await promisify(execFile)('/usr/bin/python3', ['-c', SCRIPT], {
    env: { ...process.env, PORT: String(h.imapPort), CA: h.certFile, USER, PASS: PASSWORD },
    encoding: 'utf8', timeout: 60000,
  });
  const out = JSON.parse(r.stdout) as ScriptOutput;
  assert.ok(out.pre_caps.includes('STARTTLS') && out.pre_caps.includes('LOGINDISABLED'));
  assert.equal(out.login, 'OK');
  assert.ok(out.caps.includes('UIDPLUS'));
  assert.match(out.append, /\[APPENDUID \d+ 1\]/);
  assert.equal(out.create, 'OK');
  assert.ok(out.list.some((l) => /"Entw&APw-rfe\/Q4"$|Entw&APw-rfe\/Q4$/.test(l)), out.list.join('\n'));
  assert.equal(out.exists, '1');
  assert.equal(out.search_literal, '1', 'SEARCH with a UTF-8 literal');
  assert.equal(out.search_plain, '1');
  assert.doesNotMatch(out.flags_before, /\\Seen/);
  assert.match(out.rfc822, /^From: py@example.org\r\n/);
  assert.match(out.rfc822, /line "two" \\ three\r\n$/);
  assert.match(out.flags_after, /\\Seen/, 'RFC822 sets \\Seen');
  assert.equal(out.partial, 'one\r\nlin');
  assert.equal(out.copy_status, 'OK');
  assert.match(out.copy, /^\d+ 1 1$/, 'COPYUID');
  assert.deepEqual(out.expunge, ['1']);
  assert.match(out.status, /MESSAGES 1 UIDNEXT 2/);
  assert.equal(out.logout, 'BYE');
});

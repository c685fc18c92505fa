// Properties over arbitrary input: the MIME parser never throws and its offsets stay inside the message; mailbox
// names either are refused or map to a single safe folder name that maps back to the same name.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseMessage, toCrlf } from '../../../src/server/store/mime.ts';
import { folderName, mailboxNameFromFolder, normalizeMailboxName } from '../../../src/server/store/names.ts';
import type { BodyStructure } from '../../../src/server/store/types.ts';
import { StoreError } from '../../../src/server/store/types.ts';

function* parts(b: BodyStructure): Generator<BodyStructure> {
  yield b;
  if (b.kind === 'multipart') for (const p of b.parts) yield* parts(p);
  else if (b.message) yield* parts(b.message.body);
}

// MIME-ish fragments so random messages hit boundaries, nested types and encodings, not just noise.
const fragment = fc.oneof(
  fc.constantFrom('Content-Type: multipart/mixed; boundary=b\r\n', 'Content-Type: message/rfc822\r\n', '--b\r\n', '--b--\r\n',
    'Content-Type: multipart/alternative; boundary="c"\r\n', '--c\r\n', '\r\n', 'Content-Transfer-Encoding: base64\r\n',
    'Subject: =?utf-8?B?w6k=?=\r\n', 'From: "a" <b@c>, group: x@y;\r\n', '\n', '\r', ': \r\n'),
  fc.string({ maxLength: 40 }),
);

describe('properties', () => {
  it('parseMessage never throws and keeps every part inside the message', () => {
    fc.assert(fc.property(fc.array(fragment, { maxLength: 60 }), (frags) => {
      const bytes = toCrlf(Buffer.from(frags.join('')));
      if (bytes.length === 0) return;
      const parsed = parseMessage(bytes);
      for (const p of parts(parsed.bodyStructure)) {
        const o = p.offsets;
        assert.ok(0 <= o.headerStart && o.headerStart <= o.bodyStart && o.bodyStart <= o.bodyEnd && o.bodyEnd <= bytes.length, JSON.stringify(o));
        if (p.kind === 'single') assert.equal(p.size, o.bodyEnd - o.bodyStart);
      }
      assert.ok(parsed.headerEnd <= bytes.length);
    }), { numRuns: 400 });
  });

  it('toCrlf leaves no bare CR or LF', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (arr) => {
      const out = toCrlf(Buffer.from(arr));
      for (let i = 0; i < out.length; i++) {
        if (out[i] === 13) assert.equal(out[i + 1], 10);
        if (out[i] === 10) assert.equal(out[i - 1], 13);
      }
    }), { numRuns: 400 });
  });

  it('a mailbox name is refused, or maps to one safe folder that maps back', () => {
    const name = fc.array(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('..', '.', '%', '*', 'INBOX', 'a.b', 'ü', '日本')), { minLength: 1, maxLength: 5 })
      .map((xs) => xs.join('/'));
    fc.assert(fc.property(name, (n) => {
      let canonical: string;
      try {
        canonical = normalizeMailboxName(n);
      } catch (err) {
        assert.ok(err instanceof StoreError && err.code === 'CANNOT');
        return;
      }
      const folder = folderName(canonical);
      assert.ok(!folder.includes('/') && !folder.includes('\0') && folder !== '.' && folder !== '..', folder);
      if (canonical !== 'INBOX') assert.equal(mailboxNameFromFolder(folder), canonical);
    }), { numRuns: 1000 });
  });
});

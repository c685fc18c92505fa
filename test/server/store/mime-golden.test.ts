// ENVELOPE and BODYSTRUCTURE over a MIME corpus (test/fixtures/mime): each message's parse must equal its
// reviewed golden JSON, and a few facts a mail client relies on are checked explicitly besides.
// Regenerate goldens after a deliberate change with POSTERN_UPDATE_GOLDEN=1 and review the diff.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseMessage, toCrlf } from '../../../src/server/store/mime.ts';
import type { BodyStructure, SinglePart } from '../../../src/server/store/types.ts';

const DIR = path.join(import.meta.dirname, '../../fixtures/mime');
const files = readdirSync(DIR).filter((f) => f.endsWith('.eml')).sort();

function load(name: string) {
  const bytes = toCrlf(readFileSync(path.join(DIR, name)));
  return { bytes, parsed: parseMessage(bytes) };
}

function leaves(b: BodyStructure): SinglePart[] {
  if (b.kind === 'multipart') return b.parts.flatMap(leaves);
  return b.message ? [b, ...leaves(b.message.body)] : [b];
}

describe('MIME golden corpus', () => {
  it('has a corpus', () => assert.ok(files.length >= 8));
  for (const file of files) {
    it(`${file}: ENVELOPE and BODYSTRUCTURE match the golden file`, () => {
      const { parsed } = load(file);
      const actual = { envelope: parsed.envelope, bodyStructure: parsed.bodyStructure, sentDay: parsed.sentDay };
      const golden = path.join(DIR, file.replace(/\.eml$/, '.json'));
      if (process.env.POSTERN_UPDATE_GOLDEN === '1') writeFileSync(golden, JSON.stringify(actual, null, 2) + '\n');
      assert.deepEqual(JSON.parse(JSON.stringify(actual)), JSON.parse(readFileSync(golden, 'utf8')));
    });
  }
});

describe('MIME facts', () => {
  it('part offsets slice exactly the part bodies', () => {
    const { bytes, parsed } = load('nested.eml');
    const parts = leaves(parsed.bodyStructure);
    assert.deepEqual(parts.map((p) => `${p.type}/${p.subtype}`), ['text/plain', 'text/html', 'image/png', 'application/pdf']);
    const text = bytes.subarray(parts[0]!.offsets.bodyStart, parts[0]!.offsets.bodyEnd).toString();
    assert.equal(text, 'Plain part with the word pangolin.');
    const pdf = Buffer.from(bytes.subarray(parts[3]!.offsets.bodyStart, parts[3]!.offsets.bodyEnd).toString(), 'base64');
    assert.ok(pdf.toString().startsWith('%PDF-1.4 fake pdf bytes'));
    assert.equal(parts[3]!.size, parts[3]!.offsets.bodyEnd - parts[3]!.offsets.bodyStart);
    assert.deepEqual(parts[3]!.disposition, { type: 'attachment', params: [['filename*', "UTF-8''R%C3%A9sum%C3%A9.pdf"], ['size', '480']] });
    assert.deepEqual(parts[3]!.language, ['en', 'fr']);
    assert.equal(parts[2]!.id, '<img1@x>');
  });

  it('keeps encoded words raw in ENVELOPE but decodes every charset for search', () => {
    const { parsed } = load('encoded-words.eml');
    assert.equal(parsed.envelope.subject, '=?UTF-8?Q?Caf=C3=A9?= =?ISO-8859-2?Q?_=BF=F3=B3w?= and =?koi8-r?B?8NLJ18XU?=');
    assert.match(parsed.headerText, /subject: Café żółw and Привет/);
    assert.match(parsed.headerText, /日本語/);
    assert.match(parsed.headerText, /André Müller/);
    assert.match(parsed.bodyText, /Привет, мир!/);
    // Group syntax: start marker, members, end marker.
    const to = parsed.envelope.to!;
    assert.deepEqual(to.map((a) => [a.mailbox, a.host]), [['jp', 'example.jp'], ['Team', null], ['one', 'example.com'], ['two', 'example.com'], [null, null]]);
    assert.equal(parsed.sentDay, '2026-11-28');
  });

  it('parses an attached message/rfc822 with its own envelope and structure', () => {
    const { parsed } = load('rfc822.eml');
    const b = parsed.bodyStructure;
    assert.equal(b.kind, 'multipart');
    const msg = (b as { parts: BodyStructure[] }).parts[1] as SinglePart;
    assert.equal(`${msg.type}/${msg.subtype}`, 'message/rfc822');
    assert.equal(msg.message!.envelope.subject, 'original');
    assert.equal(msg.message!.envelope.from![0]!.host, 'example.net');
    assert.equal(msg.message!.body.kind, 'multipart');
    assert.ok(msg.lines! > 10);
    assert.match(parsed.bodyText, /axolotl/);
  });

  it('tolerates malformed MIME without losing text', () => {
    const { parsed } = load('malformed.eml');
    const parts = leaves(parsed.bodyStructure);
    assert.equal(parts.length, 3);
    assert.equal(parsed.sentDay, null, 'an unparseable Date: has no day');
    assert.match(parsed.bodyText, /wombat/, 'the last part, without a closing boundary, is still indexed');
    const { parsed: headersOnly } = load('no-body.eml');
    assert.equal(headersOnly.envelope.subject, 'Only headers');
    assert.equal((headersOnly.bodyStructure as SinglePart).size, 0);
  });

  it('defaults digest parts to message/rfc822 and converts bare LF to CRLF', () => {
    const { parsed } = load('digest.eml');
    const parts = (parsed.bodyStructure as { parts: SinglePart[] }).parts;
    assert.deepEqual(parts.map((p) => `${p.type}/${p.subtype}`), ['message/rfc822', 'text/plain']);
    assert.equal(parts[0]!.message!.envelope.subject, 'digest entry one');
    const raw = readFileSync(path.join(DIR, 'lf-only.eml'));
    const crlf = toCrlf(raw);
    assert.equal(crlf.length, raw.length + raw.toString().split('\n').length - 1);
    assert.ok(!/[^\r]\n/.test(crlf.toString()));
  });
});

// Properties of the DATA guard and the envelope address checks (pure code, fast-check).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { readGuardedData } from '../../../src/server/smtp/data-guard.ts';
import { isProblem, parseEnvelopeAddress } from '../../../src/server/smtp/addresses.ts';

const lineChars = fc.string({ unit: fc.constantFrom(...'abc XYZ.:-\t0189é'.split('')), maxLength: 80 });
const crlfMessage = fc.array(lineChars, { minLength: 1, maxLength: 30 }).map((lines) => `${lines.join('\r\n')}\r\n`);

/** Streams `data` in the given chunk sizes, so CR and LF can fall on either side of a chunk boundary. */
function chunked(data: Buffer, sizes: number[]): Readable {
  const parts: Buffer[] = [];
  let at = 0;
  for (const s of sizes) { if (at >= data.length) break; parts.push(data.subarray(at, at + s)); at += s; }
  if (at < data.length) parts.push(data.subarray(at));
  return Readable.from(parts);
}

test('messages whose lines all end in CRLF pass unchanged, however they are chunked', async () => {
  await fc.assert(fc.asyncProperty(crlfMessage, fc.array(fc.integer({ min: 1, max: 7 }), { maxLength: 40 }), async (m, sizes) => {
    const data = Buffer.from(m);
    const r = await readGuardedData(chunked(data, sizes), 1 << 20);
    assert.ok(r.ok);
    assert.ok(r.message.equals(data));
  }));
});

test('one bare LF or bare CR anywhere refuses the message, however it is chunked', async () => {
  await fc.assert(fc.asyncProperty(crlfMessage, fc.nat(), fc.constantFrom('\n', '\r'), fc.array(fc.integer({ min: 1, max: 7 }), { maxLength: 40 }), async (m, pos, bad, sizes) => {
    // Insert at a point that is not inside an existing CRLF, so the bad byte stays bare.
    const cuts = [...m.matchAll(/(?<!\r)(?=[^\n])|^/g)].map((x) => x.index!).filter((i) => m[i - 1] !== '\r');
    const at = cuts[pos % cuts.length]!;
    const data = Buffer.from(m.slice(0, at) + bad + (bad === '\r' ? 'x' : '') + m.slice(at));
    const r = await readGuardedData(chunked(data, sizes), 1 << 20);
    assert.equal(r.ok, false, JSON.stringify(data.toString()));
    if (!r.ok) assert.equal(r.reason, bad === '\n' ? 'bare-lf' : 'bare-cr');
  }));
});

/** The rule spelled out byte by byte: the first bare CR, bare LF or NUL, and where it is. */
function firstProblem(data: Buffer): { reason: string; offset: number } | null {
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0x0d && data[i + 1] !== 0x0a) return { reason: 'bare-cr', offset: i };
    if (data[i] === 0x0a && data[i - 1] !== 0x0d) return { reason: 'bare-lf', offset: i };
    if (data[i] === 0) return { reason: 'nul', offset: i };
  }
  return null;
}

test('any bytes: the guard finds the first bare CR, bare LF or NUL at its offset, however they are chunked', async () => {
  const bytes = fc.array(fc.constantFrom(0x0d, 0x0a, 0x00, 0x41, 0xe9), { maxLength: 60 });
  await fc.assert(fc.asyncProperty(bytes, fc.array(fc.integer({ min: 1, max: 7 }), { maxLength: 40 }), async (b, sizes) => {
    const data = Buffer.from(b);
    const want = firstProblem(data);
    const r = await readGuardedData(chunked(data, sizes), 1 << 20);
    if (want === null) {
      assert.ok(r.ok, JSON.stringify(data.toString('latin1')));
      assert.ok(r.message.equals(data));
    } else {
      assert.equal(r.ok, false, JSON.stringify(data.toString('latin1')));
      if (!r.ok) assert.deepEqual({ reason: r.reason, offset: r.offset }, want, JSON.stringify(data.toString('latin1')));
    }
  }), { numRuns: 2000 });
});

test('a message over the limit is refused and the stream is still read to its end', async () => {
  let read = 0;
  const src = Readable.from((function* () { for (let i = 0; i < 100; i++) { read++; yield Buffer.from('x'.repeat(98) + '\r\n'); } })());
  const r = await readGuardedData(src, 5000);
  assert.equal(r.ok, false);
  assert.equal(read, 100);
});

test('plain addresses parse with the domain lower-cased; routing syntax never parses', () => {
  const r = parseEnvelopeAddress('Bob.Smith+tag@Example.COM');
  assert.ok(!isProblem(r));
  assert.equal(r.address, 'Bob.Smith+tag@example.com');
  fc.assert(fc.property(fc.string({ maxLength: 20 }), fc.constantFrom('%', '!', '"', ':', ','), fc.string({ maxLength: 20 }), (a, c, b) => {
    assert.ok(isProblem(parseEnvelopeAddress(`${a}${c}${b}@example.com`)));
  }));
  for (const bad of ['x@[1.2.3.4]', 'x@1.2.3.4', 'x@example.com.', 'x@-bad.com', 'x@localhost', '@example.com', 'x@', 'x@exa mple.com']) {
    assert.ok(isProblem(parseEnvelopeAddress(bad)), bad);
  }
});

// The byte writer of FETCH lines (fetch-lines.ts) against the response written as a plain string: same bytes for
// any numbers, flag lists (shared or with keywords), \Recent, dates and envelope texts (literals, UTF-8), never
// more than lineBound() bytes, and the whole envelope envelopeWireText() caches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LINE_ITEMS, lineBound, lineFits, writeLine } from '../../../src/server/imap/fetch-lines.ts';
import { formatDateTime } from '../../../src/server/imap/datetime.ts';
import type { FetchItem } from '../../../src/server/imap/fetch-items.ts';
import { sharedFlagList } from '../../../src/server/store/flags.ts';
import { envelopeWireText } from '../../../src/server/store/imap-envelope.ts';
import type { Envelope, FetchedMessage } from '../../../src/server/store/types.ts';

const KINDS = [...LINE_ITEMS] as Array<FetchItem['kind']>;

function expected(items: readonly FetchItem[], m: FetchedMessage, seq: number, recent: boolean): string {
  const parts = items.map((i) => {
    switch (i.kind) {
      case 'uid': return `UID ${m.uid}`;
      case 'flags': return `FLAGS (${[...m.flags, ...(recent ? ['\\Recent'] : [])].join(' ')})`;
      case 'modseq': return `MODSEQ (${m.modseq})`;
      case 'rfc822.size': return `RFC822.SIZE ${m.size}`;
      case 'internaldate': return `INTERNALDATE "${formatDateTime(m.internalDate, m.internalDateZone)}"`;
      case 'envelope': return `ENVELOPE ${m.envelopeImap}`;
      default: throw new Error(i.kind);
    }
  });
  return `* ${seq} FETCH (${parts.join(' ')})\r\n`;
}

const text = fc.option(fc.string({ unit: fc.constantFrom(...'aZ 9"\\é€😀\r\n('.split('')), maxLength: 30 }), { nil: null });
const address = fc.record({ name: text, adl: fc.constant(null), mailbox: text, host: text });
const addresses = fc.option(fc.array(address, { maxLength: 3 }), { nil: null });
const envelope: fc.Arbitrary<Envelope> = fc.record({
  date: text, subject: text, from: addresses, sender: addresses, replyTo: addresses, to: addresses, cc: addresses, bcc: addresses,
  inReplyTo: text, messageId: text,
});
const keywords = fc.array(fc.constantFrom('$Label1', 'work', 'ключ', '$Junk'), { maxLength: 3 }).map((k) => (k.length ? ` ${[...new Set(k)].join(' ')} ` : ''));
const safeInt = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

test('writeLine writes what the plain string says, within lineBound', () => {
  fc.assert(fc.property(
    fc.uniqueArray(fc.constantFrom(...KINDS), { minLength: 1, maxLength: KINDS.length }),
    fc.record({ uid: fc.integer({ min: 1, max: 2 ** 32 - 1 }), bits: fc.integer({ min: 0, max: 31 }), keywords, modseq: safeInt, size: safeInt,
      date: fc.integer({ min: 0, max: 4102444800000 }), zone: fc.integer({ min: -720, max: 840 }), envelope }),
    fc.integer({ min: 1, max: 10_000_000 }), fc.boolean(), fc.integer({ min: 0, max: 64 }),
    (kinds, r, seq, recent, offset) => {
      const items = kinds.map((kind) => ({ kind })) as FetchItem[];
      const m: FetchedMessage = {
        uid: r.uid, flags: sharedFlagList(r.bits, r.keywords), modseq: r.modseq, size: r.size, internalDate: r.date, internalDateZone: r.zone,
        envelopeImap: envelopeWireText(r.envelope),
      };
      assert.ok(lineFits(items, m, false));
      const want = Buffer.from(expected(items, m, seq, recent), 'utf8');
      const bound = lineBound(items, m);
      assert.ok(want.length <= bound, `${want.length} > ${bound}`);
      const buf = Buffer.alloc(offset + bound, 0xee);
      const end = writeLine(buf, offset, items, m, seq, recent);
      assert.equal(buf.subarray(offset, end).toString('latin1'), want.toString('latin1'));
      assert.ok(buf.subarray(0, offset).every((b) => b === 0xee), 'nothing written before the offset');
    },
  ), { numRuns: 500 });
});

test('an envelope with a literal goes through the builder for UTF-8 clients only', () => {
  const m: FetchedMessage = {
    uid: 1, flags: [], modseq: 1, size: 1, internalDate: 0, internalDateZone: 0,
    envelopeImap: envelopeWireText({ date: null, subject: 'caf\u00e9', from: null, sender: null, replyTo: null, to: null, cc: null, bcc: null, inReplyTo: null, messageId: null }),
  };
  const items: FetchItem[] = [{ kind: 'uid' }, { kind: 'envelope' }];
  assert.ok(lineFits(items, m, false));
  assert.ok(!lineFits(items, m, true));
  assert.ok(lineFits([{ kind: 'uid' }], m, true));
});

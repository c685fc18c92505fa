// FETCH and UID FETCH (RFC 9051 6.4.5) with MODSEQ, CHANGEDSINCE and VANISHED (RFC 7162). Metadata and the
// cached ENVELOPE / BODYSTRUCTURE come from the index; the message file is read only for body sections.
import type { FetchWanted, FetchedMessage } from '../../store/types.ts';
import type { CommandHandler, Session } from '../session.ts';
import { bad, no, ok } from '../session.ts';
import { parseFetchRequest, type FetchItem } from '../fetch-items.ts';
import { binaryBytes, sectionBytes } from '../body-sections.ts';
import { formatDateTime } from '../datetime.ts';
import { toUidSet, uidSetText } from '../selected.ts';
import { writeBodyStructure, writeEnvelope, type ResponseBuilder } from '../writer.ts';
import { hasLiteral } from '../../store/imap-envelope.ts';
import { LINE_ITEMS, lineBound, lineFits, writeLine } from '../fetch-lines.ts';

// Rows per store query: small enough that a batch's strings die young (cheap scavenges, no old-space growth).
const BATCH = 200;
const OUTPUT_CHUNK = 256 * 1024;

function wants(items: readonly FetchItem[]): { wanted: FetchWanted; needsBody: boolean; setsSeen: boolean } {
  const wanted: FetchWanted = {};
  let needsBody = false;
  let setsSeen = false;
  for (const i of items) {
    if (i.kind === 'envelope') wanted.envelopeImap = true;
    if (i.kind === 'bodystructure' || i.kind === 'body-structure-basic') wanted.bodyStructure = true;
    if (i.kind === 'section' || i.kind === 'binary.size') {
      const s = i.section;
      const headerOnly = i.kind === 'section' && !i.binary && s.part.length === 0 && s.text !== null && s.text.startsWith('HEADER');
      if (headerOnly) wanted.header = true;
      else {
        needsBody = true;
        wanted.bodyStructure = true;
      }
      if (i.kind === 'section' && !i.peek) setsSeen = true;
    }
  }
  return { wanted, needsBody, setsSeen };
}

function slicePartial(data: Buffer, partial: { start: number; length: number | null } | null): Buffer {
  if (!partial) return data;
  const start = Math.min(partial.start, data.length);
  const end = partial.length === null ? data.length : Math.min(start + partial.length, data.length);
  return data.subarray(start, end);
}

/** Writes one data item; returns an error text when the item cannot be served (unknown CTE). */
function writeItem(s: Session, w: ResponseBuilder, item: FetchItem, m: FetchedMessage, message: Buffer | null, recent: boolean): string | null {
  switch (item.kind) {
    case 'uid': w.raw(`UID ${m.uid}`); break;
    case 'flags': w.raw(`FLAGS (${recent ? [...m.flags, '\\Recent'].join(' ') : m.flags.join(' ')})`); break;
    case 'internaldate': w.raw('INTERNALDATE').string(formatDateTime(m.internalDate, m.internalDateZone)); break;
    case 'rfc822.size': w.raw(`RFC822.SIZE ${m.size}`); break;
    case 'modseq': w.raw(`MODSEQ (${m.modseq})`); break;
    case 'envelope':
      w.raw('ENVELOPE');
      if (m.envelopeImap !== undefined && !(w.utf8Enabled && hasLiteral(m.envelopeImap))) w.raw(m.envelopeImap);
      else {
        // A client that enabled UTF-8 reads 8-bit values as quoted strings, not as the cached literals.
        const e = m.envelope ?? s.store.fetch(s.selected!.id, [[m.uid, m.uid]], { envelope: true })[0]?.envelope;
        if (e) writeEnvelope(w, e);
        else w.nil();
      }
      break;
    case 'bodystructure':
    case 'body-structure-basic':
      w.raw(item.kind === 'bodystructure' ? 'BODYSTRUCTURE' : 'BODY');
      if (m.bodyStructure) writeBodyStructure(w, m.bodyStructure, item.kind === 'bodystructure');
      else w.nil();
      break;
    case 'binary.size': {
      const r = message && m.bodyStructure ? binaryBytes(message, m.bodyStructure, item.section.part) : null;
      if (r && !r.ok && r.reason === 'unknown-cte') return 'UNKNOWN-CTE';
      w.raw(`${item.responseName} ${r && r.ok ? r.data.length : 0}`);
      break;
    }
    case 'section': {
      let data: Buffer | null = null;
      if (item.binary) {
        const r = message && m.bodyStructure ? binaryBytes(message, m.bodyStructure, item.section.part) : null;
        if (r && !r.ok && r.reason === 'unknown-cte') return 'UNKNOWN-CTE';
        data = r && r.ok ? r.data : null;
      } else if (message && m.bodyStructure) {
        const r = sectionBytes(message, m.bodyStructure, item.section);
        data = r.ok ? r.data : null;
      } else if (m.header) {
        // Header-only sections at the top level, served from the cached header block.
        const fake = { offsets: { headerStart: 0, bodyStart: m.header.length, bodyEnd: m.header.length } };
        const r = sectionBytes(m.header, fake as never, item.section);
        data = r.ok ? r.data : null;
      }
      const name = item.partial ? `${item.responseName}<${item.partial.start}>` : item.responseName;
      const out = slicePartial(data ?? Buffer.alloc(0), item.partial);
      w.raw(name);
      if (item.binary && out.includes(0)) w.literal8(out);
      else if (out.length === 0) w.string('');
      else w.literal(out);
      break;
    }
  }
  return null;
}

export const fetch: CommandHandler = {
  name: 'FETCH',
  states: ['selected'],
  uidForm: true,
  holdsExpunges: (ctx) => !ctx.uid,
  async run(s, a, ctx) {
    const view = s.selected!;
    const set = a.sequenceSet();
    const req = parseFetchRequest(a);
    if (req.vanished && !ctx.uid) return bad('VANISHED needs UID FETCH');
    if (req.vanished && !s.qresync) return bad('VANISHED needs ENABLE QRESYNC');
    if (!ctx.uid && view.exists > 0 && view.seqOutOfRange(set)) return bad('Message sequence number out of range');
    const items = [...req.items];
    if (ctx.uid && !items.some((i) => i.kind === 'uid')) items.unshift({ kind: 'uid' });
    if (req.changedSince !== null && !items.some((i) => i.kind === 'modseq')) items.push({ kind: 'modseq' });
    if (req.changedSince !== null || items.some((i) => i.kind === 'modseq')) s.condstore = true;
    // RFC 7162 3.1.4.1: with CONDSTORE on, FLAGS come with the MODSEQ that goes with them.
    if (s.condstore && items.some((i) => i.kind === 'flags') && !items.some((i) => i.kind === 'modseq')) items.push({ kind: 'modseq' });
    const { wanted, needsBody, setsSeen } = wants(items);
    const markSeen = setsSeen && !view.readOnly;
    const uids = view.resolve(set, ctx.uid);
    if (req.vanished && req.changedSince !== null) {
      const ranges = set.map(([x, y]) => [Math.min(x ?? Infinity, y ?? Infinity), Math.max(x ?? Infinity, y ?? Infinity)] as const);
      const vanished = s.store.changesSince(view.id, req.changedSince, ranges).vanished;
      if (vanished.length) s.hold(`* VANISHED (EARLIER) ${uidSetText([...vanished].sort((x, y) => x - y))}\r\n`);
    }
    // Responses without literals (metadata, ENVELOPE, BODYSTRUCTURE) are encoded straight into one output chunk;
    // responses with literals join it as their own buffers. A full chunk is sent (waiting for the socket to drain)
    // before the next one is filled, so memory stays bounded whatever the number of messages.
    let out: Buffer[] = [];
    let chunk = Buffer.allocUnsafe(OUTPUT_CHUNK);
    let pos = 0;
    let segmentStart = 0;
    let outBytes = 0;
    // The last chunk is held to go out with the tagged answer. A chunk the socket has written out entirely (nothing
    // left in its buffer) is filled again rather than replaced: a big FETCH then allocates one or two chunks, not
    // one per 256 KiB of output.
    const flush = async (last = false): Promise<void> => {
      if (pos > segmentStart) out.push(chunk.subarray(segmentStart, pos));
      if (out.length && last) for (const b of out) s.hold(b);
      else if (out.length) await s.send(out.length === 1 ? out[0]! : Buffer.concat(out));
      out = [];
      if (!last && s.socket.writableLength > 0) chunk = Buffer.allocUnsafe(OUTPUT_CHUNK);
      pos = segmentStart = outBytes = 0;
    };
    let failure: string | null = null;
    // Flag changes by other sessions wait for the end of the command; those this FETCH answers with newer flags
    // need no unsolicited FETCH after it (a client library would take each for one more fetched message).
    const told = items.some((i) => i.kind === 'flags') && view.pending.some((e) => e.type === 'flags') ? new Map<number, number>() : null;
    // Nothing here marks \Seen (that takes a body section), so addFlags stays empty on this path.
    const lines = items.every((i) => LINE_ITEMS.has(i.kind));
    for (let i = 0; i < uids.length; i += BATCH) {
      const batch = uids.slice(i, i + BATCH);
      let metas = s.store.fetch(view.id, toUidSet(batch), wanted);
      if (req.changedSince !== null) metas = metas.filter((m) => m.modseq > req.changedSince!);
      let addFlags = new Set<number>();
      if (markSeen) {
        const unseen = metas.filter((m) => !m.flags.includes('\\Seen')).map((m) => m.uid);
        if (unseen.length) {
          const r = s.store.storeFlags(view.id, toUidSet(unseen), { mode: 'add', flags: ['\\Seen'] }, s.origin);
          const after = new Map(r.messages.map((x) => [x.uid, x]));
          for (const m of metas) {
            const x = after.get(m.uid);
            if (x) {
              m.flags = x.flags;
              m.modseq = x.modseq;
            }
          }
          addFlags = new Set(unseen);
        }
      }
      for (const m of metas) {
        const seq = view.seqOf(m.uid);
        if (seq === 0) continue;
        told?.set(m.uid, m.modseq);
        if (lines && lineFits(items, m, s.rev2)) {
          const bound = lineBound(items, m);
          if (bound <= chunk.length) {
            if (pos + bound > chunk.length) await flush();
            const end = writeLine(chunk, pos, items, m, seq, view.recent.size > 0 && view.recent.has(m.uid));
            outBytes += end - pos;
            pos = end;
            if (outBytes >= OUTPUT_CHUNK) await flush();
            continue;
          }
        }
        const message = needsBody ? await s.store.readMessage(view.id, m.uid) : null;
        if (needsBody && !message) continue; // expunged meanwhile
        const w = s.builder().raw(`* ${seq} FETCH`).open();
        for (const item of items) {
          const err = writeItem(s, w, item, m, message, view.recent.has(m.uid));
          if (err) failure = err;
        }
        if (addFlags.has(m.uid) && !items.some((x) => x.kind === 'flags')) {
          writeItem(s, w, { kind: 'flags' }, m, null, view.recent.has(m.uid));
          if (s.condstore && !items.some((x) => x.kind === 'modseq')) w.raw(`MODSEQ (${m.modseq})`);
        }
        w.close();
        const line = w.finishText();
        // A UTF-16 unit encodes to at most 3 bytes: the line fits when that many are left.
        if (line !== null && pos + line.length * 3 > chunk.length) await flush();
        if (line !== null && line.length * 3 <= chunk.length) {
          const n = chunk.write(line, pos, 'utf8');
          pos += n;
          outBytes += n;
        } else {
          if (pos > segmentStart) out.push(chunk.subarray(segmentStart, pos));
          segmentStart = pos;
          const buf = line !== null ? Buffer.from(line, 'utf8') : w.finish();
          out.push(buf);
          outBytes += buf.length;
        }
        if (outBytes >= OUTPUT_CHUNK) await flush();
      }
    }
    await flush(true);
    if (told) view.forgetFlagChanges(told);
    if (failure === 'UNKNOWN-CTE') return no('A part has a Content-Transfer-Encoding this server cannot decode', 'UNKNOWN-CTE');
    return ok(`${ctx.uid ? 'UID ' : ''}FETCH completed`);
  },
};

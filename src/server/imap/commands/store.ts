// STORE and UID STORE (RFC 9051 6.4.6) with .SILENT and UNCHANGEDSINCE (RFC 7162 3.1.3).
import type { CommandHandler } from '../session.ts';
import { no, ok } from '../session.ts';
import { Args, MAX_MODSEQ, parseNumber } from '../args.ts';
import { parseFlags } from '../flags.ts';
import { toUidSet, uidSetText } from '../selected.ts';
import { ImapSyntaxError } from '../tokens.ts';

export const store: CommandHandler = {
  name: 'STORE',
  states: ['selected'],
  uidForm: true,
  holdsExpunges: (ctx) => !ctx.uid,
  async run(s, a, ctx) {
    const view = s.selected!;
    const set = a.sequenceSet();
    let unchangedSince: number | undefined;
    if (a.peek()?.type === 'list') {
      const m = new Args(a.list('STORE modifiers'));
      while (m.remaining > 0) {
        const name = m.keyword('STORE modifier');
        if (name !== 'UNCHANGEDSINCE') throw new ImapSyntaxError(`Unknown STORE modifier ${name.slice(0, 30)}`);
        unchangedSince = parseNumber(m.atom('mod-sequence'), 'UNCHANGEDSINCE', MAX_MODSEQ);
      }
      s.condstore = true;
    }
    const itemName = a.keyword('STORE data item');
    const m = /^([+-]?)FLAGS(\.SILENT)?$/.exec(itemName);
    if (!m) throw new ImapSyntaxError(`Unknown STORE data item ${itemName.slice(0, 30)}`);
    const mode = m[1] === '+' ? 'add' : m[1] === '-' ? 'remove' : 'replace';
    const silent = m[2] !== undefined;
    const flagValues = [];
    while (a.remaining > 0) flagValues.push(...a.listOrOne('flags'));
    const flags = parseFlags(flagValues);
    if (!ctx.uid && view.exists > 0 && view.seqOutOfRange(set)) throw new ImapSyntaxError('Message sequence number out of range');
    if (view.readOnly) return no('Mailbox is read-only', 'READ-ONLY');
    const uids = view.resolve(set, ctx.uid);
    if (uids.length === 0) return ok('STORE completed (no messages)');
    const r = s.store.storeFlags(view.id, toUidSet(uids), {
      mode, flags, ...(unchangedSince !== undefined ? { unchangedSince } : {}),
    }, s.origin);
    const lines: string[] = [];
    for (const x of r.messages) {
      const seq = view.seqOf(x.uid);
      if (seq === 0) continue;
      // With CONDSTORE the client needs the new MODSEQ even for .SILENT (RFC 7162 3.1.3).
      if (silent && !(s.condstore && x.changed)) continue;
      const parts: string[] = [];
      if (!silent) parts.push(`FLAGS (${[...x.flags, ...(view.recent.has(x.uid) ? ['\\Recent'] : [])].join(' ')})`);
      if (ctx.uid) parts.push(`UID ${x.uid}`);
      if (s.condstore) parts.push(`MODSEQ (${x.modseq})`);
      lines.push(`* ${seq} FETCH (${parts.join(' ')})\r\n`);
    }
    if (lines.length) s.hold(lines.join(''));
    if (r.modified.length) {
      const ids = ctx.uid ? r.modified : r.modified.map((u) => view.seqOf(u)).filter((n) => n > 0);
      return ok('Conditional STORE failed for some messages', `MODIFIED ${uidSetText([...ids].sort((x, y) => x - y))}`);
    }
    return ok('STORE completed');
  },
};

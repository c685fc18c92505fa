// SEARCH and UID SEARCH (RFC 9051 6.4.4) with CHARSET, ESEARCH results (RFC 4731; always for IMAP4rev2) and
// MODSEQ (RFC 7162). The store evaluates the criteria over its index; this command maps sequence numbers.
import type { CommandHandler } from '../session.ts';
import { no, ok } from '../session.ts';
import { Args } from '../args.ts';
import { parseSearchKeys, type SearchContext } from '../search-keys.ts';
import { toUidSet, uidSetText } from '../selected.ts';
import { ImapSyntaxError } from '../tokens.ts';
import { quoted } from '../writer.ts';

const RETURN_OPTIONS = new Set(['MIN', 'MAX', 'ALL', 'COUNT', 'SAVE']);

export const search: CommandHandler = {
  name: 'SEARCH',
  states: ['selected'],
  uidForm: true,
  holdsExpunges: (ctx) => !ctx.uid,
  async run(s, a, ctx) {
    const view = s.selected!;
    let returns: string[] | null = null;
    if (a.accept('RETURN')) {
      returns = [];
      for (const v of a.list('RETURN options')) {
        const o = v.type === 'atom' ? v.value.toUpperCase() : '';
        if (!RETURN_OPTIONS.has(o)) throw new ImapSyntaxError(`Unknown RETURN option ${o.slice(0, 30)}`);
        if (!returns.includes(o)) returns.push(o);
      }
      if (returns.length === 0) returns.push('ALL');
    }
    if (a.accept('CHARSET')) {
      const charset = a.astring('charset').toUpperCase();
      if (charset !== 'UTF-8' && charset !== 'US-ASCII') return no(`Charset ${charset.slice(0, 30)} is not supported`, 'BADCHARSET (UTF-8 US-ASCII)');
    }
    const rest: ReturnType<Args['any']>[] = [];
    while (a.remaining > 0) rest.push(a.any('search key'));
    const sctx: SearchContext = {
      seqToUids: (set) => toUidSet(view.resolve(set, false)),
      uidSetToUids: (set) => toUidSet(view.resolve(set, true)),
      recentUids: () => toUidSet([...view.recent].sort((x, y) => x - y)),
    };
    const save = returns?.includes('SAVE') ?? false;
    let parsed;
    try {
      // `$` in the criteria means the previous saved result, so it is resolved here, before it is replaced.
      parsed = parseSearchKeys(rest, sctx);
    } finally {
      // RFC 5182: a failed SEARCH ... RETURN (SAVE) leaves an empty saved result, not the previous one.
      if (save) view.saved = [];
    }
    if (parsed.usesModseq) s.condstore = true;
    const found = s.store.search(view.id, parsed.key).filter((u) => view.seqOf(u) > 0);
    if (save && returns) {
      view.saved = found;
      // SAVE alone asks for no ESEARCH response (RFC 5182 2.1).
      if (returns.length === 1) return ok(`${ctx.uid ? 'UID ' : ''}SEARCH completed, result saved`);
    }
    const ids = ctx.uid ? found : found.map((u) => view.seqOf(u));
    let highest = 0;
    if (parsed.usesModseq && found.length) {
      for (const m of s.store.listMessages(view.id, toUidSet(found))) highest = Math.max(highest, m.modseq);
    }
    if (returns === null && s.rev2) returns = ['ALL'];
    if (returns === null) {
      const mod = parsed.usesModseq && ids.length ? ` (MODSEQ ${highest})` : '';
      s.hold(`* SEARCH${ids.map((n) => ` ${n}`).join('')}${mod}\r\n`);
    } else {
      let line = `* ESEARCH (TAG ${quoted(ctx.tag)})${ctx.uid ? ' UID' : ''}`;
      if (ids.length) {
        if (returns.includes('MIN')) line += ` MIN ${ids[0]}`;
        if (returns.includes('MAX')) line += ` MAX ${ids[ids.length - 1]}`;
        if (returns.includes('ALL')) line += ` ALL ${uidSetText(ids)}`;
      }
      if (returns.includes('COUNT')) line += ` COUNT ${ids.length}`;
      if (parsed.usesModseq && ids.length) line += ` MODSEQ ${highest}`;
      s.hold(`${line}\r\n`);
    }
    return ok(`${ctx.uid ? 'UID ' : ''}SEARCH completed`);
  },
};

// EXPUNGE and UID EXPUNGE (RFC 9051 6.4.3, 6.4.9). The untagged EXPUNGE (or VANISHED) responses come from the
// store's event for this change, written by the session before the tagged OK like any other change.
import type { CommandHandler } from '../session.ts';
import { no, ok } from '../session.ts';
import { toUidSet } from '../selected.ts';

export const expunge: CommandHandler = {
  name: 'EXPUNGE',
  states: ['selected'],
  uidForm: true,
  async run(s, a, ctx) {
    const view = s.selected!;
    let uids;
    if (ctx.uid) uids = toUidSet(view.resolve(a.sequenceSet('UID set'), true));
    a.end();
    if (view.readOnly) return no('Mailbox is read-only', 'READ-ONLY');
    if (uids && uids.length === 0) return ok('UID EXPUNGE completed');
    const r = await s.store.expunge(view.id, uids, s.origin);
    return ok(`${ctx.uid ? 'UID ' : ''}EXPUNGE completed`, s.condstore ? `HIGHESTMODSEQ ${r.highestModseq}` : undefined);
  },
};

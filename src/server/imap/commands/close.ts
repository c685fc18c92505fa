// CLOSE (RFC 9051 6.4.1): expunges \Deleted messages silently (unless read-only) and deselects.
// UNSELECT (RFC 3691): deselects without expunging.
import type { CommandHandler } from '../session.ts';
import { ok } from '../session.ts';

export const close: CommandHandler = {
  name: 'CLOSE',
  states: ['selected'],
  async run(s, a) {
    a.end();
    const view = s.selected!;
    s.leaveSelected();
    if (!view.readOnly) await s.store.expunge(view.id, undefined, s.origin);
    return ok('CLOSE completed');
  },
};

export const unselect: CommandHandler = {
  name: 'UNSELECT',
  states: ['selected'],
  async run(s, a) {
    a.end();
    s.leaveSelected();
    return ok('UNSELECT completed');
  },
};

// SUBSCRIBE and UNSUBSCRIBE (RFC 9051 6.3.7/6.3.8). Subscriptions may name mailboxes that do not exist.
import type { CommandHandler } from '../session.ts';
import { ok } from '../session.ts';

export const subscribe: CommandHandler = {
  name: 'SUBSCRIBE',
  states: ['auth', 'selected'],
  async run(s, a) {
    const name = s.mailboxName(a);
    a.end();
    s.store.setSubscribed(s.account!.address, name, true);
    return ok('SUBSCRIBE completed');
  },
};

export const unsubscribe: CommandHandler = {
  name: 'UNSUBSCRIBE',
  states: ['auth', 'selected'],
  async run(s, a) {
    const name = s.mailboxName(a);
    a.end();
    s.store.setSubscribed(s.account!.address, name, false);
    return ok('UNSUBSCRIBE completed');
  },
};

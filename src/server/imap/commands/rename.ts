// RENAME (RFC 9051 6.3.6): children move too; renaming INBOX moves its messages to a new mailbox.
import type { CommandHandler } from '../session.ts';
import { checkNewMailboxName, no, ok } from '../session.ts';

export const rename: CommandHandler = {
  name: 'RENAME',
  states: ['auth', 'selected'],
  async run(s, a) {
    const from = s.mailboxName(a, 'existing mailbox name');
    const to = s.mailboxName(a, 'new mailbox name');
    a.end();
    checkNewMailboxName(to);
    if (to === 'INBOX') return no('Cannot rename to INBOX', 'ALREADYEXISTS');
    if (!s.store.getMailbox(s.account!.address, from)) return no('Mailbox does not exist', 'NONEXISTENT');
    if (s.store.getMailbox(s.account!.address, to)) return no('Target mailbox already exists', 'ALREADYEXISTS');
    await s.store.renameMailbox(s.account!.address, from, to, s.origin);
    return ok('RENAME completed');
  },
};

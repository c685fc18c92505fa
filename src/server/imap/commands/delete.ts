// DELETE (RFC 9051 6.3.5). A mailbox with children is refused ([HASCHILDREN]) by the store; INBOX cannot go.
import type { CommandHandler } from '../session.ts';
import { no, ok } from '../session.ts';

export const deleteCommand: CommandHandler = {
  name: 'DELETE',
  states: ['auth', 'selected'],
  async run(s, a) {
    const name = s.mailboxName(a);
    a.end();
    if (name === 'INBOX') return no('INBOX cannot be deleted', 'CANNOT');
    const mb = s.store.getMailbox(s.account!.address, name);
    if (!mb) return no('Mailbox does not exist', 'NONEXISTENT');
    // Deleting the selected mailbox deselects it here rather than through the BYE other sessions get.
    if (s.selected?.id === mb.id) s.leaveSelected();
    await s.store.deleteMailbox(s.account!.address, name, s.origin);
    return ok('DELETE completed');
  },
};

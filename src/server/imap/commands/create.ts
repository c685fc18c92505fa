// CREATE (RFC 9051 6.3.4), with the USE parameter of RFC 6154 (CREATE-SPECIAL-USE).
import type { SpecialUse } from '../../store/types.ts';
import type { CommandHandler } from '../session.ts';
import { checkNewMailboxName, no, ok } from '../session.ts';
import { Args } from '../args.ts';
import { ImapSyntaxError } from '../tokens.ts';

const SPECIAL_USES = new Set(['\\Drafts', '\\Sent', '\\Junk', '\\Trash', '\\Archive']);

export const create: CommandHandler = {
  name: 'CREATE',
  states: ['auth', 'selected'],
  async run(s, a) {
    // A trailing delimiter only says the client means to put children under it (RFC 9051 6.3.4).
    let name = s.mailboxName(a);
    if (name.endsWith('/') && name.length > 1) name = name.slice(0, -1);
    let specialUse: SpecialUse | null = null;
    if (a.remaining > 0) {
      const p = new Args(a.list('CREATE parameters'));
      if (p.keyword('CREATE parameter') !== 'USE') throw new ImapSyntaxError('Unknown CREATE parameter');
      const uses = p.list('special-use list');
      p.end();
      if (uses.length !== 1 || uses[0]!.type !== 'atom') return no('Give exactly one special-use attribute', 'USEATTR');
      const use = uses[0]!.value;
      const known = [...SPECIAL_USES].find((u) => u.toLowerCase() === use.toLowerCase());
      if (!known) return no(`Unknown special-use attribute ${use.slice(0, 30)}`, 'USEATTR');
      specialUse = known as SpecialUse;
    }
    a.end();
    checkNewMailboxName(name);
    if (name === 'INBOX') return no('INBOX always exists', 'ALREADYEXISTS');
    if (s.store.getMailbox(s.account!.address, name)) return no('Mailbox already exists', 'ALREADYEXISTS');
    s.store.createMailbox(s.account!.address, name, specialUse);
    return ok('CREATE completed');
  },
};

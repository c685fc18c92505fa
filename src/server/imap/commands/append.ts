// APPEND (RFC 9051 6.3.12) with flags, date-time, LITERAL+ and the APPENDUID answer (UIDPLUS, RFC 4315).
import type { CommandHandler } from '../session.ts';
import { no, ok } from '../session.ts';
import { parseFlags } from '../flags.ts';
import { parseDateTime } from '../datetime.ts';
import { decodeUtf8 } from '../tokens.ts';

export const append: CommandHandler = {
  name: 'APPEND',
  states: ['auth', 'selected'],
  async run(s, a) {
    const name = s.mailboxName(a);
    const flags = a.peek()?.type === 'list' ? parseFlags(a.list('flag list')) : [];
    let when: { date: Date; zone: number } | null = null;
    const next = a.peek();
    if (next?.type === 'string' && !next.literal) when = parseDateTime(decodeUtf8(a.bytes('date-time'), 'date-time'));
    const message = a.bytes('message literal');
    a.end();
    if (message.length === 0) return no('Empty message', 'PARSE');
    const mb = s.store.getMailbox(s.account!.address, name);
    if (!mb) return no('Mailbox does not exist', 'TRYCREATE');
    const r = await s.store.append(mb.id, message, {
      flags,
      ...(when ? { internalDate: when.date, internalDateZone: when.zone } : {}),
    }, s.origin);
    return ok('APPEND completed', `APPENDUID ${r.uidValidity} ${r.uid}`);
  },
};

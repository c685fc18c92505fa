// GETQUOTAROOT and GETQUOTA (RFC 9208): one quota root "" per account, with the STORAGE resource in KiB.
// An account without a limit has no quota root.
import type { CommandHandler, Session } from '../session.ts';
import { no, ok } from '../session.ts';

function quotaLine(s: Session): string | null {
  const q = s.store.quota(s.account!.address);
  if (q.limitBytes === 0) return null;
  return `* QUOTA "" (STORAGE ${Math.ceil(q.usedBytes / 1024)} ${Math.floor(q.limitBytes / 1024)})\r\n`;
}

export const getquotaroot: CommandHandler = {
  name: 'GETQUOTAROOT',
  states: ['auth', 'selected'],
  async run(s, a) {
    const name = s.mailboxName(a);
    a.end();
    const mb = s.store.getMailbox(s.account!.address, name);
    if (!mb) return no('Mailbox does not exist', 'NONEXISTENT');
    const line = quotaLine(s);
    const root = s.builder().raw('* QUOTAROOT').string(s.encodeName(mb.name));
    if (line) root.string('');
    s.hold(Buffer.concat([root.finish(), Buffer.from(line ?? '')]));
    return ok('GETQUOTAROOT completed');
  },
};

export const getquota: CommandHandler = {
  name: 'GETQUOTA',
  states: ['auth', 'selected'],
  async run(s, a) {
    const root = a.astring('quota root');
    a.end();
    const line = root === '' ? quotaLine(s) : null;
    if (!line) return no('No such quota root', 'NONEXISTENT');
    s.hold(line);
    return ok('GETQUOTA completed');
  },
};

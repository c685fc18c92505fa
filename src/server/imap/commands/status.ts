// STATUS (RFC 9051 6.3.11) with HIGHESTMODSEQ (RFC 7162), SIZE (RFC 8438) and DELETED (RFC 9051); also used by
// LIST-STATUS (RFC 5819).
import type { MailboxInfo } from '../../store/types.ts';
import type { CommandHandler, Session } from '../session.ts';
import { no, ok } from '../session.ts';
import { ImapSyntaxError, type Value } from '../tokens.ts';

const ITEMS = new Set(['MESSAGES', 'RECENT', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'HIGHESTMODSEQ', 'SIZE', 'DELETED', 'APPENDLIMIT']);

export function parseStatusItems(values: readonly Value[]): string[] {
  if (values.length === 0) throw new ImapSyntaxError('Empty STATUS item list');
  const out: string[] = [];
  for (const v of values) {
    if (v.type !== 'atom' || v.section) throw new ImapSyntaxError('Expected a STATUS item');
    const item = v.value.toUpperCase();
    if (!ITEMS.has(item)) throw new ImapSyntaxError(`Unknown STATUS item ${item.slice(0, 30)}`);
    if (!out.includes(item)) out.push(item);
  }
  return out;
}

export async function writeStatus(s: Session, mb: MailboxInfo, items: readonly string[]): Promise<void> {
  const st = s.store.status(mb.id);
  const values: string[] = [];
  for (const item of items) {
    let n: number;
    switch (item) {
      case 'MESSAGES': n = st.messages; break;
      case 'RECENT': n = st.recent; break;
      case 'UIDNEXT': n = st.uidNext; break;
      case 'UIDVALIDITY': n = st.uidValidity; break;
      case 'UNSEEN': n = st.unseen; break;
      case 'HIGHESTMODSEQ': n = st.highestModseq; break;
      case 'SIZE': n = st.sizeBytes; break;
      case 'DELETED': n = st.deleted; break;
      case 'APPENDLIMIT': n = s.limits.maxAppendBytes; break;
      default: continue;
    }
    values.push(`${item} ${n}`);
  }
  if (items.includes('HIGHESTMODSEQ')) s.condstore = true;
  s.hold(s.builder().raw('* STATUS').string(s.encodeName(mb.name)).raw(`(${values.join(' ')})`).finish());
}

export const status: CommandHandler = {
  name: 'STATUS',
  states: ['auth', 'selected'],
  async run(s, a) {
    const name = s.mailboxName(a);
    const items = parseStatusItems(a.list('STATUS items'));
    a.end();
    const mb = s.store.getMailbox(s.account!.address, name);
    if (!mb) return no('Mailbox does not exist', 'NONEXISTENT');
    await writeStatus(s, mb, items);
    return ok('STATUS completed');
  },
};

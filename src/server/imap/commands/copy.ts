// COPY, MOVE and their UID forms (RFC 9051 6.4.7/6.4.8, RFC 6851) with COPYUID (UIDPLUS, RFC 4315).
import type { CommandHandler, CommandResult, CommandContext, Session } from '../session.ts';
import { no, ok } from '../session.ts';
import type { Args } from '../args.ts';
import { toUidSet, uidSetText } from '../selected.ts';
import { ImapSyntaxError } from '../tokens.ts';

async function transfer(s: Session, a: Args, ctx: CommandContext, move: boolean): Promise<CommandResult> {
  const view = s.selected!;
  const set = a.sequenceSet();
  const name = s.mailboxName(a, 'destination mailbox');
  a.end();
  const verb = `${ctx.uid ? 'UID ' : ''}${move ? 'MOVE' : 'COPY'}`;
  if (!ctx.uid && view.exists > 0 && view.seqOutOfRange(set)) throw new ImapSyntaxError('Message sequence number out of range');
  if (move && view.readOnly) return no('Mailbox is read-only', 'READ-ONLY');
  const dest = s.store.getMailbox(s.account!.address, name);
  if (!dest) return no('Destination mailbox does not exist', 'TRYCREATE');
  const uids = view.resolve(set, ctx.uid);
  if (uids.length === 0) return ok(`${verb} completed (no messages)`);
  const r = move
    ? await s.store.move(view.id, toUidSet(uids), dest.id, s.origin)
    : await s.store.copy(view.id, toUidSet(uids), dest.id, s.origin);
  if (r.map.length === 0) return ok(`${verb} completed (no messages)`);
  const code = `COPYUID ${r.uidValidity} ${uidSetText(r.map.map((x) => x[0]))} ${uidSetText(r.map.map((x) => x[1]))}`;
  if (move) {
    // RFC 6851 3.3: COPYUID comes in an untagged OK before the expunges.
    s.hold(`* OK [${code}] Moved\r\n`);
    return ok(`${verb} completed`);
  }
  return ok(`${verb} completed`, code);
}

export const copy: CommandHandler = {
  name: 'COPY',
  states: ['selected'],
  uidForm: true,
  run: (s, a, ctx) => transfer(s, a, ctx, false),
};

export const move: CommandHandler = {
  name: 'MOVE',
  states: ['selected'],
  uidForm: true,
  run: (s, a, ctx) => transfer(s, a, ctx, true),
};

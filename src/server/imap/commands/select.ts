// SELECT and EXAMINE (RFC 9051 6.3.2/6.3.3) with the CONDSTORE and QRESYNC parameters (RFC 7162 3.1.8, 3.2.5).
import type { CommandHandler, Session, CommandResult } from '../session.ts';
import { no, ok } from '../session.ts';
import { Args, MAX_MODSEQ, parseNumber } from '../args.ts';
import type { SequenceSet } from '../sequence.ts';
import { SelectedMailbox, uidSetText } from '../selected.ts';
import { ImapSyntaxError } from '../tokens.ts';
import type { UidSet } from '../../store/types.ts';

interface QresyncParams {
  uidValidity: number;
  modseq: number;
  knownUids: SequenceSet | null;
}

function parseParams(s: Session, a: Args): { condstore: boolean; qresync: QresyncParams | null } {
  let condstore = false;
  let qresync: QresyncParams | null = null;
  if (a.remaining === 0) return { condstore, qresync };
  const p = new Args(a.list('select parameters'));
  while (p.remaining > 0) {
    const name = p.keyword('select parameter');
    if (name === 'CONDSTORE') condstore = true;
    else if (name === 'QRESYNC') {
      if (!s.qresync) throw new ImapSyntaxError('QRESYNC must be enabled first (ENABLE QRESYNC)');
      const q = new Args(p.list('QRESYNC parameters'));
      const uidValidity = q.number('UIDVALIDITY');
      const modseq = parseNumber(q.atom('mod-sequence'), 'mod-sequence', MAX_MODSEQ);
      // Known UIDs narrow the answer; the optional sequence match data only helps servers without
      // expunge history, which the store keeps, so it is checked and not needed.
      const knownUids = q.remaining > 0 && q.peek()?.type === 'atom' ? q.sequenceSet('known UIDs') : null;
      if (q.remaining > 0) {
        const match = new Args(q.list('sequence match data'));
        match.sequenceSet('known sequence set');
        match.sequenceSet('known UID set');
        match.end();
      }
      q.end();
      qresync = { uidValidity, modseq, knownUids };
    } else throw new ImapSyntaxError(`Unknown SELECT parameter ${name.slice(0, 30)}`);
  }
  return { condstore, qresync };
}

function knownToUidSet(set: SequenceSet): UidSet {
  return set.map(([a, b]) => {
    const x = a ?? Infinity;
    const y = b ?? Infinity;
    return [Math.min(x, y), Math.max(x, y)] as const;
  });
}

async function open(s: Session, a: Args, readOnly: boolean): Promise<CommandResult> {
  const name = s.mailboxName(a);
  const params = parseParams(s, a);
  a.end();
  if (s.selected) {
    s.leaveSelected();
    // RFC 7162 3.2.11 / RFC 9051: tells the client that the previous mailbox's responses end here.
    if (s.rev2 || s.qresync) s.hold('* OK [CLOSED] Previous mailbox closed\r\n');
  }
  if (params.condstore || params.qresync) s.condstore = true;
  const opened = s.store.openMailbox(s.account!.address, name);
  if (!opened) return no(`Mailbox ${name.slice(0, 100)} does not exist`, 'NONEXISTENT');
  const { info: mb, status } = opened;
  const view = new SelectedMailbox(mb, opened.uids, opened.keywords, { readOnly, origin: s.origin });
  s.select(view);
  if (!s.rev2 && !readOnly && status.recent > 0) for (const u of s.store.claimRecent(mb.id)) view.recent.add(u);
  const flags = view.flagList().join(' ');
  const out: string[] = [`* FLAGS (${flags})\r\n`];
  out.push(readOnly ? '* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n' : `* OK [PERMANENTFLAGS (${flags} \\*)] Flags permitted\r\n`);
  out.push(`* ${view.exists} EXISTS\r\n`);
  if (!s.rev2) {
    out.push(`* ${view.recent.size} RECENT\r\n`);
    if (status.firstUnseenUid !== null) {
      const seq = view.seqOf(status.firstUnseenUid);
      if (seq > 0) out.push(`* OK [UNSEEN ${seq}] First unseen message\r\n`);
    }
  }
  out.push(`* OK [UIDVALIDITY ${mb.uidValidity}] UIDs valid\r\n`);
  out.push(`* OK [UIDNEXT ${status.uidNext}] Predicted next UID\r\n`);
  out.push(`* OK [HIGHESTMODSEQ ${status.highestModseq}] Highest\r\n`);
  if (s.rev2) {
    const attrs = mb.specialUse ? `(${mb.specialUse})` : '()';
    out.push(s.builder().raw(`* LIST ${attrs} "/"`).string(s.encodeName(mb.name)).finish().toString('utf8'));
  }
  s.hold(out.join(''));
  const q = params.qresync;
  if (q && q.uidValidity === mb.uidValidity) {
    const known = q.knownUids ? knownToUidSet(q.knownUids) : undefined;
    const changes = s.store.changesSince(mb.id, q.modseq, known);
    if (changes.vanished.length) s.hold(`* VANISHED (EARLIER) ${uidSetText([...changes.vanished].sort((x, y) => x - y))}\r\n`);
    for (const m of changes.changed) {
      const seq = view.seqOf(m.uid);
      if (seq === 0) continue;
      s.hold(`* ${seq} FETCH (UID ${m.uid} FLAGS (${m.flags.join(' ')}) MODSEQ (${m.modseq}))\r\n`);
    }
  }
  return ok(`${readOnly ? 'EXAMINE' : 'SELECT'} completed`, readOnly ? 'READ-ONLY' : 'READ-WRITE');
}

export const select: CommandHandler = {
  name: 'SELECT',
  states: ['auth', 'selected'],
  run: (s, a) => open(s, a, false),
};

export const examine: CommandHandler = {
  name: 'EXAMINE',
  states: ['auth', 'selected'],
  run: (s, a) => open(s, a, true),
};

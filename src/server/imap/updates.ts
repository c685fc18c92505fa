// Tells the client what changed in its selected mailbox since the last time: queued store events become
// untagged FLAGS, EXPUNGE (or VANISHED with QRESYNC), EXISTS, RECENT and FETCH responses. Expunges wait when
// the command just run forbids them (RFC 3501 7.4.1), and stay in the view until told, so sequence numbers the
// client holds stay valid.
import type { StoreEvent } from '../store/types.ts';
import type { Session } from './session.ts';
import { uidSetText } from './selected.ts';

export async function flushUpdates(s: Session, allowExpunge: boolean): Promise<void> {
  const view = s.selected;
  if (!view || (!view.hasPending() && !view.newKeywords)) return;
  const events = view.pending;
  const held: StoreEvent[] = [];
  view.pending = [];
  const out: string[] = [];
  const expunged = new Set<number>();
  const added: number[] = [];
  const flagChanges = new Map<number, { flags: string[]; modseq: number }>();
  let newKeyword = view.newKeywords;
  view.newKeywords = false;
  let deleted = false;
  for (const e of events) {
    switch (e.type) {
      case 'expunge':
        if (!allowExpunge) held.push(e);
        else for (const u of e.uids) expunged.add(u);
        break;
      case 'exists':
        for (const m of e.messages) {
          added.push(m.uid);
          for (const f of m.flags) if (!f.startsWith('\\') && !view.keywords.has(f)) { view.keywords.add(f); newKeyword = true; }
        }
        break;
      case 'flags':
        for (const m of e.messages) {
          for (const f of m.flags) if (!f.startsWith('\\') && !view.keywords.has(f)) { view.keywords.add(f); newKeyword = true; }
          // This session's own STORE answered for itself (or was .SILENT, which asks for no answer).
          if (!view.isOwn(e)) flagChanges.set(m.uid, { flags: m.flags, modseq: m.modseq });
        }
        break;
      case 'mailbox':
        if (e.change === 'deleted') deleted = true;
        else view.info = { ...view.info, name: e.name };
        break;
    }
  }
  view.pending = held.concat(view.pending);
  if (deleted) {
    view.gone = true;
    await s.send('* BYE The selected mailbox was deleted\r\n');
    s.end();
    return;
  }
  if (newKeyword) {
    const flags = view.flagList().join(' ');
    out.push(`* FLAGS (${flags})\r\n`);
    if (!view.readOnly) out.push(`* OK [PERMANENTFLAGS (${flags} \\*)] Flags permitted\r\n`);
  }
  if (expunged.size > 0) {
    const gone = view.uids.filter((u) => expunged.has(u));
    if (gone.length > 0) {
      if (s.qresync) out.push(`* VANISHED ${uidSetText(gone)}\r\n`);
      else {
        // Highest first, so each number is still right when the client reads it.
        for (let i = view.uids.length - 1; i >= 0; i--) if (expunged.has(view.uids[i]!)) out.push(`* ${i + 1} EXPUNGE\r\n`);
      }
      view.uids = view.uids.filter((u) => !expunged.has(u));
      for (const u of gone) view.recent.delete(u);
    }
  }
  const fresh = added.filter((u) => !expunged.has(u) && view.seqOf(u) === 0).sort((a, b) => a - b);
  if (fresh.length > 0) {
    if (fresh[0]! > view.maxUid) view.uids = view.uids.concat(fresh);
    else view.uids = [...new Set([...view.uids, ...fresh])].sort((a, b) => a - b);
    out.push(`* ${view.uids.length} EXISTS\r\n`);
    if (!s.rev2) {
      for (const u of s.store.claimRecent(view.id)) view.recent.add(u);
      out.push(`* ${view.recent.size} RECENT\r\n`);
    }
  }
  for (const [uid, m] of flagChanges) {
    const seq = view.seqOf(uid);
    if (seq === 0) continue;
    const flags = [...m.flags, ...(view.recent.has(uid) ? ['\\Recent'] : [])].join(' ');
    const modseq = s.condstore ? ` MODSEQ (${m.modseq})` : '';
    out.push(`* ${seq} FETCH (UID ${uid} FLAGS (${flags})${modseq})\r\n`);
  }
  // Goes out with the tagged answer (IDLE flushes it itself).
  if (out.length) s.hold(out.join(''));
}

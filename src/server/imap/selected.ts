// The session's view of its selected mailbox: the sequence number → UID map, the \Recent messages it claimed,
// the keywords announced in FLAGS, and the store events not yet told to the client. Events are queued as they
// arrive and turned into untagged EXISTS / EXPUNGE (or VANISHED) / FETCH only at the points the RFCs allow
// (RFC 3501 7.4.1 / RFC 9051 7.5.1: no EXPUNGE during FETCH, STORE or SEARCH), so sequence numbers a client
// sent never shift under a running command.
import type { MailboxInfo, StoreEvent, UidSet } from '../store/types.ts';
import { SYSTEM_FLAGS } from '../store/types.ts';
import type { SequenceSet } from './sequence.ts';
import { formatSequenceSet, SAVED_RESULT } from './sequence.ts';

export interface ViewOptions {
  readOnly: boolean;
  /** Identifies this session in store calls and events. */
  origin: unknown;
}

/** Binary search: index of the first element >= x. */
function lowerBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class SelectedMailbox {
  info: MailboxInfo;
  readonly readOnly: boolean;
  /** uids[seq - 1]: the client's view, ascending. Shared with the store at SELECT: replaced, never changed. */
  uids: readonly number[];
  readonly recent = new Set<number>();
  keywords: Set<string>;
  pending: StoreEvent[] = [];
  /** UIDs a SEARCH RETURN (SAVE) kept, for `$`; expunged ones drop out when resolved. */
  saved: number[] | null = null;
  /** Set when the mailbox was deleted under this session. */
  gone = false;
  /** Keywords were added to `keywords` that the client has not been told of in FLAGS yet. */
  newKeywords = false;
  private readonly origin: unknown;

  constructor(info: MailboxInfo, uids: readonly number[], keywords: Iterable<string>, opts: ViewOptions) {
    this.info = info;
    this.uids = uids;
    this.keywords = new Set(keywords);
    this.readOnly = opts.readOnly;
    this.origin = opts.origin;
  }

  get id(): number {
    return this.info.id;
  }

  get exists(): number {
    return this.uids.length;
  }

  get maxUid(): number {
    return this.uids.length ? this.uids[this.uids.length - 1]! : 0;
  }

  /** 1-based sequence number of `uid`, or 0 when it is not in the view. */
  seqOf(uid: number): number {
    const i = lowerBound(this.uids, uid);
    return this.uids[i] === uid ? i + 1 : 0;
  }

  /**
   * UIDs (ascending) of the view addressed by a sequence set or a UID set. Ranges are turned into index
   * intervals, sorted and merged first, so the work is bounded by the mailbox size however the set is written.
   */
  resolve(set: SequenceSet, byUid: boolean): number[] {
    const n = this.uids.length;
    if (n === 0) return [];
    if (set === SAVED_RESULT) return (this.saved ?? []).filter((u) => this.seqOf(u) > 0);
    const spans: Array<[number, number]> = [];
    for (const [a, b] of set) {
      let lo: number;
      let hi: number;
      if (byUid) {
        const x = a ?? this.maxUid;
        const y = b ?? this.maxUid;
        lo = lowerBound(this.uids, Math.min(x, y));
        hi = lowerBound(this.uids, Math.max(x, y) + 1) - 1;
      } else {
        const x = a ?? n;
        const y = b ?? n;
        lo = Math.min(x, y) - 1;
        hi = Math.min(Math.max(x, y), n) - 1;
      }
      if (lo <= hi) spans.push([Math.max(lo, 0), hi]);
    }
    spans.sort((p, q) => p[0] - q[0]);
    const out: number[] = [];
    let next = 0;
    for (const [lo, hi] of spans) {
      for (let i = Math.max(lo, next); i <= hi; i++) out.push(this.uids[i]!);
      next = Math.max(next, hi + 1);
    }
    return out;
  }

  /** Is any sequence number in `set` beyond the view? (RFC 9051 6.4.5: that is a BAD command.) */
  seqOutOfRange(set: SequenceSet): boolean {
    const n = this.uids.length;
    return set.some(([a, b]) => (a !== null && a > n) || (b !== null && b > n));
  }

  /** All FLAGS the client should know: system flags and the keywords in use. */
  flagList(): string[] {
    return [...SYSTEM_FLAGS, ...[...this.keywords].sort()];
  }

  onEvent = (e: StoreEvent): void => {
    this.pending.push(e);
  };

  /**
   * Forgets queued flag changes the client has read since, in a FETCH that gave it the message's flags with a
   * modseq at least as new. Keywords they bring are still announced (newKeywords). Events are shared between
   * sessions: filtered copies replace them, they are never changed.
   */
  forgetFlagChanges(told: ReadonlyMap<number, number>): void {
    const kept: StoreEvent[] = [];
    for (const e of this.pending) {
      if (e.type !== 'flags') {
        kept.push(e);
        continue;
      }
      const messages = e.messages.filter((m) => {
        const modseq = told.get(m.uid);
        if (modseq === undefined || modseq < m.modseq) return true;
        for (const f of m.flags) {
          if (!f.startsWith('\\') && !this.keywords.has(f)) {
            this.keywords.add(f);
            this.newKeywords = true;
          }
        }
        return false;
      });
      if (messages.length === e.messages.length) kept.push(e);
      else if (messages.length > 0) kept.push({ ...e, messages });
    }
    this.pending = kept;
  }

  hasPending(): boolean {
    return this.pending.length > 0;
  }

  isOwn(e: StoreEvent): boolean {
    return e.origin === this.origin;
  }
}

/** Ascending UIDs as a store UidSet of ranges. */
export function toUidSet(uids: readonly number[]): UidSet {
  const out: Array<[number, number]> = [];
  for (const u of uids) {
    const last = out[out.length - 1];
    if (last && last[1] + 1 === u) last[1] = u;
    else out.push([u, u]);
  }
  return out;
}

export function uidSetText(uids: readonly number[]): string {
  return formatSequenceSet(uids);
}

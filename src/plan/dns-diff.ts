// What it takes to bring live DNS to the plan, over the names and types Postern owns only: a user's unrelated
// records (www, verification TXT, …) are never proposed for change or deletion.
import { describeRecord, rdataKey, type DnsRecord, type ObservedRecord } from './dns-records.ts';
import type { OwnedRRset } from './dns-plan.ts';

export type DnsChange =
  | { op: 'add'; record: DnsRecord }
  | { op: 'change'; old: ObservedRecord; record: DnsRecord }
  | { op: 'remove'; old: ObservedRecord };

/** True when Postern owns this record according to `owned`. */
export function isOwned(r: ObservedRecord, owned: readonly OwnedRRset[]): boolean {
  return owned.some((o) => o.name === r.name && o.type === r.type &&
    (o.valuePrefix === undefined || (r.type === 'TXT' && isTagged(r.value, o.valuePrefix))));
}

// "v=spf1" owns "v=spf1 …", "v=spf1;…" and exactly "v=spf1", not "v=spf10".
function isTagged(value: string, prefix: string): boolean {
  const v = value.toLowerCase();
  const p = prefix.toLowerCase();
  return v === p || v.startsWith(`${p} `) || v.startsWith(`${p};`);
}

/**
 * Ownership when the plan's own list is not at hand: every name and type of `desired`; for TXT, when all desired
 * values carry one `v=<tag>` (SPF, DKIM, DMARC, …), only values with that tag, so other TXT records stay the user's.
 */
export function ownedFromRecords(desired: readonly DnsRecord[]): OwnedRRset[] {
  const owned: OwnedRRset[] = [];
  for (const r of desired) {
    if (owned.some((o) => o.name === r.name && o.type === r.type)) continue;
    if (r.type !== 'TXT') { owned.push({ name: r.name, type: r.type }); continue; }
    const tags = new Set(desired.filter((d) => d.name === r.name && d.type === 'TXT').map((d) => /^(v=[A-Za-z0-9]+)(;| |$)/.exec((d as { value: string }).value)?.[1]));
    const [tag] = tags;
    owned.push(tags.size === 1 && tag !== undefined ? { name: r.name, type: 'TXT', valuePrefix: tag } : { name: r.name, type: 'TXT' });
  }
  return owned;
}

function groupKey(r: ObservedRecord | DnsRecord): string {
  return `${r.name}\u0000${r.type}`;
}

/**
 * Changes from `current` to `desired` (desired is the plan, all owned). Within one name and type, records with equal
 * data are kept (or changed when their known TTL differs); leftovers are paired into `~` changes in order, then the
 * rest are `+` adds and `-` removals.
 */
export function diffDns(desired: readonly DnsRecord[], current: readonly ObservedRecord[], owned: readonly OwnedRRset[] = ownedFromRecords(desired)): DnsChange[] {
  const groups = new Map<string, { want: DnsRecord[]; have: ObservedRecord[] }>();
  const group = (k: string) => {
    let g = groups.get(k);
    if (!g) { g = { want: [], have: [] }; groups.set(k, g); }
    return g;
  };
  for (const r of desired) group(groupKey(r)).want.push(r);
  for (const r of current) if (isOwned(r, owned)) group(groupKey(r)).have.push(r);

  const changes: DnsChange[] = [];
  for (const { want, have } of groups.values()) {
    const haveLeft = [...have];
    const wantLeft: DnsRecord[] = [];
    for (const w of want) {
      const i = haveLeft.findIndex((h) => rdataKey(h) === rdataKey(w));
      if (i < 0) { wantLeft.push(w); continue; }
      const [h] = haveLeft.splice(i, 1);
      if (h!.ttl !== undefined && h!.ttl !== w.ttl) changes.push({ op: 'change', old: h!, record: w });
    }
    const pairs = Math.min(wantLeft.length, haveLeft.length);
    for (let i = 0; i < pairs; i++) changes.push({ op: 'change', old: haveLeft[i]!, record: wantLeft[i]! });
    for (const w of wantLeft.slice(pairs)) changes.push({ op: 'add', record: w });
    for (const h of haveLeft.slice(pairs)) changes.push({ op: 'remove', old: h });
  }
  return changes;
}

/** `current` with the changes made: what live DNS holds after they are published. */
export function applyDiff(current: readonly ObservedRecord[], changes: readonly DnsChange[]): ObservedRecord[] {
  const out = [...current];
  const drop = (r: ObservedRecord): void => {
    const same = out.indexOf(r);
    const i = same >= 0 ? same : out.findIndex((x) => groupKey(x) === groupKey(r) && rdataKey(x) === rdataKey(r) && x.ttl === r.ttl);
    if (i < 0) throw new Error(`applyDiff: ${describeRecord(r)} is not in the current set`);
    out.splice(i, 1);
  };
  for (const c of changes) {
    if (c.op === 'add') out.push(c.record);
    else if (c.op === 'remove') drop(c.old);
    else { drop(c.old); out.push(c.record); }
  }
  return out;
}

/** Review-style text: `+ add`, `~ change old → new`, `- remove`, one per line, sorted by name and type. */
export function formatDiff(changes: readonly DnsChange[]): string {
  const line = (c: DnsChange): string => {
    if (c.op === 'add') return `+ ${describeRecord(c.record)}`;
    if (c.op === 'remove') return `- ${describeRecord(c.old)}`;
    return `~ ${describeRecord(c.old)} → ${describeRecord(c.record)}`;
  };
  const subject = (c: DnsChange): ObservedRecord => (c.op === 'remove' ? c.old : c.record);
  // Code-unit order, not the locale's: the same diff reads the same on every machine.
  const cmp = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  return [...changes].sort((a, b) => cmp(subject(a).name, subject(b).name) || cmp(subject(a).type, subject(b).type) || cmp(a.op, b.op))
    .map(line).join('\n');
}

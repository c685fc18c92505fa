// After the 250: deliver a spooled message to every local recipient (aliases, plus-addressing and catch-all
// are expanded by the store) and hand remote recipients to the outbound queue; remove the spool entry only when
// every recipient is done. Runs again for whatever is left after a crash or a temporary failure.
import type { DeliveryOptions, DeliveryStore } from '../store/api.ts';
import type { Spool, SpoolEntry } from '../queue/api.ts';
import type { Trace } from '../trace/api.ts';
import { JUNK_MARKER } from './receive.ts';
import type { ReportIngest } from '../reports/ingest.ts';

export interface DeliveryDeps {
  store: DeliveryStore;
  spool: Spool;
  trace: Trace;
  localDomains: Set<string>;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /** DMARC/TLS-RPT report parsing for mail to the report addresses (reports/ingest.ts); none when unset. */
  reports?: ReportIngest | undefined;
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

/**
 * Delivers what is still pending in one spool entry. Throws only when the spool itself fails. `known` is the
 * message to store, when the caller has it in memory. Resolves to whether the entry left the spool.
 */
export async function deliverEntry(deps: DeliveryDeps, entry: SpoolEntry, known?: Buffer): Promise<boolean> {
  const pending = entry.recipients.filter((r) => r.status === 'pending');
  if (pending.length === 0) return deps.spool.removeIfDone(entry.id);
  const message = known ?? await deps.spool.read(entry.id);
  const junk = message.subarray(0, JUNK_MARKER.length + 2).toString('latin1') === `${JUNK_MARKER}\r\n`;
  const mailbox: DeliveryOptions['mailbox'] = junk ? 'Junk' : 'INBOX';
  const base = { traceId: entry.id, sender: entry.envelope.from };
  if (deps.reports?.wants(pending.map((r) => r.address))) await ingestReports(deps, deps.reports, message, base);
  // One copy per account even when several envelope recipients (an alias and its target) reach it.
  const storedFor = new Map<string, string>();
  let removed = false;
  const remote: string[] = [];
  for (const r of pending) {
    if (!deps.localDomains.has(domainOf(r.address))) { remote.push(r.address); continue; }
    let resolution;
    try {
      resolution = deps.store.resolveRecipient(r.address);
    } catch (err) {
      deps.trace.record({ ...base, kind: 'error', recipient: r.address, detail: `recipient lookup failed, will retry: ${String(err)}` });
      await deps.spool.markLocal(entry.id, r.address, { ok: false, permanent: false, message: String(err) });
      continue;
    }
    if (resolution.kind === 'unknown') {
      deps.trace.record({ ...base, kind: 'failed', recipient: r.address, detail: '550 5.1.1 no such user (removed after the message was accepted)' });
      await deps.spool.markLocal(entry.id, r.address, { ok: false, permanent: true, message: '550 5.1.1 No such user' });
      continue;
    }
    let failure: { permanent: boolean; message: string } | null = null;
    const boxes: string[] = [];
    for (const account of resolution.accounts) {
      const done = storedFor.get(account);
      if (done) { boxes.push(done); continue; }
      try {
        // Idempotent per delivery id: a re-run after a crash between "stored" and markLocal stores nothing twice.
        const options: DeliveryOptions = { mailbox, internalDate: new Date(entry.receivedAt), deliveryId: `${entry.id}/${account}` };
        const res = await deps.store.deliver(account, message, options);
        if (res.ok) {
          storedFor.set(account, res.mailbox);
          boxes.push(res.mailbox);
          deps.trace.record({ ...base, kind: 'stored', recipient: account, detail: `${account}: ${res.mailbox} (uid ${res.uid})${account !== r.address.toLowerCase() ? ` via ${r.address}` : ''}`, data: { mailbox: res.mailbox, uid: res.uid } });
        } else {
          failure = { permanent: true, message: `552 5.2.2 ${res.message}` };
          deps.trace.record({ ...base, kind: 'failed', recipient: account, detail: `${account}: ${res.message}` });
        }
      } catch (err) {
        failure ??= { permanent: false, message: `451 4.3.0 ${String(err)}` };
        deps.trace.record({ ...base, kind: 'error', recipient: account, detail: `storing failed, will retry: ${String(err)}` });
        deps.log.error({ err, id: entry.id, account }, 'local delivery failed');
      }
    }
    if (failure) await deps.spool.markLocal(entry.id, r.address, { ok: false, ...failure });
    // The last one removes the entry without a final state write (deliver() above is idempotent per delivery id).
    else {
      const result = { ok: true as const, mailbox: [...new Set(boxes)].join(','), ...(resolution.accounts.length > 1 ? { expanded: true } : {}) };
      removed = await deps.spool.markLocal(entry.id, r.address, result, { removeIfDone: true });
    }
  }
  if (remote.length) {
    await deps.spool.enqueueRemote(entry.id, remote);
    for (const r of remote) deps.trace.record({ ...base, kind: 'queued', recipient: r, detail: 'handed to the outbound queue' });
  }
  if (removed || await deps.spool.removeIfDone(entry.id)) {
    deps.trace.record({ ...base, kind: 'removed', detail: 'every recipient done; removed from the spool' });
    return true;
  }
  return false;
}

/**
 * Mail to the DMARC/TLS-RPT report addresses: the reports it carries are parsed into the report store, and the
 * message is still delivered to the mailbox like any other. A bad or hostile report never delays delivery; a
 * re-run after a crash stores nothing twice (reports are unique per organisation and report id).
 */
async function ingestReports(deps: DeliveryDeps, reports: ReportIngest, message: Buffer, base: { traceId: string; sender: string }): Promise<void> {
  try {
    const r = await reports.ingest(message);
    const stored = r.stored.map((s) => `${s.kind === 'dmarc' ? 'DMARC' : 'TLS-RPT'} report ${s.reportId} from ${s.org}${s.duplicate ? ' (already stored)' : ''}`);
    deps.trace.record({ ...base, kind: 'check', detail: `delivery report: ${[...stored, ...r.refused.map((x) => `refused ${x}`)].join('; ') || 'nothing to read'}` });
  } catch (err) {
    deps.log.warn({ err, id: base.traceId }, 'delivery report could not be stored; the message is delivered anyway');
  }
}

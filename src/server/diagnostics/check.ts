// One diagnostic result: what was checked, how it stands, what is wrong, and the exact fix. Shared by
// `postern doctor`, host monitoring and (later) the web admin.

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  /** Stable identifier, e.g. `dns.spf`, `tls.465`, `dnsbl.zen.spamhaus.org.ipv4`; monitoring keys its history on it. */
  id: string;
  status: CheckStatus;
  /** What was found, in one sentence. */
  message: string;
  /** The exact fix (record to set, command to run, setting to change); empty when status is ok. */
  fix: string;
}

export const ok = (id: string, message: string): CheckResult => ({ id, status: 'ok', message, fix: '' });
export const warn = (id: string, message: string, fix: string): CheckResult => ({ id, status: 'warn', message, fix });
export const fail = (id: string, message: string, fix: string): CheckResult => ({ id, status: 'fail', message, fix });

/** Runs a check, turning an unexpected exception into a failed result rather than aborting the whole run. */
export async function guarded(id: string, run: () => Promise<CheckResult[]>): Promise<CheckResult[]> {
  try {
    return await run();
  } catch (err) {
    return [fail(id, `check could not run: ${(err as Error).message}`, 'see the message; re-run `postern doctor` once the cause is fixed')];
  }
}

export function worstStatus(results: readonly CheckResult[]): CheckStatus {
  if (results.some((r) => r.status === 'fail')) return 'fail';
  if (results.some((r) => r.status === 'warn')) return 'warn';
  return 'ok';
}

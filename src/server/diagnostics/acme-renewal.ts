// "Certificate renewal job healthy": reads the job's record (acme-renewal.json, written by server/acme/) and says
// whether renewal is on, ran recently, and whether a failure is putting the certificate at risk.
import { fail, ok, warn, type CheckResult } from './check.ts';
import { readRenewalState, renewalStateFile } from '../acme/renewal-state.ts';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** A failed renewal with fewer days left than this is an emergency: after that, clients start refusing. */
export const RENEWAL_FAIL_DAYS = 14;
/** The job runs twice a day; a last good run older than this means it is stuck or failing. */
export const RENEWAL_STALE_HOURS = 36;

const LOGS = '`journalctl -u postern | grep acme`';

export interface RenewalCheckInput {
  /** acme.enabled in the server config (false when the section is missing). */
  enabled: boolean;
  stateDir: string;
  now: Date;
}

export async function checkAcmeRenewal(input: RenewalCheckInput): Promise<CheckResult> {
  const id = 'server.acme-renewal';
  if (!input.enabled) {
    return warn(id, 'certificate renewal on the host is disabled (no enabled acme section in the server config)',
      'redeploy with `pulumi up` (it renders the acme section from postern:acme), or re-issue the certificate with `pulumi up` before it expires');
  }
  let state;
  try {
    state = await readRenewalState(input.stateDir);
  } catch (err) {
    return warn(id, `cannot read the renewal record: ${(err as Error).message}`, `remove ${renewalStateFile(input.stateDir)} and restart the server (\`systemctl restart postern\`) so the job writes a fresh one`);
  }
  if (state === null) {
    return warn(id, `the certificate renewal job has not run yet (no ${renewalStateFile(input.stateDir)})`, `check that the server is running (\`systemctl status postern\`) and read ${LOGS}`);
  }
  const now = input.now.getTime();
  const notAfter = state.notAfter === null ? null : new Date(state.notAfter);
  const daysLeft = notAfter === null ? null : Math.floor((notAfter.getTime() - now) / DAY_MS);
  const left = daysLeft === null ? 'the certificate could not be read' : `the certificate expires in ${daysLeft} days (${notAfter!.toISOString().slice(0, 10)})`;
  if (state.lastError !== null) {
    const desc = `the last renewal attempt (${state.lastAttempt ?? state.lastCheck}, ${state.consecutiveFailures} in a row) failed: ${state.lastError}; ${left}`;
    const fix = `make port 80 reachable from the internet and the names ${state.names.join(', ')} point at this host (HTTP-01), read ${LOGS}; \`pulumi up\` re-issues the certificate by DNS-01`;
    if (daysLeft === null || daysLeft < RENEWAL_FAIL_DAYS) return fail(id, desc, fix);
    return warn(id, `${desc}; next try ${state.nextCheck}`, fix);
  }
  const lastGood = state.lastSuccess === null ? null : new Date(state.lastSuccess).getTime();
  if (lastGood === null || now - lastGood > RENEWAL_STALE_HOURS * HOUR_MS) {
    const when = lastGood === null ? 'never' : `${Math.round((now - lastGood) / HOUR_MS)} hours ago`;
    return warn(id, `the certificate renewal job last succeeded ${when} (it runs twice a day); ${left}`, `restart the server (\`systemctl restart postern\`) and read ${LOGS}`);
  }
  return ok(id, `certificate renewal job healthy: last run ${state.lastCheck}, ${left}${state.lastRenewal ? `, last renewed ${state.lastRenewal}` : ''}`);
}

// One run of the renewal job: look at the certificate in place; when it is due, order a new one, check it, and
// install key and certificate atomically (the TLS source sees the change and reloads). Whatever happens, the run's
// outcome is recorded in acme-renewal.json; a failed order never touches the certificate in place.
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { certificateStatus, checkIssuedPair } from './certificate-status.ts';
import { orderCertificate, type IssuedCertificate, type OrderRequest } from './order.ts';
import { writeFilesAtomically } from './atomic-write.ts';
import { clipError, type RenewalState } from './renewal-state.ts';

const MAX_CA_BYTES = 1024 * 1024;

export interface RenewalSettings {
  directoryUrl: string;
  email: string;
  names: readonly string[];
  renewBeforeDays: number;
  directoryCaFile?: string;
  certFile: string;
  keyFile: string;
  stateDir: string;
}

export interface RunOutcome {
  /** 'renewed': a new certificate is in place; 'not-due': nothing to do; 'failed': see state.lastError. */
  result: 'renewed' | 'not-due' | 'failed';
  state: Omit<RenewalState, 'nextCheck'>;
}

export type Orderer = (req: OrderRequest) => Promise<IssuedCertificate>;

export async function runRenewal(s: RenewalSettings, previous: RenewalState | null, logger: Logger, now: () => Date, order: Orderer = orderCertificate): Promise<RunOutcome> {
  const started = now();
  const base = {
    lastCheck: started.toISOString(),
    lastAttempt: previous?.lastAttempt ?? null,
    lastSuccess: previous?.lastSuccess ?? null,
    lastRenewal: previous?.lastRenewal ?? null,
    names: [...s.names],
  };
  const status = await certificateStatus(s.certFile, s.names, s.renewBeforeDays, started);
  if (!status.due) {
    logger.info({ notAfter: status.notAfter.toISOString(), daysLeft: Math.floor(status.daysLeft) }, 'certificate renewal not due');
    return { result: 'not-due', state: { ...base, lastSuccess: started.toISOString(), lastError: null, consecutiveFailures: 0, notAfter: status.notAfter.toISOString() } };
  }
  logger.info({ reason: status.reason, names: s.names, directoryUrl: s.directoryUrl }, 'certificate renewal due: ordering a new certificate');
  try {
    let directoryCaPem: string | undefined;
    if (s.directoryCaFile) {
      const ca = await readFile(s.directoryCaFile);
      if (ca.length > MAX_CA_BYTES) throw new Error(`acme.directoryCaFile ${s.directoryCaFile} is larger than ${MAX_CA_BYTES} bytes`);
      directoryCaPem = ca.toString('utf8');
    }
    const issued = await order({ directoryUrl: s.directoryUrl, email: s.email, names: s.names, stateDir: s.stateDir, ...(directoryCaPem ? { directoryCaPem } : {}) });
    const notAfter = checkIssuedPair(issued.keyPem, issued.chainPem, s.names, now());
    // Key first: until the certificate follows, the TLS source sees a mismatched pair and keeps the old one.
    await writeFilesAtomically([
      { path: s.keyFile, data: issued.keyPem, mode: 0o600 },
      { path: s.certFile, data: issued.chainPem, mode: 0o644 },
    ]);
    const done = now().toISOString();
    logger.info({ notAfter: notAfter.toISOString(), names: s.names }, 'certificate renewed');
    return { result: 'renewed', state: { ...base, lastAttempt: started.toISOString(), lastSuccess: done, lastRenewal: done, lastError: null, consecutiveFailures: 0, notAfter: notAfter.toISOString() } };
  } catch (err) {
    const message = clipError(`${(err as Error).message}`);
    const failures = (previous?.consecutiveFailures ?? 0) + 1;
    logger.error({ err: message, consecutiveFailures: failures, directoryUrl: s.directoryUrl, names: s.names }, 'certificate renewal failed; the current certificate stays in place');
    return { result: 'failed', state: { ...base, lastAttempt: started.toISOString(), lastError: message, consecutiveFailures: failures, notAfter: status.notAfter?.toISOString() ?? null } };
  }
}

// `<stateDir>/acme-renewal.json`: the outcome of the renewal job's last runs, written by the job and read by
// `postern doctor --local`. Small, validated on read (a hand-edited or truncated file is reported, not trusted).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomically } from './atomic-write.ts';

export const RENEWAL_STATE_FILENAME = 'acme-renewal.json';
const MAX_STATE_BYTES = 64 * 1024;
const MAX_ERROR_CHARS = 2000;

const isoDate = z.iso.datetime();

export const renewalStateSchema = z.object({
  /** Every run: when the certificate was last looked at. */
  lastCheck: isoDate,
  /** When a new certificate was last ordered (successfully or not); null if never. */
  lastAttempt: isoDate.nullable(),
  /** When a run last ended with a good certificate in place (renewed, or not due yet). */
  lastSuccess: isoDate.nullable(),
  /** When a new certificate was last installed. */
  lastRenewal: isoDate.nullable(),
  /** Why the last run failed; null when it succeeded. */
  lastError: z.string().max(MAX_ERROR_CHARS).nullable(),
  consecutiveFailures: z.number().int().min(0),
  /** Expiry of the certificate in place after the run; null when it could not be read. */
  notAfter: isoDate.nullable(),
  names: z.array(z.string()).max(100),
  /** When the job runs next (a retry after a failure comes sooner). */
  nextCheck: isoDate,
});

export type RenewalState = z.infer<typeof renewalStateSchema>;

export function renewalStateFile(stateDir: string): string {
  return join(stateDir, RENEWAL_STATE_FILENAME);
}

export function clipError(message: string): string {
  return message.length > MAX_ERROR_CHARS ? `${message.slice(0, MAX_ERROR_CHARS - 3)}...` : message;
}

/** The recorded state, or null when the job has never run (no file). Throws with a clear message when unreadable. */
export async function readRenewalState(stateDir: string): Promise<RenewalState | null> {
  const file = renewalStateFile(stateDir);
  let text: string;
  try {
    const buf = await readFile(file);
    if (buf.length > MAX_STATE_BYTES) throw new Error(`${file} is larger than ${MAX_STATE_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not JSON: ${(err as Error).message}`);
  }
  const r = renewalStateSchema.safeParse(data);
  if (!r.success) throw new Error(`${file} is malformed: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ')}`);
  return r.data;
}

export async function writeRenewalState(stateDir: string, state: RenewalState): Promise<void> {
  await writeFileAtomically(renewalStateFile(stateDir), `${JSON.stringify(state, null, 2)}\n`, 0o644);
}

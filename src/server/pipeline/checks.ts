// The seam for content filters (spam, antivirus): each check looks at a received message and returns a verdict.
// The pipeline runs them in order after the authentication checks; the strongest verdict wins. Filters are
// plugged in by the composition root (server/main.ts), so the spam and antivirus engines are separate modules.
import type { SpoolEnvelope } from '../queue/api.ts';

export type CheckAction = 'accept' | 'junk' | 'reject';

export interface CheckVerdict {
  action: CheckAction;
  /** Why, in a few words (goes into the trace and, for reject, into the SMTP reply). */
  detail: string;
  /** Header lines to add to the stored message (e.g. `X-Spam-Score: 7.1`), CRLF-terminated, or ''. */
  headers?: string;
}

export interface CheckContext {
  envelope: SpoolEnvelope;
  /** The results of SPF/DKIM/DMARC/ARC so far, as in the Authentication-Results header. */
  authenticationResults: string;
}

export interface MessageCheck {
  readonly name: string;
  /** Must not throw for bad messages (say `accept` with a detail); a throw is an internal error (4xx). */
  check(message: Buffer, context: CheckContext): Promise<CheckVerdict>;
}

const STRENGTH: Record<CheckAction, number> = { accept: 0, junk: 1, reject: 2 };

export function strongest(a: CheckAction, b: CheckAction): CheckAction {
  return STRENGTH[b] > STRENGTH[a] ? b : a;
}

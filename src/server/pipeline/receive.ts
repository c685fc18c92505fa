// What happens to a message between the end of DATA and the `250`: the headers Postern adds, the checks that
// can still refuse it in SMTP (DMARC reject, content filters), and for submission the sender check and DKIM.
// Submission: everything decided here is written into the message (added headers) before it is spooled.
// Inbound: the checks run while the spool writes the message with only our Received header in front
// (checkInbound); the 250 waits for both, and the headers the checks add travel to delivery in memory. An entry
// whose delivery a restart interrupted has the checks run again (SpoolEntry.checksPending).
import { randomBytes } from 'node:crypto';
import type { DNSResolver } from 'mailauth';
import type { SpoolEnvelope } from '../queue/api.ts';
import { checkAuthentication } from './authentication.ts';
import type { CheckAction, MessageCheck } from './checks.ts';
import { strongest } from './checks.ts';
import { dkimSignatures } from './dkim-signer.ts';
import type { DkimKey } from './dkim-signer.ts';
import { firstHeader, fromAddresses, headerFields, headerSection, messageIdOf, receivedHeader, withoutForgedAuthResults } from './headers.ts';

/** First header line of a message the pipeline filed as junk; delivery reads it to choose the mailbox. */
export const JUNK_MARKER = 'X-Postern-Verdict: junk';

export interface ReceiveContext {
  envelope: SpoolEnvelope;
  /** Session id plus transaction number: names the message before it has a spool id. */
  receiptId: string;
  /** TLS protocol and cipher, when the session was encrypted. */
  tls?: string;
  receivedAt: Date;
}

export interface CheckEvent { name: string; action: CheckAction; detail: string }

/** The inbound checks' decision; `headers` go above our Received header. */
export type InboundVerdict =
  /** `message`, when set, replaces the received bytes (forged Authentication-Results removed). */
  | { accept: true; headers: Buffer; message?: Buffer; messageId?: string; verdict: 'inbox' | 'junk'; checks: CheckEvent[] }
  | Extract<ReceiveOutcome, { accept: false }>;

/** Submission's decision; `prefix` goes in front of the message as received. */
export type ReceiveOutcome =
  | { accept: true; prefix: Buffer; messageId?: string; verdict: 'inbox' | 'junk'; checks: CheckEvent[] }
  | { accept: false; code: number; reply: string; detail: string; messageId?: string; checks: CheckEvent[] };

export interface ReceiveDeps {
  hostname: string;
  domain: string;
  resolver: DNSResolver;
  dkimKeys: DkimKey[];
  checks: MessageCheck[];
  dmarcRejectAction: 'reject' | 'junk';
  /** Addresses the authenticated account may use in From (its sendableAddresses), lower-case. */
  sendable?: (account: string) => string[];
}

function protocolOf(ctx: ReceiveContext): string {
  const c = ctx.envelope.client;
  return `ESMTP${c.tls ? 'S' : ''}${ctx.envelope.authenticatedUser ? 'A' : ''}`;
}

/** Our Received header for a message (CRLF-terminated). */
export function receivedHeaderFor(deps: Pick<ReceiveDeps, 'hostname'>, ctx: ReceiveContext): string {
  const c = ctx.envelope.client;
  return receivedHeader({
    helo: c.helo, hostname: c.hostname, ip: c.remoteAddress, by: deps.hostname, protocol: protocolOf(ctx),
    id: ctx.receiptId, recipient: ctx.envelope.to.length === 1 ? ctx.envelope.to[0] : undefined, tls: ctx.tls,
    date: ctx.receivedAt,
  });
}

/** The inbound checks (authentication, then the content filters) on the message as received. */
export async function checkInbound(deps: ReceiveDeps, message: Buffer, envelope: SpoolEnvelope): Promise<InboundVerdict> {
  const section = headerSection(message);
  const fields = section === null ? [] : headerFields(section);
  const messageId = messageIdOf(fields);
  if (section === null) {
    return { accept: false, code: 554, reply: '5.6.0 Message header section is missing or too large', detail: 'malformed header', messageId, checks: [] };
  }
  const c = envelope.client;
  const auth = await checkAuthentication({
    message, ip: c.remoteAddress, helo: c.helo, sender: envelope.from, hostname: deps.hostname,
    resolver: deps.resolver, dmarcRejectAction: deps.dmarcRejectAction,
  });
  const checks: CheckEvent[] = [{ name: 'authentication', action: auth.action, detail: auth.detail }];
  let action = auth.action;
  let extra = '';
  for (const check of deps.checks) {
    const v = await check.check(message, { envelope, authenticationResults: auth.headers });
    checks.push({ name: check.name, action: v.action, detail: v.detail });
    action = strongest(action, v.action);
    if (v.headers) extra += v.headers;
  }
  if (action === 'reject') {
    const why = checks.filter((x) => x.action === 'reject').map((x) => x.detail).join('; ');
    return { accept: false, code: 550, reply: `5.7.1 Message refused: ${why}`, detail: why, messageId, checks };
  }
  const verdict = action === 'junk' ? 'junk' : 'inbox';
  const marker = verdict === 'junk' ? `${JUNK_MARKER}\r\n` : '';
  const cleaned = withoutForgedAuthResults(message, deps.hostname);
  if (cleaned.removed) checks.push({ name: 'authentication-results', action: 'accept', detail: `removed ${cleaned.removed} Authentication-Results header(s) forged with our name` });
  return {
    accept: true, headers: Buffer.from(marker + extra + auth.headers), messageId, verdict, checks,
    ...(cleaned.removed ? { message: cleaned.message } : {}),
  };
}

export async function receiveSubmission(deps: ReceiveDeps, message: Buffer, ctx: ReceiveContext): Promise<ReceiveOutcome> {
  const section = headerSection(message);
  const fields = section === null ? [] : headerFields(section);
  let messageId = messageIdOf(fields);
  if (section === null) {
    return { accept: false, code: 554, reply: '5.6.0 Message header section is missing or too large', detail: 'malformed header', messageId, checks: [] };
  }
  const user = ctx.envelope.authenticatedUser;
  const allowed = new Set((user && deps.sendable ? deps.sendable(user) : []).map((a) => a.toLowerCase()));
  const from = fromAddresses(fields);
  const foreign = from.filter((a) => !allowed.has(a.toLowerCase()));
  if (from.length === 0 || foreign.length > 0) {
    const detail = from.length === 0 ? 'no From address' : `From ${foreign.join(', ')} is not an address of ${user}`;
    return { accept: false, code: 550, reply: `5.7.1 ${detail}`, detail, messageId, checks: [] };
  }
  // RFC 6409 8.2/8.3: a submission server may add a missing Message-ID and Date.
  let added = '';
  if (!messageId) {
    messageId = `${randomBytes(12).toString('hex')}@${deps.hostname}`;
    added += `Message-ID: <${messageId}>\r\n`;
  }
  if (!firstHeader(fields, 'date')) added += `Date: ${ctx.receivedAt.toUTCString().replace('GMT', '+0000')}\r\n`;
  const rcv = receivedHeaderFor(deps, ctx);
  const unsigned = Buffer.concat([Buffer.from(rcv + added), message]);
  const signatures = await dkimSignatures(unsigned, deps.domain, deps.dkimKeys);
  const checks: CheckEvent[] = deps.dkimKeys.length
    ? [{ name: 'dkim-sign', action: 'accept', detail: `signed d=${deps.domain} s=${deps.dkimKeys.map((k) => k.selector).join(',')}` }]
    : [];
  return { accept: true, prefix: Buffer.from(signatures + rcv + added), messageId, verdict: 'inbox', checks };
}

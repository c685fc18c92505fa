// Delivery status notifications (RFC 3464): a multipart/report with a human-readable part, the
// message/delivery-status part, and the original message: its header (text/rfc822-headers), or all of it
// (message/rfc822) for a failure whose sender asked RET=FULL. Which recipients a DSN covers follows their NOTIFY
// (RFC 3461). Pure: no I/O.
import { randomBytes } from 'node:crypto';
import type { DsnNotify, EnvelopeDsn } from './api.ts';

export interface DsnRecipient {
  address: string;
  /**
   * `delivered`: stored here; `expanded`: an alias stored here for each of its several accounts; `relayed`:
   * handed to a next hop that sends no DSNs (RFC 3464 2.3.3).
   */
  action: 'failed' | 'delayed' | 'delivered' | 'expanded' | 'relayed';
  /** Enhanced status code, e.g. `5.1.1`. */
  status: string;
  /** The remote reply or our own reason; empty for none. */
  diagnostic: string;
  /** The remote host that answered, when one did. */
  remoteMta?: string;
  /** ORCPT as received (`rfc822;xtext`): the Original-Recipient field. */
  originalRecipient?: string;
}

export interface DsnInput {
  /** Our host name: the Reporting-MTA and the sender's domain. */
  reportingMta: string;
  /** Who gets the DSN: the original envelope sender (never empty). */
  to: string;
  arrivalDate: Date;
  now: Date;
  recipients: DsnRecipient[];
  /** The original message's header block (or as much of it as we have). */
  originalHeaders: Buffer;
  /** The whole original message (RET=FULL), returned as message/rfc822 instead of the header block. */
  fullMessage?: Buffer;
  /** Why RET=FULL was asked for but only the headers are returned; said in the human-readable part. */
  headersOnlyReason?: string;
  /** Only for delay notices: when we give up. */
  willRetryUntil?: Date;
  originalMessageId?: string;
  /** ENVID as received (xtext): the Original-Envelope-Id field. */
  envelopeId?: string;
}

/** A message as a DSN returns it: `complete` when `bytes` is all of it, else its header block. */
export interface OriginalMessage {
  bytes: Buffer;
  complete: boolean;
}

/** Whether a failure DSN about this entry returns the whole message: its sender asked RET=FULL (RFC 3461 4.3). */
export function returnsWholeMessage(entry: { envelope: { dsn?: EnvelopeDsn | undefined } }): boolean {
  return entry.envelope.dsn?.ret === 'FULL';
}

/**
 * Whether a recipient's NOTIFY asks for this kind of DSN. No NOTIFY (and entries from before DSN support) means
 * FAILURE,DELAY, as RFC 3461 4.1 lets an MTA choose and as Postern always did.
 */
export function wantsNotice(r: { notify?: DsnNotify[] | undefined }, kind: 'SUCCESS' | 'FAILURE' | 'DELAY'): boolean {
  if (!r.notify?.length) return kind !== 'SUCCESS';
  return r.notify.includes(kind);
}

const MAX_HEADERS = 64 * 1024;

/** ASCII printable only, one line: DSN fields are 7-bit header-like lines. */
function oneLine(text: string, max = 900): string {
  return text.replace(/[\r\n\t]+/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim().slice(0, max);
}

/** The enhanced status code in an SMTP reply, else one derived from its basic code or the fallback. */
export function statusFromReply(reply: string, fallback: string): string {
  const enhanced = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply);
  if (enhanced?.[1]) return enhanced[1];
  const basic = /^([45])\d\d\b/.exec(reply);
  if (basic?.[1]) return `${basic[1]}.0.0`;
  return fallback;
}

/** The header block of a raw message (up to the first empty line), capped. */
export function headerBlock(message: Buffer): Buffer {
  const limit = Math.min(message.length, MAX_HEADERS);
  const head = message.subarray(0, limit);
  const end = head.indexOf('\r\n\r\n');
  if (end >= 0) return head.subarray(0, end + 2);
  const lfEnd = head.indexOf('\n\n');
  return lfEnd >= 0 ? head.subarray(0, lfEnd + 1) : head;
}

function crlf(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}

/** Only 7-bit bytes (no NUL) and lines of at most 998 octets: what a message/rfc822 part may hold unencoded. */
export function isSevenBit(message: Buffer): boolean {
  let line = 0;
  for (const b of message) {
    if (b === 0 || b > 0x7f) return false;
    if (b === 0x0a) line = 0;
    else if (++line > 999) return false;
  }
  return true;
}

type Kind = 'failure' | 'delay' | 'success';

const SUBJECT: Record<Kind, string> = {
  failure: 'Undelivered Mail Returned to Sender',
  delay: 'Delivery delayed: still trying',
  success: 'Successful Mail Delivery Report',
};

function humanIntro(kind: Kind, input: DsnInput, host: string): string[] {
  const intro = [`This is the mail system at ${host}.`, ''];
  if (kind === 'delay') {
    return [...intro,
      'Your message could not be delivered yet. The mail system will keep trying',
      input.willRetryUntil ? `until ${input.willRetryUntil.toUTCString()}; you do not need to send it again.` : 'for a while; you do not need to send it again.',
      ''];
  }
  if (kind === 'success') {
    const relayed = input.recipients.some((r) => r.action === 'relayed');
    const expanded = input.recipients.some((r) => r.action === 'expanded');
    return [...intro,
      'Your message was delivered to the recipients below, as you asked.',
      ...(relayed ? ['A message marked relayed went to a mail system that sends no delivery reports: you will get no further notice of it.'] : []),
      ...(expanded ? ['An address marked expanded is a list of several mailboxes here: the message was delivered to each of them.'] : []),
      ''];
  }
  return [...intro,
    'Your message could not be delivered to one or more recipients.',
    input.fullMessage ? 'It is attached; the reasons are below.' : 'Its headers are attached; the reasons are below.',
    ...(input.headersOnlyReason ? [`You asked for the whole message back, but ${oneLine(input.headersOnlyReason)}: only its headers are returned.`] : []),
    ''];
}

export function buildDsn(input: DsnInput): Buffer {
  const boundary = `=_postern_${randomBytes(12).toString('hex')}`;
  const kind: Kind = input.recipients.every((r) => r.action === 'delayed') ? 'delay'
    : input.recipients.every((r) => r.action === 'delivered' || r.action === 'expanded' || r.action === 'relayed') ? 'success' : 'failure';
  const host = oneLine(input.reportingMta, 253);
  const human = humanIntro(kind, input, host);
  for (const r of input.recipients) {
    human.push(`<${oneLine(r.address, 320)}>: ${r.diagnostic ? oneLine(r.diagnostic) : r.action}`);
  }
  const perMessage = [
    `Reporting-MTA: dns; ${host}`,
    ...(input.envelopeId ? [`Original-Envelope-Id: ${oneLine(input.envelopeId, 100)}`] : []),
    `Arrival-Date: ${input.arrivalDate.toUTCString()}`,
  ];
  const perRecipient = input.recipients.map((r) => {
    const lines = [
      ...(r.originalRecipient ? [`Original-Recipient: ${oneLine(r.originalRecipient, 500)}`] : []),
      `Final-Recipient: rfc822; ${oneLine(r.address, 320)}`,
      `Action: ${r.action}`,
      `Status: ${r.status}`,
    ];
    if (r.remoteMta) lines.push(`Remote-MTA: dns; ${oneLine(r.remoteMta, 253)}`);
    // A failure or delay always says why (as before); a local delivery has nothing to quote.
    if (r.diagnostic || r.action === 'failed' || r.action === 'delayed') lines.push(`Diagnostic-Code: ${/^\d{3}[ -]/.test(r.diagnostic) ? 'smtp' : 'x-postern'}; ${oneLine(r.diagnostic)}`);
    lines.push(`Last-Attempt-Date: ${input.now.toUTCString()}`);
    if (r.action === 'delayed' && input.willRetryUntil) lines.push(`Will-Retry-Until: ${input.willRetryUntil.toUTCString()}`);
    return lines.join('\r\n');
  });
  const headers = [
    `From: Mail Delivery System <MAILER-DAEMON@${host}>`,
    `To: <${oneLine(input.to, 320)}>`,
    `Subject: ${SUBJECT[kind]}`,
    `Date: ${input.now.toUTCString()}`,
    `Message-ID: <${Date.now().toString(36)}.${randomBytes(8).toString('hex')}@${host}>`,
    ...(input.originalMessageId ? [`In-Reply-To: <${oneLine(input.originalMessageId, 250)}>`, `References: <${oneLine(input.originalMessageId, 250)}>`] : []),
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
  ];
  const returned = input.fullMessage
    ? ['Content-Type: message/rfc822', `Content-Description: ${kind === 'failure' ? 'Undelivered message' : 'Message'}`]
    : ['Content-Type: text/rfc822-headers', `Content-Description: ${kind === 'failure' ? 'Undelivered message headers' : 'Message headers'}`];
  const original = crlf((input.fullMessage ?? headerBlock(input.originalHeaders)).toString('latin1')).replace(/(\r\n)*$/, '\r\n');
  const text = [
    ...headers,
    '',
    'This is a MIME-encapsulated delivery status notification.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Description: Notification',
    '',
    ...human,
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    'Content-Description: Delivery report',
    '',
    ...perMessage,
    '',
    perRecipient.join('\r\n\r\n'),
    '',
    `--${boundary}`,
    ...returned,
    '',
  ].join('\r\n') + '\r\n' + original + `\r\n--${boundary}--\r\n`;
  return Buffer.from(text, 'latin1');
}

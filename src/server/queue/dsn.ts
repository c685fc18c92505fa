// Delivery status notifications (RFC 3464): a multipart/report with a human-readable part, the
// message/delivery-status part, and the original message's header (text/rfc822-headers). Pure: no I/O.
import { randomBytes } from 'node:crypto';

export interface DsnRecipient {
  address: string;
  action: 'failed' | 'delayed';
  /** Enhanced status code, e.g. `5.1.1`. */
  status: string;
  /** The remote reply or our own reason. */
  diagnostic: string;
  /** The remote host that answered, when one did. */
  remoteMta?: string;
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
  /** Only for delay notices: when we give up. */
  willRetryUntil?: Date;
  originalMessageId?: string;
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

export function buildDsn(input: DsnInput): Buffer {
  const boundary = `=_postern_${randomBytes(12).toString('hex')}`;
  const delay = input.recipients.every((r) => r.action === 'delayed');
  const host = oneLine(input.reportingMta, 253);
  const subject = delay ? 'Delivery delayed: still trying' : 'Undelivered Mail Returned to Sender';
  const human: string[] = delay
    ? [
        `This is the mail system at ${host}.`,
        '',
        'Your message could not be delivered yet. The mail system will keep trying',
        input.willRetryUntil ? `until ${input.willRetryUntil.toUTCString()}; you do not need to send it again.` : 'for a while; you do not need to send it again.',
        '',
      ]
    : [
        `This is the mail system at ${host}.`,
        '',
        'Your message could not be delivered to one or more recipients.',
        'It has been returned to you; the reasons are below.',
        '',
      ];
  for (const r of input.recipients) {
    human.push(`<${oneLine(r.address, 320)}>: ${oneLine(r.diagnostic)}`);
  }
  const perMessage = [
    `Reporting-MTA: dns; ${host}`,
    `Arrival-Date: ${input.arrivalDate.toUTCString()}`,
  ];
  const perRecipient = input.recipients.map((r) => {
    const lines = [
      `Final-Recipient: rfc822; ${oneLine(r.address, 320)}`,
      `Action: ${r.action}`,
      `Status: ${r.status}`,
    ];
    if (r.remoteMta) lines.push(`Remote-MTA: dns; ${oneLine(r.remoteMta, 253)}`);
    lines.push(`Diagnostic-Code: ${/^\d{3}[ -]/.test(r.diagnostic) ? 'smtp' : 'x-postern'}; ${oneLine(r.diagnostic)}`);
    lines.push(`Last-Attempt-Date: ${input.now.toUTCString()}`);
    if (r.action === 'delayed' && input.willRetryUntil) lines.push(`Will-Retry-Until: ${input.willRetryUntil.toUTCString()}`);
    return lines.join('\r\n');
  });
  const headers = [
    `From: Mail Delivery System <MAILER-DAEMON@${host}>`,
    `To: <${oneLine(input.to, 320)}>`,
    `Subject: ${subject}`,
    `Date: ${input.now.toUTCString()}`,
    `Message-ID: <${Date.now().toString(36)}.${randomBytes(8).toString('hex')}@${host}>`,
    ...(input.originalMessageId ? [`In-Reply-To: <${oneLine(input.originalMessageId, 250)}>`, `References: <${oneLine(input.originalMessageId, 250)}>`] : []),
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
  ];
  const original = crlf(headerBlock(input.originalHeaders).toString('latin1')).replace(/(\r\n)*$/, '\r\n');
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
    'Content-Type: text/rfc822-headers',
    'Content-Description: Undelivered message headers',
    '',
  ].join('\r\n') + '\r\n' + original + `\r\n--${boundary}--\r\n`;
  return Buffer.from(text, 'latin1');
}

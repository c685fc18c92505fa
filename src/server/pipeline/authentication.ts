// Inbound authentication: SPF, DKIM, DMARC and ARC through mailauth, turned into an Authentication-Results header
// and a verdict. The DNS resolver is injected so that tests (and a host with its own resolver) control lookups.
import { authenticate } from 'mailauth';
import type { AuthenticateResult, DNSResolver } from 'mailauth';
import type { CheckAction } from './checks.ts';

export interface AuthCheckInput {
  message: Buffer;
  ip: string;
  helo: string;
  sender: string;
  /** Our host name: the authserv-id of the Authentication-Results header. */
  hostname: string;
  resolver: DNSResolver;
  /** What to do with a message whose author domain publishes p=reject and that fails DMARC. */
  dmarcRejectAction: 'reject' | 'junk';
}

export interface AuthCheckOutcome {
  /** `Authentication-Results: …` (and `Received-SPF`) header lines, CRLF-terminated. */
  headers: string;
  action: CheckAction;
  detail: string;
  /** Short results for the trace: spf=pass, dkim=fail, … */
  results: Record<string, string>;
}

function summarise(r: AuthenticateResult): Record<string, string> {
  const dkim = r.dkim?.results?.map((x) => `${x.status.result}${x.signingDomain ? `(${x.signingDomain})` : ''}`).join(' ') || 'none';
  return {
    spf: r.spf ? r.spf.status.result : 'none',
    dkim,
    dmarc: r.dmarc ? `${r.dmarc.status.result}${r.dmarc.policy ? ` p=${r.dmarc.policy}` : ''}` : 'none',
    arc: r.arc ? r.arc.status.result : 'none',
  };
}

const SIGNATURE_FIELD = /^(?:dkim-signature|arc-seal|arc-message-signature|arc-authentication-results)[ \t]*:/im;
/** A From field with its continuation lines (the header section starts at a line start: `^` with /m). */
const FROM_FIELD = /^from[ \t]*:.*(?:\r\n[ \t].*)*\r\n/gim;

/**
 * What mailauth needs to read. A message with no DKIM or ARC signature has no body hash to check and no ARC
 * chain, and of its header fields only From counts (DMARC's author domain; Received and Return-Path are read
 * only with mailauth's trustReceived, which Postern does not set): its From field(s) alone give the same SPF,
 * DKIM (none), DMARC and ARC (none) results. mailauth parses every header line it is given, which cost about as
 * much as the checks themselves: 525 against 253 µs of CPU per message for a header of 12 Received fields.
 */
export function authenticationInput(message: Buffer): Buffer {
  const end = message.indexOf('\r\n\r\n');
  if (end < 0) return message;
  const head = message.subarray(0, end + 4).toString('latin1');
  if (SIGNATURE_FIELD.test(head)) return message;
  return Buffer.from(`${head.match(FROM_FIELD)?.join('') ?? ''}\r\n`, 'latin1');
}

export async function checkAuthentication(input: AuthCheckInput): Promise<AuthCheckOutcome> {
  const r = await authenticate(authenticationInput(input.message), {
    ip: input.ip,
    helo: input.helo,
    sender: input.sender || undefined,
    mta: input.hostname,
    resolver: input.resolver,
    disableBimi: true,
  });
  const results = summarise(r);
  let action: CheckAction = 'accept';
  let detail = Object.entries(results).map(([k, v]) => `${k}=${v}`).join(' ');
  const dmarc = r.dmarc;
  if (dmarc && dmarc.status.result === 'fail') {
    // ARC may override a DMARC failure for mail that passed a trusted forwarder; mailauth reflects that by not
    // failing. p=quarantine always files in Junk; p=reject follows the configured action.
    if (dmarc.policy === 'reject') action = input.dmarcRejectAction === 'reject' ? 'reject' : 'junk';
    else if (dmarc.policy === 'quarantine') action = 'junk';
    if (action !== 'accept') detail = `DMARC policy ${dmarc.policy} of ${dmarc.status.header?.from ?? dmarc.domain} failed (${detail})`;
  }
  return { headers: r.headers, action, detail, results };
}

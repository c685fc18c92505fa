// The DSN parameters of MAIL FROM and RCPT TO (RFC 3461). smtp-server checks RET and NOTIFY, refuses repeated
// parameters and control characters, but decodes xtext without checking it; ENVID and ORCPT are checked here on
// the command line as received, and kept as xtext for the DSN fields that echo them (RFC 3464 2.2.1, 2.3.1).
import type { SMTPServerSession } from 'smtp-server';
import type { DsnNotify, EnvelopeDsn, RecipientDsn } from '../queue/api.ts';
import { encodeXtext, isOrcpt, isXtext, decodeXtext } from '../queue/xtext.ts';

const MAX_ENVID = 100;
const MAX_ORCPT = 500;

/**
 * Why a MAIL or RCPT command line's ENVID or ORCPT must be refused with 501 5.5.4, or null. Other commands and
 * parameters are left to smtp-server.
 */
export function dsnParamProblem(line: string): string | null {
  const verb = /^(MAIL|RCPT)\s/i.exec(line)?.[1]?.toUpperCase();
  if (!verb) return null;
  // Parameters follow the address: everything after the first `>` (smtp-server splits on spaces the same way).
  const close = line.indexOf('>');
  if (close < 0) return null;
  for (const param of line.slice(close + 1).trim().split(/\s+/)) {
    const eq = param.indexOf('=');
    const key = (eq < 0 ? param : param.slice(0, eq)).toUpperCase();
    const value = eq < 0 ? '' : param.slice(eq + 1);
    if (verb === 'MAIL' && key === 'ENVID') {
      if (!isXtext(value) || !value) return '5.5.4 ENVID must be xtext';
      const decoded = decodeXtext(value);
      if (decoded.length > MAX_ENVID) return `5.5.4 ENVID longer than ${MAX_ENVID} characters`;
      // RFC 3461 4.4: printable US-ASCII once decoded.
      if (!/^[\x20-\x7e]+$/.test(decoded)) return '5.5.4 ENVID must decode to printable US-ASCII';
    }
    if (verb === 'RCPT' && key === 'ORCPT') {
      if (value.length > MAX_ORCPT) return `5.5.4 ORCPT longer than ${MAX_ORCPT} characters`;
      if (!isOrcpt(value)) return '5.5.4 ORCPT must be addr-type;xtext';
      const address = decodeXtext(value.slice(value.indexOf(';') + 1));
      if (!/^[\x20-\x7e]+$/.test(address)) return '5.5.4 ORCPT address must decode to printable US-ASCII';
      if (/^rfc822$/i.test(value.slice(0, value.indexOf(';'))) && !address.includes('@')) return '5.5.4 ORCPT rfc822 address needs a domain';
    }
  }
  return null;
}

/** The MAIL FROM parameters of a transaction as the spool keeps them, or undefined when none were given. */
export function envelopeDsn(session: SMTPServerSession): EnvelopeDsn | undefined {
  const d = (session.envelope as { dsn?: { ret?: string | null; envid?: string | null } }).dsn;
  const ret = d?.ret === 'FULL' || d?.ret === 'HDRS' ? d.ret : undefined;
  const envid = d?.envid ? encodeXtext(d.envid) : undefined;
  if (!ret && !envid) return undefined;
  return { ...(ret ? { ret } : {}), ...(envid ? { envid } : {}) };
}

/** One recipient's RCPT TO parameters as the spool keeps them (smtp-server decoded the xtext; encoded again). */
export function recipientDsn(rcpt: SMTPServerSession['envelope']['rcptTo'][number]): RecipientDsn | undefined {
  const d = (rcpt as { dsn?: { notify?: string[]; orcpt?: string } }).dsn;
  if (!d?.notify && !d?.orcpt) return undefined;
  const semi = d.orcpt?.indexOf(';') ?? -1;
  return {
    ...(d.notify ? { notify: d.notify as DsnNotify[] } : {}),
    // The type as given, lower-cased for rfc822 (RFC 3461 4.2 compares it case-insensitively).
    ...(d.orcpt && semi > 0 ? { orcpt: `${/^rfc822$/i.test(d.orcpt.slice(0, semi)) ? 'rfc822' : d.orcpt.slice(0, semi)};${encodeXtext(d.orcpt.slice(semi + 1))}` } : {}),
  };
}

// Documents that let mail clients and sending MTAs configure themselves: the MTA-STS policy (and its id), the
// Thunderbird autoconfig XML, the Outlook autodiscover XML and the Apple .mobileconfig profile.
import { createHash } from 'node:crypto';
import type { StackConfig } from './stack-config.ts';
import { renderTemplate } from './template.ts';
import { mtaStsPolicyTemplate } from '../../templates/mta-sts-policy.ts';
import { autoconfigXmlTemplate } from '../../templates/autoconfig-xml.ts';
import { autodiscoverXmlTemplate } from '../../templates/autodiscover-xml.ts';
import { mobileconfigTemplate } from '../../templates/mobileconfig.ts';

/** Ports clients should use: the public ones, or the listener ports of a dev server. */
export interface ClientPorts { imaps: number; pop3s: number; submissions: number }
export const PUBLIC_CLIENT_PORTS: ClientPorts = { imaps: 993, pop3s: 995, submissions: 465 };

type ClientStack = Pick<StackConfig, 'domain' | 'hostname'>;

/** The policy served at https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461). */
export function renderMtaStsPolicy(stack: Pick<StackConfig, 'hostname' | 'mtaSts'>): string {
  return renderTemplate(mtaStsPolicyTemplate, {
    mode: stack.mtaSts.mode,
    mxLines: `mx: ${stack.hostname}\r\n`,
    maxAge: stack.mtaSts.maxAge,
  }, 'text');
}

/**
 * The `id=` of the `_mta-sts` TXT record: derived from the policy text, so it changes exactly when the policy does
 * (senders refetch the policy when the id changes). 20 hex digits of SHA-256 (RFC 8461 allows 1-32 alphanumerics).
 */
export function mtaStsPolicyId(policyText: string): string {
  return createHash('sha256').update(policyText).digest('hex').slice(0, 20);
}

function displayName(stack: ClientStack): string {
  return `${stack.domain} mail`;
}

export function renderAutoconfigXml(stack: ClientStack, ports: ClientPorts = PUBLIC_CLIENT_PORTS): string {
  return renderTemplate(autoconfigXmlTemplate, {
    domain: stack.domain, displayName: displayName(stack), hostname: stack.hostname,
    imapsPort: ports.imaps, pop3sPort: ports.pop3s, submissionsPort: ports.submissions,
  }, 'xml');
}

/**
 * Outlook's POX autodiscover response. `emailAddress` is the one from the client's request (the server must have
 * validated it); without it the response carries an empty LoginName and Outlook uses what the user typed.
 */
export function renderAutodiscoverXml(stack: ClientStack, ports: ClientPorts = PUBLIC_CLIENT_PORTS, emailAddress = ''): string {
  return renderTemplate(autodiscoverXmlTemplate, {
    hostname: stack.hostname, imapsPort: ports.imaps, submissionsPort: ports.submissions, loginName: emailAddress,
  }, 'xml');
}

/** A stable UUID (RFC 9562 version 8 layout) derived from a name, so the profile is identical on every render. */
export function nameBasedUuid(name: string): string {
  const h = createHash('sha256').update(name).digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex').toUpperCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export function renderMobileconfig(stack: ClientStack, ports: ClientPorts = PUBLIC_CLIENT_PORTS): string {
  const identifier = `${stack.domain.split('.').reverse().join('.')}.postern.mail`;
  return renderTemplate(mobileconfigTemplate, {
    domain: stack.domain, displayName: displayName(stack), hostname: stack.hostname,
    imapsPort: ports.imaps, submissionsPort: ports.submissions, identifier,
    accountUuid: nameBasedUuid(`postern mobileconfig account ${stack.domain}`),
    profileUuid: nameBasedUuid(`postern mobileconfig profile ${stack.domain}`),
  }, 'xml');
}

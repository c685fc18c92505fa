// Envelope address checks shared by the MX and submission listeners. Anything that could make a later hop route
// the mail elsewhere (%-hack, bang paths, quoted @, IP literals, trailing dots) is refused outright, never
// interpreted: Postern delivers only to its own domains on the MX, and submission sends to plain addresses only.
import { domainToASCII } from 'node:url';

export interface ParsedAddress {
  local: string;
  /** Lower-case A-label domain. */
  domain: string;
  /** `local@domain` with the domain lower-cased. */
  address: string;
}

export type AddressProblem = { problem: 'syntax' | 'routing'; message: string };

const MAX_LOCAL = 64;
const MAX_DOMAIN = 253;
// Dot-atom local part (RFC 5321) plus UTF-8 for SMTPUTF8; no quoting (quoted local parts are how "a@b"@host
// relay tricks travel), no % or ! (the %-hack and UUCP bang paths).
const LOCAL_RE = /^[A-Za-z0-9!#$&'*+/=?^_`{|}~\u0080-\uFFFF-]+(?:\.[A-Za-z0-9#$&'*+/=?^_`{|}~\u0080-\uFFFF-]+)*$/u;
const LABEL_RE = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export function parseEnvelopeAddress(raw: string): ParsedAddress | AddressProblem {
  const at = raw.lastIndexOf('@');
  if (at <= 0 || at === raw.length - 1) return { problem: 'syntax', message: '5.1.3 Address must be local-part@domain' };
  const local = raw.slice(0, at);
  let domain = raw.slice(at + 1);
  if (local.includes('@') || local.includes('"') || local.includes(':') || local.includes(',')) {
    return { problem: 'routing', message: '5.7.1 Source routes and quoted addresses are not accepted' };
  }
  if (local.includes('%') || local.includes('!')) {
    return { problem: 'routing', message: '5.7.1 Routing characters (% !) in addresses are not accepted' };
  }
  if (domain.startsWith('[') || /^[0-9.]+$/.test(domain) || domain.includes(':')) {
    return { problem: 'routing', message: '5.7.1 Address literals are not accepted' };
  }
  if (domain.endsWith('.')) return { problem: 'routing', message: '5.1.2 Domain must not end with a dot' };
  if (local.length > MAX_LOCAL || !LOCAL_RE.test(local)) return { problem: 'syntax', message: '5.1.3 Bad local part' };
  // Domains are case-insensitive; IDNs become A-labels ('' when not a valid name).
  domain = domainToASCII(domain.toLowerCase());
  if (domain.length > MAX_DOMAIN || !domain.includes('.') || !domain.split('.').every((l) => LABEL_RE.test(l))) {
    return { problem: 'syntax', message: '5.1.2 Bad domain' };
  }
  return { local, domain, address: `${local}@${domain}` };
}

export function isProblem(p: ParsedAddress | AddressProblem): p is AddressProblem {
  return 'problem' in p;
}

/** The domains Postern receives mail for: the mail domain and every domain named by a user or alias. */
export function localDomainsOf(config: { domain: string; users: { address: string }[]; aliases: { from: string }[] }): Set<string> {
  const out = new Set<string>([config.domain.toLowerCase()]);
  for (const a of [...config.users.map((u) => u.address), ...config.aliases.map((x) => x.from)]) {
    const d = a.slice(a.lastIndexOf('@') + 1).toLowerCase();
    if (d) out.add(d);
  }
  return out;
}

// Validation of the names and addresses a stack config holds: domain names (IDN accepted, stored as the
// A-label), mailbox addresses and CIDR blocks. Pure computation only.
import { domainToASCII } from 'node:url';
import { isIPv4, isIPv6 } from 'node:net';

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// Service labels (`_spf`, `_dmarc`) are DNS names but not host names.
const SERVICE_LABEL = /^_[a-z0-9](?:[a-z0-9-]{0,60}[a-z0-9])?$/;
// RFC 5321 dot-atom local part, ASCII only: Postern does not offer SMTPUTF8 addresses.
const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/** A-label form of a domain name, lower-case, without a trailing dot; undefined when it is not a valid host name. */
export function toALabel(name: string, allowServiceLabels = false): string | undefined {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  if (trimmed === '' || trimmed.length > 253 || /\s/.test(trimmed)) return undefined;
  const ascii = domainToASCII(trimmed).toLowerCase();
  if (ascii === '' || ascii.length > 253) return undefined;
  const labels = ascii.split('.');
  if (labels.length < 2) return undefined;
  if (!labels.every((l, i) => LABEL.test(l) || (allowServiceLabels && i < labels.length - 2 && SERVICE_LABEL.test(l)))) return undefined;
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return undefined; // an IPv4 address is not a domain
  return ascii;
}

/** True when `name` is `domain` itself or a name below it. */
export function isWithin(name: string, domain: string): boolean {
  return name === domain || name.endsWith('.' + domain);
}

export interface ParsedAddress { local: string; domain: string; address: string }

/** Parses `local@domain` (domain may be an IDN); local part is kept as written, the domain as its A-label. */
export function parseAddress(text: string): ParsedAddress | undefined {
  const at = text.lastIndexOf('@');
  if (at <= 0 || text.length > 254) return undefined;
  const local = text.slice(0, at);
  if (local.length > 64 || !LOCAL_PART.test(local)) return undefined;
  const domain = toALabel(text.slice(at + 1));
  if (domain === undefined) return undefined;
  return { local, domain, address: `${local}@${domain}` };
}

export type CidrResult = { ok: true; cidr: string; anywhere: boolean } | { ok: false; reason: string };

/** Validates an IPv4/IPv6 CIDR block; a bare address is taken as a single host (/32 or /128). */
export function parseCidr(text: string): CidrResult {
  const slash = text.indexOf('/');
  const ip = slash < 0 ? text : text.slice(0, slash);
  const v4 = isIPv4(ip);
  if (!v4 && !isIPv6(ip)) return { ok: false, reason: 'expected an IPv4 or IPv6 CIDR block like 203.0.113.0/24 or 2001:db8::/48' };
  const max = v4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : text.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    return { ok: false, reason: `expected a prefix length from 0 to ${max} after "/"` };
  }
  const prefix = Number(prefixText);
  const bits = v4 ? ipv4Bits(ip) : ipv6Bits(ip);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(max - prefix);
  const network = bits & mask;
  if (network !== bits) {
    const fixed = `${v4 ? formatIPv4(network) : formatIPv6(network)}/${prefix}`;
    return { ok: false, reason: `expected a network address: host bits are set (did you mean "${fixed}"?)` };
  }
  return { ok: true, cidr: `${v4 ? formatIPv4(network) : formatIPv6(network)}/${prefix}`, anywhere: prefix === 0 };
}

function ipv4Bits(ip: string): bigint {
  return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

function formatIPv4(bits: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((bits >> s) & 255n)).join('.');
}

function ipv6Bits(ip: string): bigint {
  let text = ip;
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = ipv4Bits(v4[1]!);
    text = text.slice(0, -v4[1]!.length) + `${(b >> 16n).toString(16)}:${(b & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** RFC 5952 text form: lower-case, longest run of zero groups compressed. */
export function formatIPv6(bits: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((bits >> BigInt((7 - i) * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Canonical text of an IPv6 address (for comparing DNS answers with the plan). */
export function canonicalIPv6(ip: string): string {
  return formatIPv6(ipv6Bits(ip));
}

/** Reverse-DNS name of an address: 4.3.2.1.in-addr.arpa or nibbles under ip6.arpa. */
export function reverseName(ip: string): string {
  if (isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const bits = ipv6Bits(ip);
  const nibbles = bits.toString(16).padStart(32, '0').split('').reverse();
  return `${nibbles.join('.')}.ip6.arpa`;
}

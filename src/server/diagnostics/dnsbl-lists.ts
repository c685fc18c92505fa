// The blocklists checked by default, with what each return code means and where to ask for delisting.
// Codes from the operators' own documentation (Spamhaus "DNSBL return codes", Barracuda, SpamCop, PSBL, UCEPROTECT).

export interface DnsblList {
  /** DNS zone queried, e.g. zen.spamhaus.org. */
  zone: string;
  name: string;
  /** What is looked up: the host's IP address, or the mail domain. */
  kind: 'ip' | 'domain';
  /** Whether the list answers for IPv6 addresses (nibble format). */
  ipv6: boolean;
  /** Return code → what the listing means. Codes missing here are reported as "listed (code X)". */
  codes: Record<string, string>;
  /** Return codes that mean "your query was refused", not "listed". */
  refusals: Record<string, string>;
  delistUrl: string;
}

const SPAMHAUS_REFUSALS: Record<string, string> = {
  '127.255.255.252': 'typing error in the DNSBL name',
  '127.255.255.254': 'query through a public or open resolver, refused by Spamhaus',
  '127.255.255.255': 'too many queries from this resolver',
};

export const SPAMHAUS_ZEN: DnsblList = {
  zone: 'zen.spamhaus.org', name: 'Spamhaus ZEN', kind: 'ip', ipv6: true,
  codes: {
    '127.0.0.2': 'SBL: a known spam source or spam operation',
    '127.0.0.3': 'SBL CSS: low-reputation sender (snowshoe spam or a compromised host sending spam)',
    '127.0.0.4': 'XBL: the address is running malware, a botnet or an open proxy (exploited)',
    '127.0.0.9': 'SBL DROP: the netblock is hijacked or run by criminals',
    '127.0.0.10': 'PBL (ISP maintained): the address is in a range that should not send mail directly to MX hosts',
    '127.0.0.11': 'PBL (Spamhaus maintained): the address is in a range that should not send mail directly to MX hosts',
  },
  refusals: SPAMHAUS_REFUSALS,
  delistUrl: 'https://check.spamhaus.org/',
};

export const SPAMHAUS_DBL: DnsblList = {
  zone: 'dbl.spamhaus.org', name: 'Spamhaus DBL', kind: 'domain', ipv6: false,
  codes: {
    '127.0.1.2': 'spam domain',
    '127.0.1.4': 'phishing domain',
    '127.0.1.5': 'malware domain',
    '127.0.1.6': 'botnet command-and-control domain',
    '127.0.1.102': 'abused legitimate domain used in spam',
    '127.0.1.103': 'abused legitimate redirector or URL shortener used in spam',
    '127.0.1.104': 'abused legitimate domain used in phishing',
    '127.0.1.105': 'abused legitimate domain used for malware',
    '127.0.1.106': 'abused legitimate domain used for botnet command and control',
  },
  refusals: { ...SPAMHAUS_REFUSALS, '127.0.1.255': 'IP address queried against a domain list' },
  delistUrl: 'https://check.spamhaus.org/',
};

export const BARRACUDA: DnsblList = {
  zone: 'b.barracudacentral.org', name: 'Barracuda Reputation Block List', kind: 'ip', ipv6: false,
  codes: { '127.0.0.2': 'poor sending reputation: the address sent spam to Barracuda customers or their traps' },
  refusals: {},
  delistUrl: 'https://www.barracudacentral.org/rbl/removal-request',
};

export const SPAMCOP: DnsblList = {
  zone: 'bl.spamcop.net', name: 'SpamCop', kind: 'ip', ipv6: false,
  codes: { '127.0.0.2': 'spam reported by SpamCop users or trap hits in the last days (expires 24 hours after the reports stop)' },
  refusals: {},
  delistUrl: 'https://www.spamcop.net/bl.shtml',
};

export const PSBL: DnsblList = {
  zone: 'psbl.surriel.com', name: 'Passive Spam Block List', kind: 'ip', ipv6: false,
  codes: { '127.0.0.2': 'the address sent mail to PSBL spam traps' },
  refusals: {},
  delistUrl: 'https://psbl.org/remove',
};

export const UCEPROTECT_1: DnsblList = {
  zone: 'dnsbl-1.uceprotect.net', name: 'UCEPROTECT level 1', kind: 'ip', ipv6: false,
  codes: { '127.0.0.2': 'the address itself hit UCEPROTECT spam traps (expires after 7 days without new hits)' },
  refusals: {},
  delistUrl: 'https://www.uceprotect.net/en/rblcheck.php',
};

export const DEFAULT_DNSBLS: readonly DnsblList[] = [SPAMHAUS_ZEN, BARRACUDA, SPAMCOP, PSBL, UCEPROTECT_1, SPAMHAUS_DBL];

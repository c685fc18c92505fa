// The DNS records a Postern domain needs, from a validated stack and the host's facts. Pure.
import type { StackConfig } from './stack-config.ts';
import type { DnsRecord, DnsRecordType } from './dns-records.ts';
import { dkimPublicValue, dkimSelectors, dkimTxtValue, type DkimAlgorithm } from './dkim.ts';
import { canonicalIPv6, reverseName } from './names.ts';
import { isIPv4, isIPv6 } from 'node:net';

export interface DnsFacts {
  ipv4: string;
  ipv6?: string;
  /** One entry per DKIM selector of the stack (see dkimSelectors). */
  dkim: { selector: string; algorithm: DkimAlgorithm; publicKey: string }[];
  mtaStsPolicyId: string;
  /** Before the first deploy the keys do not exist yet: plan without them and list them in `pendingDkim`. */
  allowMissingDkim?: boolean;
}

/** Which records at a name Postern owns: all of the type, or only TXT values starting with a tag (`v=spf1`). */
export interface OwnedRRset { name: string; type: DnsRecordType; valuePrefix?: string }

export interface ExpectedPtr { address: string; reverseName: string; target: string }

export interface DnsPlan {
  records: DnsRecord[];
  owned: OwnedRRset[];
  ptr: ExpectedPtr[];
  /** DKIM records whose public key was not given (only with allowMissingDkim). */
  pendingDkim: { name: string; selector: string; algorithm: DkimAlgorithm }[];
}

/** Names on the TLS certificate: the mail host and the hosts that serve policies and client configuration. */
export function certificateNames(stack: Pick<StackConfig, 'domain' | 'hostname'>): string[] {
  return [stack.hostname, `mta-sts.${stack.domain}`, `autoconfig.${stack.domain}`, `autodiscover.${stack.domain}`];
}

export function spfValue(stack: Pick<StackConfig, 'relay'>, ipv4: string, ipv6?: string): string {
  const parts = ['v=spf1', `ip4:${ipv4}`];
  if (ipv6) parts.push(`ip6:${ipv6}`);
  if (stack.relay?.spfInclude) parts.push(`include:${stack.relay.spfInclude}`);
  parts.push('-all');
  return parts.join(' ');
}

export function planDns(stack: StackConfig, facts: DnsFacts): DnsPlan {
  if (!isIPv4(facts.ipv4)) throw new Error(`planDns: ipv4 ${JSON.stringify(facts.ipv4)} is not an IPv4 address`);
  if (facts.ipv6 !== undefined && !isIPv6(facts.ipv6)) throw new Error(`planDns: ipv6 ${JSON.stringify(facts.ipv6)} is not an IPv6 address`);
  if (!/^[A-Za-z0-9]{1,32}$/.test(facts.mtaStsPolicyId)) throw new Error(`planDns: MTA-STS policy id ${JSON.stringify(facts.mtaStsPolicyId)} must be 1-32 letters or digits`);
  const ipv6 = stack.ipv6 && facts.ipv6 !== undefined ? canonicalIPv6(facts.ipv6) : undefined;
  const { domain, hostname } = stack;
  const ttl = stack.dnsTtl;
  const records: DnsRecord[] = [];
  const address = (name: string): void => {
    records.push({ name, type: 'A', ttl, value: facts.ipv4 });
    if (ipv6) records.push({ name, type: 'AAAA', ttl, value: ipv6 });
  };
  const txt = (name: string, value: string): void => { records.push({ name, type: 'TXT', ttl, value }); };

  address(hostname);
  records.push({ name: domain, type: 'MX', ttl, priority: 10, value: hostname });
  txt(domain, spfValue(stack, facts.ipv4, ipv6));
  // The mail host sends its own bounces and greetings: it gets its own SPF (RFC 7208 §2.3, HELO identity).
  txt(hostname, spfValue({}, facts.ipv4, ipv6));

  const pendingDkim: DnsPlan['pendingDkim'] = [];
  for (const sel of dkimSelectors(stack)) {
    const key = facts.dkim.find((k) => k.selector === sel.selector && k.algorithm === sel.algorithm);
    const name = `${sel.selector}._domainkey.${domain}`;
    if (!key && facts.allowMissingDkim) { pendingDkim.push({ name, selector: sel.selector, algorithm: sel.algorithm }); continue; }
    if (!key) throw new Error(`planDns: no public key given for DKIM selector ${sel.selector} (${sel.algorithm})`);
    txt(name, dkimTxtValue(sel.algorithm, dkimPublicValue(sel.selector, sel.algorithm, key.publicKey)));
  }

  const dmarc = [`v=DMARC1`, `p=${stack.dmarc.policy}`];
  if (stack.dmarc.subdomainPolicy) dmarc.push(`sp=${stack.dmarc.subdomainPolicy}`);
  dmarc.push(`rua=mailto:${stack.dmarc.reportAddress}`);
  txt(`_dmarc.${domain}`, dmarc.join('; '));

  txt(`_mta-sts.${domain}`, `v=STSv1; id=${facts.mtaStsPolicyId}`);
  address(`mta-sts.${domain}`);
  txt(`_smtp._tls.${domain}`, `v=TLSRPTv1; rua=mailto:${stack.tlsRpt.reportAddress}`);

  // RFC 6186 / RFC 8314: implicit TLS preferred; "." target = service not offered.
  const srv = (service: string, port: number, offered: boolean): void => {
    records.push(offered
      ? { name: `_${service}._tcp.${domain}`, type: 'SRV', ttl, priority: 0, weight: 1, port, target: hostname }
      : { name: `_${service}._tcp.${domain}`, type: 'SRV', ttl, priority: 0, weight: 0, port: 0, target: '.' });
  };
  srv('submissions', 465, true);
  srv('submission', 587, true);
  srv('imaps', 993, true);
  srv('pop3s', 995, true);
  srv('imap', 143, stack.plaintextPorts);
  srv('pop3', 110, stack.plaintextPorts);
  srv('autodiscover', 443, true);

  address(`autoconfig.${domain}`);
  address(`autodiscover.${domain}`);

  // CAA on each certificate name only, so the domain's other certificates (www, …) keep their own CA.
  for (const name of certificateNames(stack)) {
    records.push({ name, type: 'CAA', ttl, flags: 0, tag: 'issue', value: stack.acme.caaIdentity });
  }

  const owned: OwnedRRset[] = [];
  const seen = new Set<string>();
  for (const r of records) {
    const key = `${r.name} ${r.type}`;
    if (seen.has(key)) continue;
    seen.add(key);
    owned.push(r.type === 'TXT' && (r.name === domain || r.name === hostname) ? { name: r.name, type: 'TXT', valuePrefix: 'v=spf1' } : { name: r.name, type: r.type });
  }

  const ptr: ExpectedPtr[] = [{ address: facts.ipv4, reverseName: reverseName(facts.ipv4), target: hostname }];
  if (ipv6) ptr.push({ address: ipv6, reverseName: reverseName(ipv6), target: hostname });
  return { records, owned, ptr, pendingDkim };
}

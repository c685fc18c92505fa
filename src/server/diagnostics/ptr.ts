// Reverse DNS: each sending address has a PTR naming the host, and that name resolves back to the same address
// (forward-confirmed). Large receivers refuse mail from addresses without it; over IPv6, Gmail refuses outright.
import { isIPv6 } from 'node:net';
import type { DiagnosticResolver } from './resolver.ts';
import { fail, ok, warn, type CheckResult } from './check.ts';

/** Canonical text of an IPv6 address, for comparison ("2001:db8::1" and "2001:0db8:0:0::1" are equal). */
function canonicalIp(ip: string): string {
  if (!isIPv6(ip)) return ip;
  const [head, tail] = ip.toLowerCase().split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.replace(/^0+(?=.)/, '')).join(':');
}

const PTR_FIX = (ip: string, hostname: string) =>
  `set the reverse DNS of ${ip} to ${hostname} (DigitalOcean sets it from the droplet's name: name the droplet ${hostname}, which \`pulumi up\` does; elsewhere ask your provider)`;

export async function checkPtr(resolver: DiagnosticResolver, hostname: string, addresses: readonly string[]): Promise<CheckResult[]> {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  return Promise.all(addresses.map(async (ip): Promise<CheckResult> => {
    const family = isIPv6(ip) ? 'ipv6' : 'ipv4';
    const id = `ptr.${family}`;
    const names = (await resolver.ptr(ip)).map((n) => n.toLowerCase().replace(/\.$/, ''));
    if (names.length === 0) {
      return family === 'ipv6'
        ? fail(id, `${ip} (outbound IPv6) has no PTR: Gmail and other large receivers refuse mail sent over IPv6 from it`, PTR_FIX(ip, host))
        : fail(id, `${ip} has no PTR: many receivers refuse or junk mail from it`, PTR_FIX(ip, host));
    }
    const confirmed: string[] = [];
    for (const name of names.slice(0, 5)) {
      const forward = family === 'ipv6' ? await resolver.aaaa(name) : await resolver.a(name);
      if (forward.some((f) => canonicalIp(f) === canonicalIp(ip))) confirmed.push(name);
    }
    if (confirmed.length === 0) {
      return fail(id, `PTR of ${ip} is ${names.join(', ')}, which does not resolve back to ${ip} (not forward-confirmed)`,
        names.includes(host) ? `publish ${family === 'ipv6' ? 'AAAA' : 'A'} ${host} ${ip}` : PTR_FIX(ip, host));
    }
    if (!confirmed.includes(host)) {
      return warn(id, `PTR of ${ip} is ${confirmed.join(', ')} (forward-confirmed) but not ${host}, the name the server greets with`, PTR_FIX(ip, host));
    }
    return ok(id, `PTR of ${ip} is ${host} and resolves back to it`);
  }));
}

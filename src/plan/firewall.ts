// Inbound firewall rules for the mail host (the Pulumi program maps them onto a DigitalOcean firewall).
import type { StackConfig } from './stack-config.ts';

export const ANYWHERE = ['0.0.0.0/0', '::/0'] as const;

export interface InboundRule { protocol: 'tcp' | 'udp' | 'icmp'; ports: string; sources: string[]; description: string }
export interface OutboundRule { protocol: 'tcp' | 'udp' | 'icmp'; ports: string; destinations: string[]; description: string }

export function inboundRules(stack: Pick<StackConfig, 'adminCidrs' | 'plaintextPorts'>): InboundRule[] {
  const open = (port: number, description: string): InboundRule => ({ protocol: 'tcp', ports: String(port), sources: [...ANYWHERE], description });
  const rules: InboundRule[] = [
    open(25, 'SMTP (MX)'),
    open(80, 'HTTP (ACME HTTP-01, redirect to HTTPS)'),
    open(443, 'HTTPS (webmail, MTA-STS, autoconfig)'),
    open(465, 'SMTP submission, implicit TLS'),
    open(587, 'SMTP submission, STARTTLS'),
    open(993, 'IMAP, implicit TLS'),
    open(995, 'POP3, implicit TLS'),
  ];
  if (stack.plaintextPorts) rules.push(open(143, 'IMAP, STARTTLS'), open(110, 'POP3, STARTTLS'));
  rules.push({ protocol: 'tcp', ports: '22', sources: [...stack.adminCidrs], description: 'SSH from admin networks' });
  // ICMP carries "fragmentation needed" (path MTU discovery) and ping for diagnostics.
  rules.push({ protocol: 'icmp', ports: '', sources: [...ANYWHERE], description: 'ICMP (path MTU discovery, ping)' });
  return rules.sort((a, b) => (Number(a.ports) || 0) - (Number(b.ports) || 0));
}

/** Outbound: everything (remote MX on 25, relay, DNS, ACME, OS updates). */
export function outboundRules(): OutboundRule[] {
  return [
    { protocol: 'tcp', ports: '1-65535', destinations: [...ANYWHERE], description: 'all TCP' },
    { protocol: 'udp', ports: '1-65535', destinations: [...ANYWHERE], description: 'all UDP (DNS, NTP)' },
    { protocol: 'icmp', ports: '', destinations: [...ANYWHERE], description: 'ICMP' },
  ];
}

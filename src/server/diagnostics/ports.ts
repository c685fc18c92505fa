// Reachability: the mail ports accept TCP connections from outside, and the host can reach other MTAs on port 25
// (DigitalOcean and many clouds block outbound 25 for new accounts; the fix is a relay).
import { connect } from 'node:net';
import { fail, ok, warn, type CheckResult } from './check.ts';
import { LAPTOP_25 } from './tls.ts';

export interface PortTarget {
  port: number;
  label: string;
}

export const MAIL_PORTS: readonly PortTarget[] = [
  { port: 25, label: 'SMTP MX' },
  { port: 465, label: 'submissions' },
  { port: 587, label: 'submission' },
  { port: 993, label: 'IMAPS' },
  { port: 995, label: 'POP3S' },
  { port: 443, label: 'HTTPS' },
  { port: 80, label: 'HTTP (ACME HTTP-01, redirects)' },
];

/** Opens a TCP connection; resolves with the first bytes the server sends (or '' if it waits for us). */
export function tcpProbe(host: string, port: number, timeoutMs: number, waitForBanner = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer within ${timeoutMs} ms`)); }, timeoutMs);
    const done = (err: Error | null, banner = '') => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(banner);
    };
    socket.once('connect', () => { if (!waitForBanner) done(null); });
    socket.once('data', (d: Buffer) => done(null, d.subarray(0, 512).toString('latin1')));
    socket.once('error', (e) => done(e));
  });
}

export async function checkInboundPorts(host: string, ports: readonly PortTarget[], options: { portFor?: (p: number) => number; timeoutMs?: number } = {}): Promise<CheckResult[]> {
  return Promise.all(ports.map(async (p): Promise<CheckResult> => {
    const id = `port.${p.port}`;
    try {
      await tcpProbe(host, options.portFor ? options.portFor(p.port) : p.port, options.timeoutMs ?? 5000);
      return ok(id, `${p.label} port ${p.port} on ${host} accepts connections`);
    } catch (err) {
      return fail(id, `${p.label} port ${p.port} on ${host} is not reachable: ${(err as Error).message}`,
        `check that Postern listens on ${p.port} (\`ss -ltnp\` on the host) and that the DigitalOcean firewall allows ${p.port} (it is in the planned firewall: run \`pulumi up\`)${p.port === 25 ? LAPTOP_25 : ''}`);
    }
  }));
}

export interface OutboundTarget {
  host: string;
  port: number;
}

/** Well-known MX hosts that always answer on 25; the first that answers proves outbound 25 works. */
export const DEFAULT_OUTBOUND_TARGETS: readonly OutboundTarget[] = [
  { host: 'gmail-smtp-in.l.google.com', port: 25 },
  { host: 'mx1.mail.icloud.com', port: 25 },
];

export async function checkOutbound25(targets: readonly OutboundTarget[], relayConfigured: boolean, timeoutMs = 8000): Promise<CheckResult> {
  const id = 'port.outbound-25';
  const errors: string[] = [];
  for (const t of targets) {
    try {
      const banner = await tcpProbe(t.host, t.port, timeoutMs, true);
      if (banner.startsWith('220')) return ok(id, `outbound port 25 works (${t.host} answered ${banner.trim().slice(0, 60)})`);
      errors.push(`${t.host}: unexpected greeting ${JSON.stringify(banner.slice(0, 60))}`);
    } catch (err) {
      errors.push(`${t.host}: ${(err as Error).message}`);
    }
  }
  const why = `outbound port 25 is blocked (${errors.join('; ')})`;
  if (relayConfigured) return warn(id, `${why}; mail goes out through the configured relay, so this is expected`, 'nothing to do while the relay works; to send directly, ask your provider to unblock port 25 and remove postern:relay');
  return fail(id, `${why}: the server cannot deliver mail to other domains`,
    'set a relay in the stack: `pulumi config set --path postern:relay.host smtp.your-relay.example` plus relay.username and `--secret` relay.password, then `pulumi up`; or ask DigitalOcean support to unblock port 25');
}

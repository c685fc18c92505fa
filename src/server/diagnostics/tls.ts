// TLS on every mail port: the certificate is valid for the host name, chains to a trusted root and has more than
// 14 days left (renewal runs at 30 days, so less means renewal is broken).
import { checkServerIdentity } from 'node:tls';
import { probeTls, type TlsMode } from './tls-probe.ts';
import { fail, ok, type CheckResult } from './check.ts';

export const MIN_DAYS_LEFT = 14;

/** Home and office networks often block outgoing port 25, which looks exactly like a dead MX from there. */
export const LAPTOP_25 = '; if you run the doctor from a home or office network, that network may block outgoing port 25: run `postern doctor --local` on the host to tell the two apart';

export interface TlsService {
  port: number;
  mode: TlsMode;
  /** What the port is for, in the message: "SMTP (MX)", "IMAPS", … */
  label: string;
}

/** The ports a Postern host serves with TLS. */
export const MAIL_TLS_SERVICES: readonly TlsService[] = [
  { port: 25, mode: 'smtp-starttls', label: 'SMTP MX (STARTTLS)' },
  { port: 587, mode: 'smtp-starttls', label: 'submission (STARTTLS)' },
  { port: 465, mode: 'implicit', label: 'submissions' },
  { port: 993, mode: 'implicit', label: 'IMAPS' },
  { port: 995, mode: 'implicit', label: 'POP3S' },
  { port: 443, mode: 'implicit', label: 'HTTPS' },
];

export interface TlsCheckTarget {
  /** Address to connect to. */
  host: string;
  hostname: string;
  services: readonly TlsService[];
  /** Port actually dialled for a service port (tests map 25 → an ephemeral port); identity by default. */
  portFor?: (port: number) => number;
  ca?: string | Buffer;
  now: Date;
  timeoutMs?: number;
}

const RENEW_FIX = 'renew the certificate: run `pulumi up` from your laptop (it re-issues certificates close to expiry), then look for renewal errors in the server log on the host (`journalctl -u postern`)';

export async function checkTls(t: TlsCheckTarget): Promise<CheckResult[]> {
  return Promise.all(t.services.map(async (svc): Promise<CheckResult> => {
    const id = `tls.${svc.port}`;
    const where = `${svc.label} on port ${svc.port}`;
    let r;
    try {
      r = await probeTls({ host: t.host, port: t.portFor ? t.portFor(svc.port) : svc.port, mode: svc.mode, servername: t.hostname,
        ...(t.ca ? { ca: t.ca } : {}), ...(t.timeoutMs ? { timeoutMs: t.timeoutMs } : {}) });
    } catch (err) {
      return fail(id, `${where}: no TLS session: ${(err as Error).message}`, `check that Postern listens on port ${svc.port} (\`postern doctor --local\`) and the firewall allows it${svc.port === 25 ? LAPTOP_25 : ''}`);
    }
    const notAfter = new Date(r.cert.valid_to);
    const daysLeft = Math.floor((notAfter.getTime() - t.now.getTime()) / 86_400_000);
    if (notAfter.getTime() <= t.now.getTime()) return fail(id, `${where}: certificate expired on ${notAfter.toISOString().slice(0, 10)}`, RENEW_FIX);
    if (new Date(r.cert.valid_from).getTime() > t.now.getTime()) return fail(id, `${where}: certificate is not valid before ${new Date(r.cert.valid_from).toISOString()}`, 'check the host clock (timedatectl) and re-issue the certificate');
    const nameErr = checkServerIdentity(t.hostname, r.cert);
    if (nameErr) {
      const names = r.cert.subjectaltname ?? `CN=${r.cert.subject?.CN ?? '?'}`;
      return fail(id, `${where}: certificate is not valid for ${t.hostname} (it covers ${names})`, `issue a certificate for ${t.hostname}: \`pulumi up\` requests it from the ACME CA`);
    }
    if (!r.authorized) {
      return fail(id, `${where}: certificate does not chain to a trusted root (${r.authorizationError ?? 'unverified'})`,
        r.authorizationError === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ? 'serve the full chain (certificate plus intermediates) in the certificate file' : 'use a certificate from a public CA (Let\'s Encrypt through `pulumi up`), not a self-signed or staging one');
    }
    if (daysLeft <= MIN_DAYS_LEFT) return fail(id, `${where}: certificate expires in ${daysLeft} days (${notAfter.toISOString().slice(0, 10)}): renewal should have happened at 30 days`, RENEW_FIX);
    return ok(id, `${where}: certificate for ${t.hostname} valid, trusted, ${daysLeft} days left${r.protocol ? `, ${r.protocol}` : ''}`);
  }));
}

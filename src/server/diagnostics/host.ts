// The host itself (run with --local, and by monitoring): services listening, the outbound queue, disk, memory
// and the certificate file on disk. Every source is injectable; the defaults read the real machine.
import { statfs, readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { fail, ok, warn, type CheckResult } from './check.ts';
import { tcpProbe, type PortTarget } from './ports.ts';
import { MIN_DAYS_LEFT } from './tls.ts';
import { checkAcmeRenewal } from './acme-renewal.ts';

export interface QueueStats {
  /** Messages in the spool with recipients still to deliver. */
  size: number;
  /** When the oldest of them was received (ms since epoch); null when the queue is empty. */
  oldestReceivedAt: number | null;
}

export interface MemoryInfo {
  totalBytes: number;
  availableBytes: number;
}

/** MemAvailable from /proc/meminfo: what new work can use without swapping (free counts cache as used). */
export async function procMemInfo(): Promise<MemoryInfo> {
  const text = await readFile('/proc/meminfo', 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { totalBytes: kb('MemTotal'), availableBytes: kb('MemAvailable') };
}

export interface HostCheckInput {
  /** Ports the server should listen on, probed on `listenHost`. */
  listening: readonly PortTarget[];
  listenHost: string;
  portFor?: (port: number) => number;
  queueStats?: () => Promise<QueueStats>;
  stateDir: string;
  certFile?: string;
  hostname: string;
  memInfo?: () => Promise<MemoryInfo>;
  /** Checks the renewal job's record in stateDir; `enabled` is acme.enabled from the server config. */
  acmeRenewal?: { enabled: boolean };
  now: Date;
}

const HOUR = 3_600_000;

export async function checkHost(input: HostCheckInput): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const listening = await Promise.all(input.listening.map(async (p): Promise<CheckResult> => {
    const id = `server.listen.${p.port}`;
    try {
      await tcpProbe(input.listenHost, input.portFor ? input.portFor(p.port) : p.port, 3000);
      return ok(id, `${p.label} is listening on port ${p.port}`);
    } catch (err) {
      return fail(id, `${p.label} is not listening on port ${p.port} (${(err as Error).message})`, 'restart the server: `systemctl restart postern`, then read why it stopped: `journalctl -u postern -n 100`');
    }
  }));
  results.push(...listening);

  if (input.queueStats) {
    const q = await input.queueStats();
    const ageH = q.oldestReceivedAt === null ? 0 : (input.now.getTime() - q.oldestReceivedAt) / HOUR;
    const desc = q.size === 0 ? 'the outbound queue is empty' : `${q.size} message(s) queued, the oldest for ${ageH.toFixed(1)} hours`;
    if (ageH > 48) results.push(fail('server.queue', `${desc}: remote hosts keep refusing or are unreachable`, 'see why with `postern queue` and `postern trace <address>`; if outbound port 25 is blocked, set a relay'));
    else if (ageH > 4 || q.size > 1000) results.push(warn('server.queue', `${desc}`, 'see the last remote replies with `postern queue`'));
    else results.push(ok('server.queue', desc));
  }

  try {
    const s = await statfs(input.stateDir);
    const freeFrac = s.bavail / s.blocks;
    const freeGiB = (s.bavail * s.bsize) / 2 ** 30;
    const desc = `${freeGiB.toFixed(1)} GiB (${Math.round(freeFrac * 100)}%) free on the disk holding ${input.stateDir}`;
    if (freeFrac < 0.05) results.push(fail('server.disk', `${desc}: mail will be refused with 452 soon`, 'free space (old logs: `journalctl --vacuum-size=200M`) or resize the droplet\'s disk'));
    else if (freeFrac < 0.15) results.push(warn('server.disk', desc, 'free space or resize the droplet\'s disk before it fills'));
    else results.push(ok('server.disk', desc));
  } catch (err) {
    results.push(fail('server.disk', `cannot read free space of ${input.stateDir}: ${(err as Error).message}`, 'check that the state folder exists and is readable'));
  }

  const m = await (input.memInfo ?? procMemInfo)();
  if (Number.isFinite(m.availableBytes) && m.totalBytes > 0) {
    const frac = m.availableBytes / m.totalBytes;
    const desc = `${Math.round(m.availableBytes / 2 ** 20)} MiB of ${Math.round(m.totalBytes / 2 ** 20)} MiB memory available`;
    if (frac < 0.05) results.push(fail('server.memory', desc, 'resize the droplet (postern:size, e.g. s-1vcpu-2gb) and `pulumi up`'));
    else if (frac < 0.15) results.push(warn('server.memory', desc, 'watch it; resize the droplet (postern:size) if it stays low'));
    else results.push(ok('server.memory', desc));
  }

  if (input.certFile) results.push(await checkCertificateFile(input.certFile, input.hostname, input.now));
  if (input.acmeRenewal) results.push(await checkAcmeRenewal({ enabled: input.acmeRenewal.enabled, stateDir: input.stateDir, now: input.now }));
  return results;
}

/** The certificate file the listeners serve: covers the host name and has more than MIN_DAYS_LEFT days left. */
export async function checkCertificateFile(certFile: string, hostname: string, now: Date): Promise<CheckResult> {
  const id = 'server.certificate';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(await readFile(certFile));
  } catch (err) {
    return fail(id, `cannot read certificate ${certFile}: ${(err as Error).message}`, 'redeploy with `pulumi up`');
  }
  const notAfter = new Date(cert.validTo);
  const days = Math.floor((notAfter.getTime() - now.getTime()) / 86_400_000);
  if (cert.checkHost(hostname) === undefined) return fail(id, `${certFile} is not valid for ${hostname} (${cert.subjectAltName ?? cert.subject})`, `re-issue the certificate for ${hostname} with \`pulumi up\``);
  if (days < 0) return fail(id, `${certFile} expired on ${notAfter.toISOString().slice(0, 10)}: renewal is not working`, 'run `pulumi up` to re-issue it, and read the renewal errors in `journalctl -u postern`');
  if (days <= MIN_DAYS_LEFT) return fail(id, `${certFile} expires in ${days} days: renewal (due at 30 days) is not working`, 'read the renewal errors in `journalctl -u postern`; `pulumi up` re-issues it');
  return ok(id, `certificate for ${hostname} has ${days} days left`);
}

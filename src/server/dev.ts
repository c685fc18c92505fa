// `postern serve --dev`: a complete server config for domain example.test on high loopback ports, with a
// state folder kept between runs. The certificate and the seeded user's password are generated on the first
// run and reused after, so a mail client set up once keeps working.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join, resolve } from 'node:path';
import { parseServerConfig } from '../plan/server-config.ts';
import type { ServerConfig, ServerConfigInput } from '../plan/server-config.ts';
import { hashPassword } from './store/password.ts';
import { createSelfSignedCertificate } from './self-signed.ts';

export const DEV_DOMAIN = 'example.test';
export const DEV_HOSTNAME = `mail.${DEV_DOMAIN}`;
export const DEV_USER = `postmaster@${DEV_DOMAIN}`;
export const DEFAULT_DEV_STATE_DIR = '.state/dev';
export const DEV_PORTS = {
  smtp: 10025, submission: 10587, submissions: 10465, imap: 10143, imaps: 10993,
  pop3: 10110, pop3s: 10995, https: 10443, http: 10080,
} as const;

const CERT_NAMES = [DEV_HOSTNAME, `mta-sts.${DEV_DOMAIN}`, `autoconfig.${DEV_DOMAIN}`, `autodiscover.${DEV_DOMAIN}`,
  DEV_DOMAIN, 'localhost', '127.0.0.1', '::1'];
const CERT_DAYS = 825;
/** Make a new certificate when the stored one has less than this left. */
const RENEW_BEFORE_MS = 14 * 86_400_000;

export interface DevSetup {
  config: ServerConfig;
  user: { address: string; password: string };
  certFile: string;
  /** Lines printed after the listener URLs. */
  banner: string[];
}

function writePrivate(file: string, data: string): void {
  writeFileSync(file, data, { mode: 0o600 });
  chmodSync(file, 0o600);
}

async function ensureCertificate(dir: string): Promise<{ certFile: string; keyFile: string }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) {
    const cert = new X509Certificate(readFileSync(certFile));
    if (new Date(cert.validTo).getTime() - Date.now() > RENEW_BEFORE_MS) return { certFile, keyFile };
  }
  const pair = await createSelfSignedCertificate({ names: CERT_NAMES, days: CERT_DAYS });
  writePrivate(keyFile, pair.key);
  writeFileSync(certFile, pair.cert);
  return { certFile, keyFile };
}

function ensurePassword(file: string): string {
  if (existsSync(file)) {
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { address?: unknown; password?: unknown };
    if (stored.address === DEV_USER && typeof stored.password === 'string' && stored.password.length >= 16) return stored.password;
  }
  const password = randomBytes(18).toString('base64url');
  writePrivate(file, JSON.stringify({ address: DEV_USER, password }, null, 2) + '\n');
  return password;
}

/** The MTA-STS policy (RFC 8461 §3.2) for the dev host: testing mode, so nothing is enforced. */
function devMtaStsPolicy(maxAge: number): string {
  return `version: STSv1\r\nmode: testing\r\nmx: ${DEV_HOSTNAME}\r\nmax_age: ${maxAge}\r\n`;
}

export async function prepareDevServer(stateDirOption: string = DEFAULT_DEV_STATE_DIR): Promise<DevSetup> {
  const stateDir = resolve(stateDirOption);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const tls = await ensureCertificate(join(stateDir, 'tls'));
  const password = ensurePassword(join(stateDir, 'dev-user.json'));
  const maxAgeSeconds = 86_400;
  const input: ServerConfigInput = {
    domain: DEV_DOMAIN,
    hostname: DEV_HOSTNAME,
    stateDir,
    listenAddress: '127.0.0.1',
    ports: { ...DEV_PORTS },
    tls,
    users: [{ address: DEV_USER, name: 'Postmaster', passwordHash: hashPassword(password) }],
    mtaSts: { mode: 'testing', maxAgeSeconds, policy: devMtaStsPolicy(maxAgeSeconds) },
    log: { level: 'info', pretty: true },
    dev: true,
  };
  const parsed = parseServerConfig(input);
  if (!parsed.ok) throw new Error(`dev config is invalid (a bug): ${parsed.errors.join('; ')}`);
  return {
    config: parsed.value,
    user: { address: DEV_USER, password },
    certFile: tls.certFile,
    banner: [
      `  user       ${DEV_USER}`,
      `  password   ${password}`,
      `  cert       ${tls.certFile} (self-signed; trust it, e.g. curl --cacert ${tls.certFile})`,
    ],
  };
}

// `postern serve --dev`: a complete server config for domain example.test on high loopback ports, with a
// state folder kept between runs. The certificate and the seeded user's password are generated on the first
// run and reused after, so a mail client set up once keeps working.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join, resolve } from 'node:path';
import { parseServerConfig } from '../plan/server-config.ts';
import type { ServerConfig } from '../plan/server-config.ts';
import { renderServerConfig } from '../plan/server-render.ts';
import { parseStackConfig } from '../plan/stack-config.ts';
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
    let stored: { address?: unknown; password?: unknown };
    try {
      stored = JSON.parse(readFileSync(file, 'utf8')) as typeof stored;
    } catch (err) {
      throw new Error(`${file} is not valid JSON (${(err as Error).message}); delete it to make a new password`);
    }
    if (stored.address === DEV_USER && typeof stored.password === 'string' && stored.password.length >= 16) return stored.password;
  }
  const password = randomBytes(18).toString('base64url');
  writePrivate(file, JSON.stringify({ address: DEV_USER, password }, null, 2) + '\n');
  return password;
}

/**
 * The dev domain as a stack, so its documents (MTA-STS policy, autoconfig, autodiscover, profile) are rendered by
 * plan/ exactly as a real domain's are. The SSH key and admin CIDR are required by the schema but unused locally.
 */
function devStack(passwordHash: string) {
  const r = parseStackConfig({
    domain: DEV_DOMAIN, region: 'fra1', adminCidrs: ['127.0.0.1/32'], plaintextPorts: true,
    sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPosternDevServerHasNoSshAccessAtAll0000000 postern-dev',
    users: [{ address: DEV_USER, name: 'Postmaster', passwordHash }],
    mtaSts: { mode: 'testing', maxAge: 86_400 },
  });
  if (!r.ok) throw new Error(`dev stack is invalid (a bug): ${r.errors.join('; ')}`);
  return r.value;
}

export async function prepareDevServer(stateDirOption: string = DEFAULT_DEV_STATE_DIR): Promise<DevSetup> {
  const stateDir = resolve(stateDirOption);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const tls = await ensureCertificate(join(stateDir, 'tls'));
  const password = ensurePassword(join(stateDir, 'dev-user.json'));
  const input = renderServerConfig(devStack(hashPassword(password)), {
    stateDir, certFile: tls.certFile, keyFile: tls.keyFile, dkimKeyFiles: [],
    ports: { ...DEV_PORTS }, listenAddress: '127.0.0.1', dev: true,
  });
  input.log = { level: 'info', pretty: true };
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

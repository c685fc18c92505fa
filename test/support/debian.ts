// Debian packages the tests use. A test that needs a peer calls ensureDebianPackages(): it installs what is
// missing when running as root and fails with a clear message otherwise — it never skips silently.
import { execFileSync, spawnSync } from 'node:child_process';

/** Every Debian package any test uses, installed in one apt run by scripts/test.ts. */
export const TEST_DEBIAN_PACKAGES = [
  'swaks', 'postfix', 'knot', 'knot-dnsutils', 'bind9-utils', 'pebble', 'openssh-server', 'openssh-client',
  'isync', 'fetchmail', 'dovecot-imapd', 'dovecot-pop3d', 'opendkim-tools', 'unbound',
  'iproute2', 'openssl', 'python3', 'curl', 'libnet-ssleay-perl', 'cloud-init', 'systemd', 'tcpdump',
] as const;

function installed(pkg: string): boolean {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

let updated = false;

export function ensureDebianPackages(pkgs: readonly string[]): void {
  const missing = pkgs.filter((p) => !installed(p));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing Debian packages: ${missing.join(' ')} — install them (apt-get install ${missing.join(' ')}) or run the tests as root`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Postfix asks debconf which configuration to write; the tests bring their own.
  execFileSync('debconf-set-selections', { input: 'postfix postfix/main_mailer_type select No configuration\npostfix postfix/mailname string localhost\n', env });
  if (!updated) {
    execFileSync('apt-get', ['update', '-q'], { stdio: 'ignore', env });
    updated = true;
  }
  const r = spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`apt-get install ${missing.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  const still = missing.filter((p) => !installed(p));
  if (still.length) throw new Error(`Debian packages still missing after install: ${still.join(' ')}`);
}

// Renders the host's own files from templates/: the systemd unit (shipped in every release) and the
// cloud-init user_data (given once, when the droplet is created). Values are checked before they land in a
// file a shell, systemd or YAML will read.
import { readFileSync } from 'node:fs';
import { renderTemplate } from '../plan/template.ts';

const TEMPLATES = new URL('../../templates/', import.meta.url);
const SAFE_PATH = /^\/[A-Za-z0-9._@+\/-]+$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;

function path(what: string, value: string): string {
  if (!SAFE_PATH.test(value) || value.split('/').includes('..')) throw new Error(`${what}: found ${JSON.stringify(value)}; expected an absolute path of letters, digits and . _ @ + - /`);
  return value.replace(/\/+$/, '');
}

function user(value: string): string {
  if (!USER.test(value)) throw new Error(`service user: found ${JSON.stringify(value)}; expected a lower-case user name`);
  return value;
}

export interface UnitValues { root: string; stateDir: string; user: string }

export function renderUnit(v: UnitValues): string {
  const template = readFileSync(new URL('postern.service', TEMPLATES), 'utf8');
  return renderTemplate(template, { root: path('root', v.root), stateDir: path('stateDir', v.stateDir), user: user(v.user) }, 'text');
}

export interface CloudInitValues extends UnitValues {
  hostPrivateKey: string;
  hostPublicKey: string;
  /** DigitalOcean volume name; names the device under /dev/disk/by-id. */
  volumeName: string;
}

export function renderCloudInit(v: CloudInitValues): string {
  const template = readFileSync(new URL('cloud-init.yaml', TEMPLATES), 'utf8');
  if (!/^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END OPENSSH PRIVATE KEY-----\n?$/.test(v.hostPrivateKey)) {
    throw new Error('host private key: expected an OpenSSH private key');
  }
  if (!/^ssh-ed25519 [A-Za-z0-9+/]+={0,2}( [\x21-\x7e]+)?$/.test(v.hostPublicKey.trim())) throw new Error('host public key: expected one ssh-ed25519 key line');
  if (!/^[a-z0-9-]{1,64}$/.test(v.volumeName)) throw new Error(`volume name: found ${JSON.stringify(v.volumeName)}; expected lower-case letters, digits and -`);
  return renderTemplate(template, {
    // A YAML block scalar under `ed25519_private: |`: every line indented by four spaces.
    hostPrivateKey: v.hostPrivateKey.trim().split('\n').map((l) => `    ${l}`).join('\n'),
    hostPublicKey: v.hostPublicKey.trim(),
    user: user(v.user), stateDir: path('stateDir', v.stateDir), root: path('root', v.root), volumeName: v.volumeName,
  }, 'text');
}

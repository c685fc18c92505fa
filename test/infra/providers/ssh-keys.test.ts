// The droplet's host key and the deploy key must load in OpenSSH (sshd reads the host key) and in ssh2 (node-ssh
// logs in with the deploy key), every time: a key sshd refuses leaves a droplet nobody can deploy to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { sshKeyPairProvider } from '../../../src/infra/providers/ssh-keys.ts';
import { ensureDebianPackages } from '../../support/debian.ts';

test('300 generated key pairs all load in ssh-keygen and ssh2, with matching public keys and fingerprints', async () => {
  ensureDebianPackages(['openssh-client']);
  const dir = mkdtempSync(join(tmpdir(), 'postern-sshkeys-'));
  try {
    const file = join(dir, 'key');
    for (let i = 0; i < 300; i++) {
      const outs = (await sshKeyPairProvider.create({ comment: `host-${i}@mail.example.com` })).outs!;
      writeFileSync(file, outs.privateKey, { mode: 0o600 });
      // ssh-keygen -y derives the public key from the private file: fails on a file OpenSSH cannot read.
      const derived = execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }).trim();
      assert.equal(derived.split(' ').slice(0, 2).join(' '), outs.publicKey.split(' ').slice(0, 2).join(' '));
      const lf = execFileSync('ssh-keygen', ['-l', '-f', file], { encoding: 'utf8' });
      assert.equal(lf.split(' ')[1], outs.fingerprint);
      const parsed = ssh2.utils.parseKey(outs.privateKey);
      assert.ok(!(parsed instanceof Error), `ssh2 refused key ${i}: ${String(parsed)}`);
      const key = Array.isArray(parsed) ? parsed[0]! : parsed;
      assert.equal(key.type, 'ssh-ed25519');
      assert.equal(key.comment, `host-${i}@mail.example.com`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

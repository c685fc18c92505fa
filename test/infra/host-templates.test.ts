// The host's own files, checked by the tools that will read them: the cloud-init user_data by cloud-init's
// schema validator, the systemd unit by systemd-analyze (syntax and its security exposure score).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { renderCloudInit, renderUnit } from '../../src/infra/host-templates.ts';
import { sshKeyPairProvider } from '../../src/infra/providers/ssh-keys.ts';
import { ensureDebianPackages } from '../support/debian.ts';

let work: string;
before(async () => {
  ensureDebianPackages(['cloud-init', 'systemd']);
  work = await mkdtemp(join(tmpdir(), 'postern-templates-'));
});
after(async () => { await rm(work, { recursive: true, force: true }); });

test('user_data is valid cloud-config that installs the generated host key and mounts the mail volume', async () => {
  const key = (await sshKeyPairProvider.create({ comment: 'postern-host@mail.example.com' })).outs!;
  const text = renderCloudInit({
    root: '/opt/postern', stateDir: '/var/lib/postern', user: 'postern',
    hostPrivateKey: key.privateKey, hostPublicKey: key.publicKey, volumeName: 'mail-example-com-mail',
  });
  const file = join(work, 'user-data.yaml');
  await writeFile(file, text);
  const r = spawnSync('cloud-init', ['schema', '--config-file', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /Valid cloud-config/);
  const doc = parseYaml(text) as { ssh_keys: Record<string, string>; ssh_pwauth: boolean; mounts: string[][]; users: unknown[] };
  assert.equal(doc.ssh_keys.ed25519_private, key.privateKey);
  assert.equal(doc.ssh_keys.ed25519_public, key.publicKey);
  assert.equal(doc.ssh_pwauth, false);
  assert.deepEqual(doc.mounts[0]?.slice(0, 3), ['/dev/disk/by-id/scsi-0DO_Volume_mail-example-com-mail', '/var/lib/postern', 'ext4']);
  // The validator itself must reject a broken document, or the check above proves nothing.
  await writeFile(file, text.replace('ssh_keys:', 'ssh_keys: 5\nunused:'));
  assert.notEqual(spawnSync('cloud-init', ['schema', '--config-file', file], { encoding: 'utf8' }).status, 0);
});

test('the unit passes systemd-analyze verify and its security exposure stays low', async () => {
  // verify checks that ExecStart's binary exists: give it a root with current/node.
  const root = join(work, 'opt/postern');
  await mkdir(join(root, 'current'), { recursive: true });
  await symlink(resolve('node_modules/node/bin/node'), join(root, 'current/node'));
  const unit = join(work, 'postern.service');
  await writeFile(unit, renderUnit({ root, stateDir: join(work, 'state'), user: 'postern' }));
  const verify = spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8' });
  assert.equal(verify.status, 0, verify.stderr);
  assert.equal(verify.stderr.trim(), '', 'no warnings (unknown keys, bad values)');
  const security = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', unit], { encoding: 'utf8' });
  const score = /Overall exposure level for postern\.service: ([\d.]+)/.exec(security.stdout);
  assert.ok(score, security.stdout + security.stderr);
  assert.ok(Number(score[1]) <= 2.5, `exposure ${score[1]} (0 = locked down, 10 = unprotected)`);
  for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', `ReadWritePaths=${join(work, 'state')}`, 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE', 'User=postern']) {
    assert.ok(spawnSync('grep', ['-qx', line, unit]).status === 0, `unit has ${line}`);
  }
});

test('values that would break out of the files are refused', () => {
  assert.throws(() => renderUnit({ root: '/opt/../etc', stateDir: '/var/lib/postern', user: 'postern' }), /root: found "\/opt\/..\/etc"/);
  assert.throws(() => renderUnit({ root: '/opt/postern', stateDir: '/var/lib/postern\nExecStartPre=/bin/sh', user: 'postern' }), /stateDir/);
  assert.throws(() => renderUnit({ root: '/opt/postern', stateDir: '/var/lib/postern', user: 'root\nUser=root' }), /service user/);
  assert.throws(() => renderCloudInit({ root: '/opt/postern', stateDir: '/var/lib/postern', user: 'postern', hostPrivateKey: 'x', hostPublicKey: 'ssh-ed25519 AAAA', volumeName: 'v' }), /OpenSSH private key/);
});

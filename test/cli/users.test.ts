// `postern users hash-password` as a user runs it: password on standard input, hash on standard output, and the
// hash both verifies and is accepted as a user's passwordHash by the stack config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { POSTERN_BIN, REPO_ROOT } from '../support/postern-process.ts';
import { verifyPasswordHash } from '../../src/server/store/password.ts';
import { parseStackConfig } from '../../src/plan/stack-config.ts';

function hashPassword(input: string, ...args: string[]) {
  return spawnSync(process.execPath, [POSTERN_BIN, 'users', 'hash-password', ...args], { cwd: REPO_ROOT, input, encoding: 'utf8' });
}

test('hash-password prints an argon2id hash that verifies and that the stack config accepts', async () => {
  const r = hashPassword('correct horse battery staple\n');
  assert.equal(r.status, 0, r.stderr);
  const phc = r.stdout.trim();
  assert.match(phc, /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$/);
  assert.equal(await verifyPasswordHash(phc, 'correct horse battery staple'), true);
  assert.equal(await verifyPasswordHash(phc, 'correct horse battery stapler'), false);
  const second = hashPassword('correct horse battery staple\n').stdout.trim();
  assert.notEqual(second, phc, 'each hash has its own salt');
  const parsed = parseStackConfig({
    domain: 'example.com', adminCidrs: ['203.0.113.7/32'], region: 'fra1',
    sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4BG3e7eRd5fUpjQd75+0ge/aYVk5zz8kkt47geJtmy admin@example.com',
    users: [{ address: 'alice@example.com', passwordHash: phc }],
  });
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.errors.join('\n'));
});

test('hash-password refuses short, empty and padded passwords with a clear message and exit 2', () => {
  const short = hashPassword('short\n');
  assert.equal(short.status, 2);
  assert.equal(short.stderr, 'postern: the password has 5 characters; use at least 12 (or --allow-short)\n');
  assert.equal(short.stdout, '');
  assert.equal(hashPassword('short\n', '--allow-short').status, 0);
  const empty = hashPassword('');
  assert.equal(empty.status, 2);
  assert.equal(empty.stderr, 'postern: no password on standard input\n');
  const padded = hashPassword(' correct horse battery staple\n');
  assert.equal(padded.status, 2);
  assert.match(padded.stderr, /white space/);
});

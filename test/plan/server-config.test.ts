// The server config's errors read like the stack config's: path, value found, what was expected; unknown keys
// named by their own path with a "did you mean".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPath, parseServerConfig } from '../../src/plan/server-config.ts';

test('server config errors name the path, the value and what was expected', () => {
  const r = parseServerConfig({
    domain: '', hostname: 'mail.example.test', stateDir: '/s', tls: { certFile: 'a', keyFile: 'b' },
    ports: { smtp: '25', smpt: 1 }, users: [{ address: 'a@example.test', passwordHash: 'x' }], dmarc: { policy: 'rejct' },
    log: { levle: 'x' }, limits: { maxRecipients: 0 },
  });
  assert.deepEqual(r, {
    ok: false,
    errors: [
      'domain: found ""; expected string to have >=1 characters',
      'ports.smtp: found "25"; expected number',
      'ports.smpt: unknown key (did you mean "smtp"?)',
      'users[0].passwordHash: found "x"; expected a string starting with "$argon2id$"',
      'dmarc.policy: found "rejct"; expected one of "none", "quarantine", "reject" (did you mean "reject"?)',
      'limits.maxRecipients: found 0; expected number to be >=1',
      'log.levle: unknown key (did you mean "level"?)',
    ],
  });
});

test('key paths are written the way a user writes them', () => {
  assert.equal(formatPath(['users', 1, 'address'], 'postern:'), 'postern:users[1].address');
  assert.equal(formatPath(['aliases', '@example.com', 0], 'postern:'), 'postern:aliases["@example.com"][0]');
  assert.equal(formatPath([], 'postern:'), 'postern');
  assert.equal(formatPath([]), '(root)');
});

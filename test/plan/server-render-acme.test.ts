// The host's certificate renewal settings come from the stack: same CA and names as the certificate infra/ issues.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseStackFile, LETS_ENCRYPT_DIRECTORIES } from '../../src/plan/stack-config.ts';
import { renderServerConfig } from '../../src/plan/server-render.ts';
import { parseServerConfig } from '../../src/plan/server-config.ts';
import { certificateNames } from '../../src/plan/dns-plan.ts';

const stackText = readFileSync(join(import.meta.dirname, '..', '..', 'stacks', 'Pulumi.example.yaml'), 'utf8');
const facts = { stateDir: '/var/lib/postern', certFile: '/etc/postern/cert.pem', keyFile: '/etc/postern/key.pem', dkimKeyFiles: [] };

test('the rendered acme section renews the stack\'s certificate names from the stack\'s CA', () => {
  const stack = parseStackFile(stackText);
  assert.ok(stack.ok, stack.ok ? '' : stack.errors.join('\n'));
  const r = parseServerConfig(renderServerConfig(stack.value, facts));
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  assert.deepEqual(r.value.acme, {
    enabled: true, directoryUrl: stack.value.acme.directoryUrl, email: stack.value.acme.email,
    names: certificateNames(stack.value), renewBeforeDays: 30,
  });
  assert.ok(Object.values<string>(LETS_ENCRYPT_DIRECTORIES).includes(r.value.acme!.directoryUrl));
  const dev = parseServerConfig(renderServerConfig(stack.value, { ...facts, dev: true }));
  assert.ok(dev.ok);
  assert.equal(dev.value.acme?.enabled, false, 'a dev server has a self-signed certificate and nothing to renew');
});

test('a bad acme section is refused naming the key', () => {
  const base = { domain: 'example.com', hostname: 'mail.example.com', stateDir: '/s', tls: { certFile: 'c', keyFile: 'k' } };
  const r = parseServerConfig({ ...base, acme: { directoryUrl: 'http://ca.example/dir', email: 'a@example.com', names: ['Mail.Example.com'], renewBeforeDays: 0 } });
  assert.equal(r.ok, false);
  const errors = r.ok ? [] : r.errors;
  assert.ok(errors.some((e) => e.startsWith('acme.directoryUrl: ') && e.includes('https://')), errors.join('\n'));
  assert.ok(errors.some((e) => e.startsWith('acme.names[0]: ') && e.includes('A-label')), errors.join('\n'));
  assert.ok(errors.some((e) => e.startsWith('acme.renewBeforeDays: ')), errors.join('\n'));
});

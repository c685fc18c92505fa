// The server config rendered from a stack validates against the server's own schema and carries what the
// runtime serves (MTA-STS policy, client configuration) and delivers to (users, aliases with role addresses).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseStackFile, type StackConfig } from '../../src/plan/stack-config.ts';
import { renderServerConfig, type ServerFacts } from '../../src/plan/server-render.ts';
import { parseServerConfig } from '../../src/plan/server-config.ts';
import { renderMtaStsPolicy } from '../../src/plan/client-config.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function example(): StackConfig {
  const r = parseStackFile(readFileSync(join(ROOT, 'stacks', 'Pulumi.example.yaml'), 'utf8'));
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  return r.value;
}

const facts: ServerFacts = {
  stateDir: '/var/lib/postern', certFile: '/etc/postern/tls/cert.pem', keyFile: '/etc/postern/tls/key.pem',
  dkimKeyFiles: [
    { selector: 'postern-rsa', algorithm: 'rsa-sha256', privateKeyFile: '/etc/postern/dkim/postern-rsa.pem' },
    { selector: 'postern-ed25519', algorithm: 'ed25519-sha256', privateKeyFile: '/etc/postern/dkim/postern-ed25519.pem' },
  ],
};

test('the example stack renders a server config the server accepts', () => {
  const s = example();
  const r = parseServerConfig(renderServerConfig(s, facts));
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  const c = r.value;
  assert.equal(c.domain, 'example.com');
  assert.equal(c.hostname, 'mail.example.com');
  assert.deepEqual(c.ports, { smtp: 25, submission: 587, submissions: 465, imap: 0, imaps: 993, pop3: 0, pop3s: 995, https: 443, http: 80 });
  assert.deepEqual(c.users, [{ address: 'alice@example.com', name: 'Alice Example', passwordHash: s.users[0]!.passwordHash, quotaBytes: 2_000_000_000 }]);
  assert.deepEqual(c.aliases, [
    { from: 'hello@example.com', to: ['alice@example.com'] },
    { from: 'team@example.com', to: ['alice@example.com', 'alice.backup@example.net'] },
    { from: 'postmaster@example.com', to: ['alice@example.com'] },
    { from: 'abuse@example.com', to: ['alice@example.com'] },
  ]);
  assert.equal(c.mtaSts.policy, renderMtaStsPolicy(s));
  assert.equal(c.dkim.length, 2);
  assert.match(c.clientConfig.autoconfigXml, /<hostname>mail\.example\.com<\/hostname>/);
  assert.match(c.clientConfig.autodiscoverXml, /<Server>mail\.example\.com<\/Server>/);
  assert.match(c.clientConfig.mobileconfig, /com\.apple\.mail\.managed/);
  assert.equal(c.limits.maxMessageBytes, 50 * 1024 * 1024);
  assert.deepEqual(c.dmarc, { policy: 'quarantine', reportAddress: 'postmaster@example.com', inboundRejectAction: 'reject' });
  assert.equal(c.log.level, 'info');
});

test('a stack\'s own postmaster alias wins; plaintext ports open 143 and 110; dev ports reach the client config', () => {
  const s = { ...example(), plaintextPorts: true, aliases: [{ from: 'postmaster@example.com', to: ['ops@example.org'] }] };
  const c = renderServerConfig(s, facts);
  assert.deepEqual(c.aliases, [{ from: 'postmaster@example.com', to: ['ops@example.org'] }, { from: 'abuse@example.com', to: ['alice@example.com'] }]);
  assert.deepEqual(c.ports, {});
  const dev = renderServerConfig(s, { ...facts, dev: true, listenAddress: '127.0.0.1', ports: { imaps: 10993, submissions: 10465, pop3s: 10995 } });
  assert.match(dev.clientConfig!.autoconfigXml!, /<port>10993<\/port>/);
  assert.equal(dev.listenAddress, '127.0.0.1');
  assert.equal(dev.dev, true);
});

test('a relay password must come as a file', () => {
  const s: StackConfig = { ...example(), relay: { host: 'smtp.relay.example', port: 587, username: 'u', password: { secure: 'v1:x' } } };
  assert.throws(() => renderServerConfig(s, facts), { message: 'renderServerConfig: the stack has a relay password but no relayPasswordFile was given' });
  const c = renderServerConfig(s, { ...facts, relayPasswordFile: '/etc/postern/relay-password' });
  assert.deepEqual(c.relay, { host: 'smtp.relay.example', port: 587, username: 'u', passwordFile: '/etc/postern/relay-password' });
  assert.ok(parseServerConfig(c).ok);
});

// `postern doctor --local` on a host running a real Postern (startServer with every default service): TLS on each
// mail port (STARTTLS on 25/587, implicit on 465/993/995/443), listeners, queue and the certificate file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { stringify } from 'yaml';
import { pino } from 'pino';
import { ensureDebianPackages } from '../support/debian.ts';
import { freePort } from '../support/ports.ts';
import { runPosternCli } from '../support/postern-cli.ts';
import { makeTestCa } from '../server/diagnostics/test-pki.ts';
import { loadServerConfigFile, startServer, type RunningServer } from '../../src/server/main.ts';

ensureDebianPackages(['openssl']);

const HASH = '$argon2id$v=19$m=65536,t=3,p=4$mvibF0f8r3Oi6Ya+maJY+g$Xw93yVX4V6lqABw/klOXpMuqPUzzpnQxlkWCz2247lY';
let dir: string;
let server: RunningServer | undefined;
let configFile: string;
let caFile: string;
const ports: Record<string, number> = {};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-doctor-local-'));
  const ca = await makeTestCa(join(dir, 'ca'));
  caFile = join(dir, 'ca', 'ca.crt');
  const cert = await ca.issue('mail', ['mail.example.test', 'mta-sts.example.test'], new Date(Date.now() - 86_400_000), new Date(Date.now() + 60 * 86_400_000));
  const dkimFile = join(dir, 'dkim-ed25519.pem');
  await writeFile(dkimFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  for (const name of ['smtp', 'submission', 'submissions', 'imaps', 'pop3s', 'https']) ports[name] = await freePort();
  configFile = join(dir, 'server.yaml');
  await writeFile(configFile, stringify({
    domain: 'example.test', hostname: 'mail.example.test', stateDir: join(dir, 'state'), listenAddress: '127.0.0.1',
    ports: { ...ports, imap: 0, pop3: 0, http: 0 },
    tls: { certFile: cert.certFile, keyFile: cert.keyFile },
    users: [{ address: 'alice@example.test', passwordHash: HASH }],
    dkim: [{ selector: 'postern-ed25519', algorithm: 'ed25519-sha256', privateKeyFile: dkimFile }],
  }));
  const loaded = loadServerConfigFile(configFile);
  assert.ok(loaded.ok, loaded.ok ? '' : loaded.errors.join('\n'));
  server = await startServer(loaded.value, { logger: pino({ level: 'silent' }) });
});

after(async () => {
  await server?.stop(0);
  await rm(dir, { recursive: true, force: true });
});

test('doctor --local checks TLS on every port, the listeners, queue and certificate of the running server', async () => {
  const portMap = `25=${ports.smtp},587=${ports.submission},465=${ports.submissions},993=${ports.imaps},995=${ports.pop3s},443=${ports.https}`;
  const r = await runPosternCli(['doctor', '--local', '--config', configFile, '--ipv4', '192.0.2.10', '--only', 'host,tls',
    '--port-map', portMap, '--ca', caFile, '--timeout', '5000', '--json']);
  assert.equal(r.stderr, '');
  const out = JSON.parse(r.stdout) as { results: { id: string; status: string; message: string }[] };
  const byId = Object.fromEntries(out.results.map((x) => [x.id, x]));
  for (const p of [25, 587, 465, 993, 995, 443]) {
    assert.equal(byId[`tls.${p}`]?.status, 'ok', `tls.${p}: ${byId[`tls.${p}`]?.message}`);
  }
  for (const p of Object.values(ports)) assert.equal(byId[`server.listen.${p}`]?.status, 'ok', `listener ${p}`);
  assert.equal(byId['server.queue']?.status, 'ok');
  assert.equal(byId['server.queue']?.message, 'the outbound queue is empty');
  assert.equal(byId['server.certificate']?.status, 'ok');
  assert.ok(byId['server.disk'] && byId['server.memory']);
  assert.equal(r.code, out.results.some((x) => x.status === 'fail') ? 1 : 0);
});

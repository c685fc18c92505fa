// The deploy provider against a real OpenSSH server (Debian's sshd on loopback) standing in for the droplet,
// with a temp folder standing in for /opt/postern, /var/lib/postern and /etc/systemd. The service manager is
// a small restart script (no systemd here): it stops the running server and starts `current/` again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deploymentProvider, type DeploymentInputs } from '../../../src/infra/providers/deploy.ts';
import { sshKeyPairProvider } from '../../../src/infra/providers/ssh-keys.ts';
import { assembleRelease, type ReleaseFile } from '../../../src/infra/release.ts';
import { renderUnit } from '../../../src/infra/host-templates.ts';
import { UNKNOWN_VALUE } from '../../../src/infra/providers/unknowns.ts';
import { startSshd, type Sshd } from '../../support/sshd.ts';
import { freePort } from '../../support/ports.ts';
import { loadSerializedProvider } from '../../support/serialized-provider.ts';

const NODE_BINARY = resolve('node_modules/node/bin/node');
// A stand-in for dist/server.js: serves its config's version, refuses to start when told to.
const SERVER_JS = `
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
const cfg = JSON.parse(readFileSync(process.argv[process.argv.indexOf('--config') + 1], 'utf8'));
if (cfg.refuse) { console.error('refusing to start: ' + cfg.refuse); process.exit(1); }
const key = readFileSync('tls/key.pem', 'utf8');
createServer((req, res) => res.end(JSON.stringify({ version: cfg.version, keyBytes: key.length, pid: process.pid })))
  .listen(cfg.port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`;

let sshd: Sshd;
let work: string;
let hostRoot: string;
let bundleDir: string;
let appPort: number;
let base: Omit<DeploymentInputs, 'releaseId' | 'release'>;
let provider: typeof deploymentProvider;
let otherHostFingerprint: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'postern-deploy-'));
  hostRoot = join(work, 'host');
  bundleDir = join(work, 'dist');
  await mkdir(bundleDir, { recursive: true });
  await mkdir(hostRoot, { recursive: true });
  await writeFile(join(bundleDir, 'server.js'), SERVER_JS);
  await mkdir(join(bundleDir, 'chunks'));
  await writeFile(join(bundleDir, 'chunks', 'shared-abc.js'), 'export const x = 1;\n');
  appPort = await freePort();
  await writeFile(join(hostRoot, 'restart.sh'), [
    `ROOT=${hostRoot}`,
    'if [ -f "$ROOT/server.pid" ]; then',
    '  PID=$(cat "$ROOT/server.pid"); kill "$PID" 2>/dev/null',
    '  for i in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done',
    'fi',
    'cd "$ROOT/opt/postern/current" || exit 1',
    'nohup ./node server/server.js --config config/server.json >"$ROOT/server.log" 2>&1 </dev/null &',
    'echo $! >"$ROOT/server.pid"', '',
  ].join('\n'));
  await writeFile(join(hostRoot, 'health.sh'), [
    // Waits up to ~10 s for a slow start on a busy machine, but stops as soon as the server process is gone.
    `for i in $(seq 1 100); do curl -fsS --max-time 2 http://127.0.0.1:${appPort}/ && exit 0; kill -0 "$(cat ${hostRoot}/server.pid)" 2>/dev/null || break; sleep 0.1; done`,
    `echo "server not answering on port ${appPort}"; tail -n 20 ${hostRoot}/server.log; exit 1`, '',
  ].join('\n'));

  const hostKey = (await sshKeyPairProvider.create({ comment: 'host@test' })).outs!;
  const deployKey = (await sshKeyPairProvider.create({ comment: 'deploy@test' })).outs!;
  otherHostFingerprint = (await sshKeyPairProvider.create({ comment: 'other@test' })).outs!.fingerprint;
  sshd = await startSshd({ hostPrivateKey: hostKey.privateKey, authorizedKey: deployKey.publicKey });
  base = {
    host: '127.0.0.1', port: sshd.port, user: 'root', privateKey: deployKey.privateKey, hostKeyFingerprint: hostKey.fingerprint,
    paths: {
      root: join(hostRoot, 'opt/postern'), stateDir: join(hostRoot, 'var/lib/postern'),
      unitPath: join(hostRoot, 'etc/systemd/system/postern.service'), authorizedKeysPath: join(hostRoot, 'authorized_keys'),
    },
    serviceUser: 'nobody',
    commands: { daemonReload: 'true', restart: `sh ${hostRoot}/restart.sh`, health: `sh ${hostRoot}/health.sh`, outboundSmtpCheck: 'false' },
    authorizedKeys: [deployKey.publicKey],
    keepReleases: 1,
    connectTimeoutSeconds: 10,
  };
  provider = (await loadSerializedProvider(deploymentProvider)).provider;
});

after(async () => {
  const pid = await readFile(join(hostRoot, 'server.pid'), 'utf8').catch(() => '');
  if (/^\d+\s*$/.test(pid)) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ } }
  await sshd?.stop();
  await rm(work, { recursive: true, force: true });
});

function files(config: object): ReleaseFile[] {
  return [
    { path: 'config/server.json', content: JSON.stringify({ port: appPort, ...config }), secret: true },
    { path: 'tls/cert.pem', content: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', secret: false },
    { path: 'tls/key.pem', content: '-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n', secret: true },
    { path: 'dkim/postern-rsa.pem', content: '-----BEGIN PRIVATE KEY-----\ndkim\n-----END PRIVATE KEY-----\n', secret: true },
    { path: 'postern.service', content: renderUnit({ root: base.paths.root, stateDir: base.paths.stateDir, user: 'postern' }), secret: false },
  ];
}

async function inputsFor(config: object): Promise<DeploymentInputs> {
  const release = { bundleDir, nodeBinary: NODE_BINARY, files: files(config) };
  return { ...base, release, releaseId: (await assembleRelease(release)).id };
}

async function serving(): Promise<{ version: number; pid: number; keyBytes: number }> {
  const res = await fetch(`http://127.0.0.1:${appPort}/`, { signal: AbortSignal.timeout(3000) });
  return await res.json() as { version: number; pid: number; keyBytes: number };
}

const current = () => readlink(join(base.paths.root, 'current'));
let v1: DeploymentInputs;
let v2: DeploymentInputs;
let firstPid = 0;

test('first deploy: runtime and release uploaded, unit installed, secrets 0600 for the service user, server healthy', async () => {
  v1 = await inputsFor({ version: 1 });
  assert.equal((await provider.check!({} as never, v1)).failures, undefined);
  const { id, outs } = await provider.create(v1);
  assert.equal(id, `127.0.0.1:${base.paths.root}`);
  assert.equal(outs?.releaseId, v1.releaseId);
  assert.equal(outs?.previousReleaseId, '');
  assert.equal(outs?.outboundSmtp, 'blocked');
  assert.equal(await current(), `releases/${v1.releaseId}`);
  const now = await serving();
  assert.equal(now.version, 1);
  firstPid = now.pid;
  const key = await stat(join(base.paths.root, 'current/tls/key.pem'));
  assert.equal(key.mode & 0o777, 0o600);
  assert.equal(key.uid, 65534, 'owned by the service user (nobody)');
  assert.equal((await stat(join(base.paths.root, 'current/tls/cert.pem'))).mode & 0o777, 0o644);
  assert.equal((await stat(join(base.paths.root, 'current/tls'))).uid, 65534, 'the host\'s renewal job (service user) can replace the certificate');
  assert.equal(await readFile(base.paths.unitPath, 'utf8'), files({})[4]!.content);
  assert.equal((await stat(base.paths.stateDir)).uid, 65534);
  assert.equal(await readFile(base.paths.authorizedKeysPath!, 'utf8'), `${base.authorizedKeys![0]}\n`);
});

test('preview: values not known yet (a droplet not created) pass check; wrong known values do not', async () => {
  const preview = { ...v1, host: UNKNOWN_VALUE, releaseId: UNKNOWN_VALUE, release: { ...v1.release, files: [{ path: 'tls/cert.pem', content: UNKNOWN_VALUE, secret: false }] } };
  assert.equal((await provider.check!({} as never, preview)).failures, undefined);
  const bad = await provider.check!({} as never, { ...v1, host: 'bad host; rm -rf /', paths: { ...v1.paths, root: '/opt/../etc' } });
  assert.deepEqual(bad.failures?.map((f) => f.property), ['host', 'paths.root']);
});

test('unchanged redeploy is a no-op: same release id, no diff, server not restarted', async () => {
  const again = await inputsFor({ version: 1 });
  assert.equal(again.releaseId, v1.releaseId);
  const outs = { host: '127.0.0.1', releaseId: v1.releaseId, previousReleaseId: '', outboundSmtp: 'blocked' as const, healthOutput: '' };
  assert.deepEqual(await provider.diff!('id', outs, again), { changes: false, replaces: [] });
  assert.equal((await serving()).pid, firstPid);
});

test('config change deploys a new release and restarts the server on it', async () => {
  v2 = await inputsFor({ version: 2 });
  assert.notEqual(v2.releaseId, v1.releaseId);
  const olds = { host: '127.0.0.1', releaseId: v1.releaseId, previousReleaseId: '', outboundSmtp: 'blocked' as const, healthOutput: '' };
  assert.equal((await provider.diff!('id', olds, v2)).changes, true);
  const { outs } = await provider.update!('id', olds, v2);
  assert.equal(outs?.releaseId, v2.releaseId);
  assert.equal(outs?.previousReleaseId, v1.releaseId);
  assert.equal(await current(), `releases/${v2.releaseId}`);
  const now = await serving();
  assert.equal(now.version, 2);
  assert.notEqual(now.pid, firstPid);
  // The previous release stays for a rollback.
  assert.ok((await stat(join(base.paths.root, 'releases', v1.releaseId))).isDirectory());
});

test('a host presenting another key is refused with what to do, and nothing changes on it', async () => {
  const wrong = { ...(await inputsFor({ version: 3 })), hostKeyFingerprint: otherHostFingerprint };
  await assert.rejects(provider.create(wrong), (err: Error) => {
    assert.match(err.message, /refusing to deploy: 127\.0\.0\.1:\d+ presented host key SHA256:\S+, but this stack pinned SHA256:/);
    assert.match(err.message, /pulumi up --replace/);
    return true;
  });
  assert.equal(await current(), `releases/${v2.releaseId}`);
  assert.equal((await serving()).version, 2);
});

test('a release failing its health check is rolled back and the previous release keeps serving', async () => {
  const broken = await inputsFor({ version: 4, refuse: 'broken on purpose' });
  const olds = { host: '127.0.0.1', releaseId: v2.releaseId, previousReleaseId: v1.releaseId, outboundSmtp: 'blocked' as const, healthOutput: '' };
  await assert.rejects(provider.update!('id', olds, broken), (err: Error) => {
    assert.match(err.message, new RegExp(`release ${broken.releaseId} failed its health check on 127\\.0\\.0\\.1; switched back to release ${v2.releaseId}, which is healthy`));
    assert.match(err.message, /server not answering/);
    assert.match(err.message, /refusing to start: broken on purpose/);
    return true;
  });
  assert.equal(await current(), `releases/${v2.releaseId}`);
  assert.equal((await serving()).version, 2);
});

test('the next good release deploys after a rolled-back one, and old releases beyond keepReleases are removed', async () => {
  const { readdir } = await import('node:fs/promises');
  const v5 = await inputsFor({ version: 5 });
  const olds = { host: '127.0.0.1', releaseId: v2.releaseId, previousReleaseId: v1.releaseId, outboundSmtp: 'blocked' as const, healthOutput: '' };
  const { outs } = await provider.update!('id', olds, v5);
  assert.equal(outs?.previousReleaseId, v2.releaseId);
  assert.equal((await serving()).version, 5);
  // Kept: current (v5), previous (v2) and the newest other one (the rolled-back v4); v1 is gone.
  const releases = (await readdir(join(base.paths.root, 'releases'))).sort();
  assert.equal(releases.length, 3, releases.join(' '));
  assert.ok(releases.includes(v5.releaseId) && releases.includes(v2.releaseId));
  assert.ok(!releases.includes(v1.releaseId));
});

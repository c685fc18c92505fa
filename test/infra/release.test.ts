// The real release: `npm run build` output, the config rendered from the example stack, a certificate and the
// DKIM keys, deployed over real SSH (Debian's sshd) and started with the exact ExecStart line of the systemd
// unit it ships. The running Postern server must answer on HTTPS with what the stack says.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseStackConfig, type StackConfig } from '../../src/plan/stack-config.ts';
import { renderMtaStsPolicy } from '../../src/plan/client-config.ts';
import { deploymentProvider, type DeploymentInputs } from '../../src/infra/providers/deploy.ts';
import { sshKeyPairProvider } from '../../src/infra/providers/ssh-keys.ts';
import { dkimKeyProvider } from '../../src/infra/providers/dkim.ts';
import { assembleRelease, releaseTarball } from '../../src/infra/release.ts';
import { releaseFiles } from '../../src/infra/components/deployment.ts';
import { startSshd, type Sshd } from '../support/sshd.ts';
import { freePort } from '../support/ports.ts';

let work: string;
let sshd: Sshd;
let inputs: DeploymentInputs;
let httpsPort: number;
let stack: StackConfig;
let caPem: string;

function get(path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const req = request({ host: '127.0.0.1', port: httpsPort, path, servername: host, headers: { host }, ca: caPem, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'postern-release-'));
  const dist = join(work, 'dist');
  execFileSync(process.execPath, ['scripts/build.ts', '--outdir', dist], { stdio: 'pipe' });
  const doc = parseYaml(await readFile('stacks/Pulumi.example.yaml', 'utf8')) as { config: Record<string, unknown> };
  const parsed = parseStackConfig(Object.fromEntries(Object.entries(doc.config).filter(([k]) => k.startsWith('postern:')).map(([k, v]) => [k.slice(8), v])));
  assert.ok(parsed.ok);
  // The test certificate is due for renewal: the deployed server's renewal job must dial a closed local port, not a public CA.
  stack = { ...parsed.value, acme: { ...parsed.value.acme, directoryUrl: `https://127.0.0.1:${await freePort()}/dir` } };

  // A certificate for the mail names from a throwaway CA the test trusts.
  const pki = join(work, 'pki');
  await mkdir(pki);
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: 'pipe' });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=release test CA']);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'req.csr', '-subj', `/CN=${stack.hostname}`]);
  await writeFile(join(pki, 'ext.cnf'), `subjectAltName=DNS:${stack.hostname},DNS:mta-sts.${stack.domain},DNS:autoconfig.${stack.domain}\n`);
  openssl(['x509', '-req', '-in', 'req.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'cert.pem', '-days', '2', '-extfile', 'ext.cnf']);
  caPem = await readFile(join(pki, 'ca.pem'), 'utf8');

  const hostKey = (await sshKeyPairProvider.create({ comment: 'host@release-test' })).outs!;
  const deployKey = (await sshKeyPairProvider.create({ comment: 'deploy@release-test' })).outs!;
  sshd = await startSshd({ hostPrivateKey: hostKey.privateKey, authorizedKey: deployKey.publicKey });
  const dkim = [];
  for (const s of [{ selector: 'postern-rsa', algorithm: 'rsa-sha256' as const }, { selector: 'postern-ed25519', algorithm: 'ed25519-sha256' as const }]) {
    const k = (await dkimKeyProvider.create(s)).outs!;
    dkim.push({ selector: s.selector, algorithm: s.algorithm, privateKeyPem: k.privateKeyPem });
  }
  httpsPort = await freePort();
  const host = join(work, 'host');
  const paths = { root: join(host, 'opt/postern'), stateDir: join(host, 'var/lib/postern'), unitPath: join(host, 'etc/systemd/system/postern.service') };
  const files = releaseFiles(stack, paths, 'nobody', {
    certificatePem: await readFile(join(pki, 'cert.pem'), 'utf8'), certificateKeyPem: await readFile(join(pki, 'key.pem'), 'utf8'), dkim,
  }, {
    listenAddress: '127.0.0.1',
    ports: { smtp: 0, submission: 0, submissions: 0, imap: 0, imaps: 0, pop3: 0, pop3s: 0, https: httpsPort, http: 0 },
  });
  await mkdir(host, { recursive: true });
  // systemd's stand-in: run the unit's own ExecStart line in the background.
  await writeFile(join(host, 'restart.sh'), [
    `H=${host}`,
    'if [ -f "$H/server.pid" ]; then PID=$(cat "$H/server.pid"); kill "$PID" 2>/dev/null; for i in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done; fi',
    `CMD=$(sed -n 's/^ExecStart=//p' ${paths.unitPath})`,
    'nohup $CMD >"$H/server.log" 2>&1 </dev/null &',
    'echo $! >"$H/server.pid"', '',
  ].join('\n'));
  await writeFile(join(host, 'health.sh'), [
    `for i in $(seq 1 50); do curl -fsS --cacert ${join(pki, 'ca.pem')} --resolve ${stack.hostname}:${httpsPort}:127.0.0.1 https://${stack.hostname}:${httpsPort}/healthz && exit 0; sleep 0.2; done`,
    `echo "no healthy answer on ${httpsPort}"; tail -n 30 ${host}/server.log; exit 1`, '',
  ].join('\n'));
  const release = { bundleDir: dist, nodeBinary: resolve('node_modules/node/bin/node'), files };
  inputs = {
    host: '127.0.0.1', port: sshd.port, user: 'root', privateKey: deployKey.privateKey, hostKeyFingerprint: hostKey.fingerprint,
    release, releaseId: (await assembleRelease(release)).id, paths, serviceUser: 'nobody',
    commands: { daemonReload: 'true', restart: `sh ${host}/restart.sh`, health: `sh ${host}/health.sh` },
    keepReleases: 2, connectTimeoutSeconds: 10,
  };
});

after(async () => {
  const pid = await readFile(join(work, 'host/server.pid'), 'utf8').catch(() => '');
  if (/^\d+\s*$/.test(pid)) { try { process.kill(Number(pid), 'SIGTERM'); } catch { /* already gone */ } }
  await sshd?.stop();
  await rm(work, { recursive: true, force: true });
});

test('the same release inputs give the same id and the same tarball bytes', async () => {
  const a = await assembleRelease(inputs.release);
  const b = await assembleRelease(inputs.release);
  assert.equal(a.id, inputs.releaseId);
  assert.equal(b.id, a.id);
  assert.ok((await releaseTarball(a)).equals(await releaseTarball(b)));
  const changed = await assembleRelease({ ...inputs.release, files: inputs.release.files.map((f) => f.path === 'tls/cert.pem' ? { ...f, content: `${f.content}\n` } : f) });
  assert.notEqual(changed.id, a.id);
});

test('the built server, deployed over SSH and started by its unit\'s ExecStart, serves the stack\'s MTA-STS policy', async () => {
  const { outs } = await deploymentProvider.create(inputs);
  assert.equal(outs?.releaseId, inputs.releaseId);
  assert.match(outs?.healthOutput ?? '', /"ok":\s*true/);
  const policy = await get('/.well-known/mta-sts.txt', `mta-sts.${stack.domain}`);
  assert.equal(policy.status, 200);
  assert.equal(policy.body, renderMtaStsPolicy(stack));
  const autoconfig = await get('/mail/config-v1.1.xml', `autoconfig.${stack.domain}`);
  assert.equal(autoconfig.status, 200);
  assert.match(autoconfig.body, new RegExp(`<hostname>${stack.hostname.replace(/\./g, '\\.')}</hostname>`));
});

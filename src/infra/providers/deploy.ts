// Pushes a release to the mail host over SSH (node-ssh) and switches to it, as a dynamic resource.
//
// create/update: connect with the pinned host key (any other key is refused), upload the Node runtime if the
// host lacks it, upload and unpack the release into releases/<id> (secrets 0600, owned by the service user),
// install the systemd unit, switch the `current` symlink atomically (ln -s to a temp name, mv -T), restart,
// run the health check; when it fails, switch back to the previous release, restart that, and fail with the
// check's output. The release id is a content hash: an unchanged release shows no diff, so no deploy.
//
// The restart/health commands are inputs (defaults drive systemd on a real host) so that tests can run the
// same steps against an OpenSSH server whose "service manager" is a script.
//
// Credentials (the deploy key) arrive as secret inputs; every method imports what it needs (serialised).
import * as pulumi from '@pulumi/pulumi';
import { knownFailures } from './unknowns.ts';
import type { ReleaseFile } from '../release.ts';
import { assembleRelease, releaseTarball, secretPaths } from '../release.ts';

export interface HostPaths {
  /** Where releases/, runtimes/ and current live, e.g. /opt/postern. */
  root: string;
  /** The only folder the service may write (the mounted volume), e.g. /var/lib/postern. */
  stateDir: string;
  /** Where the unit file goes, e.g. /etc/systemd/system/postern.service. */
  unitPath: string;
  /** When set, this file is rewritten with `authorizedKeys` (root's authorized_keys on a droplet). */
  authorizedKeysPath?: string;
}

export interface HostCommands {
  /** Runs first; on a droplet it waits for cloud-init (packages, users) to finish. Its exit code is ignored. */
  waitForBoot?: string;
  daemonReload: string;
  restart: string;
  /** Exit 0 = healthy; its output is shown when it fails. */
  health: string;
  /** Exit 0 = outbound port 25 reaches the Internet. */
  outboundSmtpCheck?: string;
}

export interface DeploymentInputs {
  host: string;
  port: number;
  user: string;
  /** OpenSSH private key of the deploy key; secret. */
  privateKey: string;
  /** `SHA256:…` of the host key cloud-init installed. */
  hostKeyFingerprint: string;
  release: { bundleDir: string; nodeBinary: string; files: ReleaseFile[] };
  /** The id the program computed; the provider re-checks it before deploying. */
  releaseId: string;
  paths: HostPaths;
  serviceUser: string;
  commands: HostCommands;
  authorizedKeys?: string[];
  /** Releases kept on the host besides the current and previous one. */
  keepReleases: number;
  /** How long to keep retrying a refused connection (a droplet still booting). Default 240. */
  connectTimeoutSeconds?: number;
}

export interface DeploymentOutputs {
  host: string;
  releaseId: string;
  /** The release that was current before this deploy, or '' on the first deploy. */
  previousReleaseId: string;
  /** 'open', 'blocked', or 'unchecked' when no check command is configured. */
  outboundSmtp: 'open' | 'blocked' | 'unchecked';
  healthOutput: string;
}

export const SYSTEMD_COMMANDS: HostCommands = {
  // A fresh droplet may still be running cloud-init; bounded, since a host where it never ran would wait forever.
  waitForBoot: 'if [ -e /var/lib/cloud/instance ]; then timeout 900 cloud-init status --wait >/dev/null 2>&1; fi; true',
  daemonReload: 'systemctl daemon-reload && systemctl enable postern.service',
  restart: 'systemctl restart postern.service',
  // The service needs a moment to bind its ports; 30 tries a second apart, then show why it is not healthy.
  health: 'for i in $(seq 1 30); do if curl -fsS -k --max-time 3 https://127.0.0.1/healthz; then exit 0; fi; sleep 1; done; '
    + 'systemctl status postern.service --no-pager -n 0; journalctl -u postern.service -n 40 --no-pager; exit 1',
  outboundSmtpCheck: "timeout 10 bash -c 'exec 3<>/dev/tcp/gmail-smtp-in.l.google.com/25 && head -c 3 <&3 | grep -q 220'",
};

const MAX_OUTPUT = 8000;

/** Single-quotes a value for sh. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function checkDeploymentInputs(news: Partial<DeploymentInputs>): pulumi.dynamic.CheckFailure[] {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const absolute = /^\/[A-Za-z0-9._@+\/-]*$/;
  if (typeof news.host !== 'string' || !/^[A-Za-z0-9.:-]{1,253}$/.test(news.host)) failures.push({ property: 'host', reason: `found ${JSON.stringify(news.host)}; expected an IP address or host name` });
  if (typeof news.port !== 'number' || !Number.isInteger(news.port) || news.port < 1 || news.port > 65535) failures.push({ property: 'port', reason: `found ${JSON.stringify(news.port)}; expected a TCP port` });
  if (typeof news.user !== 'string' || !/^[a-z_][a-z0-9_-]{0,31}$/.test(news.user)) failures.push({ property: 'user', reason: `found ${JSON.stringify(news.user)}; expected a login name` });
  if (typeof news.serviceUser !== 'string' || !/^[a-z_][a-z0-9_-]{0,31}$/.test(news.serviceUser)) failures.push({ property: 'serviceUser', reason: `found ${JSON.stringify(news.serviceUser)}; expected a user name` });
  if (typeof news.hostKeyFingerprint !== 'string' || !/^SHA256:[A-Za-z0-9+/]{43}$/.test(news.hostKeyFingerprint)) {
    failures.push({ property: 'hostKeyFingerprint', reason: `found ${JSON.stringify(news.hostKeyFingerprint)}; expected SHA256:<43 base64 characters> as ssh-keygen -lf prints it` });
  }
  if (typeof news.privateKey !== 'string' || !news.privateKey.includes('PRIVATE KEY')) failures.push({ property: 'privateKey', reason: 'expected an OpenSSH private key' });
  if (typeof news.releaseId !== 'string' || !/^[0-9a-f]{24}$/.test(news.releaseId)) failures.push({ property: 'releaseId', reason: `found ${JSON.stringify(news.releaseId)}; expected 24 hex digits` });
  const p = news.paths;
  for (const key of ['root', 'stateDir', 'unitPath', 'authorizedKeysPath'] as const) {
    const v = p?.[key];
    if ((key !== 'authorizedKeysPath' || v !== undefined) && (typeof v !== 'string' || !absolute.test(v) || v.split('/').includes('..') || v === '/')) {
      failures.push({ property: `paths.${key}`, reason: `found ${JSON.stringify(v)}; expected an absolute path without ..` });
    }
  }
  const c = news.commands;
  if (!c || typeof c.daemonReload !== 'string' || typeof c.restart !== 'string' || typeof c.health !== 'string') failures.push({ property: 'commands', reason: 'expected daemonReload, restart and health commands' });
  if (typeof news.keepReleases !== 'number' || !Number.isInteger(news.keepReleases) || news.keepReleases < 0 || news.keepReleases > 50) failures.push({ property: 'keepReleases', reason: `found ${JSON.stringify(news.keepReleases)}; expected 0 to 50` });
  for (const k of news.authorizedKeys ?? []) {
    if (typeof k !== 'string' || /[\r\n]/.test(k) || !/^[a-z0-9@.-]+ [A-Za-z0-9+/]+={0,2}( .*)?$/.test(k)) failures.push({ property: 'authorizedKeys', reason: `found ${JSON.stringify(k)}; expected one OpenSSH public key line` });
  }
  return failures;
}

/** Deploys `inputs` and returns the outputs; throws (after rolling back) when the health check fails. */
export async function deployRelease(inputs: DeploymentInputs): Promise<DeploymentOutputs> {
  const { NodeSSH } = await import('node-ssh');
  const { createHash } = await import('node:crypto');
  const release = await assembleRelease(inputs.release);
  if (release.id !== inputs.releaseId) {
    throw new Error(`the release changed since the program computed it (${inputs.releaseId} → ${release.id}: dist/ or the Node binary was rebuilt meanwhile); run \`pulumi up\` again`);
  }
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const root = inputs.paths.root;
  const releaseDir = `${root}/releases/${release.id}`;
  const runtimeDir = `${root}/runtimes/${release.runtimeSha256}`;

  let seen = '';
  const ssh = new NodeSSH();
  // A droplet that was just created needs a minute before sshd answers: retry refused and timed-out
  // connections until the deadline, but never a wrong host key.
  const deadline = Date.now() + (inputs.connectTimeoutSeconds ?? 240) * 1000;
  for (;;) {
    try {
      await ssh.connect({
        host: inputs.host, port: inputs.port, username: inputs.user, privateKey: inputs.privateKey, readyTimeout: 30_000,
        // Only the host key type that is pinned: the server must prove the Ed25519 key, no other.
        algorithms: { serverHostKey: ['ssh-ed25519'] },
        hostVerifier: (key: Buffer) => {
          seen = 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
          return seen === inputs.hostKeyFingerprint;
        },
      });
      break;
    } catch (err) {
      const transient = !seen && /ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ECONNRESET|Timed out/i.test((err as Error).message);
      if (!transient || Date.now() + 5000 > deadline) {
        ssh.dispose();
        throw connectError(err as Error);
      }
      await new Promise((r) => setTimeout(r, 5000));
    }
  }
  function connectError(err: Error): Error {
    if (seen && seen !== inputs.hostKeyFingerprint) {
      return new Error(`refusing to deploy: ${inputs.host}:${inputs.port} presented host key ${seen}, but this stack pinned ${inputs.hostKeyFingerprint} `
        + '(installed by cloud-init when the droplet was created). If the droplet was rebuilt or replaced outside Pulumi, recreate it through Pulumi '
        + '(`pulumi up --replace` on the droplet) so that it gets the pinned key again; if you changed nothing, someone may be intercepting the connection — do not deploy.');
    }
    return new Error(`cannot connect to ${inputs.user}@${inputs.host}:${inputs.port}: ${err.message}`);
  }
  try {
    const run = async (what: string, command: string): Promise<{ code: number; output: string }> => {
      const r = await ssh.execCommand(command);
      const output = `${r.stdout}${r.stdout && r.stderr ? '\n' : ''}${r.stderr}`.slice(-MAX_OUTPUT);
      return { code: r.code ?? (r.signal ? 128 : 0), output: output || `(${what}: no output)` };
    };
    const must = async (what: string, command: string): Promise<string> => {
      const r = await run(what, command);
      if (r.code !== 0) throw new Error(`${what} failed on ${inputs.host} (exit ${r.code}):\n${r.output}`);
      return r.output;
    };
    const sftp = await ssh.requestSFTP();
    const writeRemote = (path: string, data: Buffer, mode: number) => new Promise<void>((resolve, reject) => {
      sftp.writeFile(path, data, { mode }, (err) => (err ? reject(new Error(`writing ${path} on ${inputs.host}: ${err.message}`)) : resolve()));
    });

    const user = inputs.serviceUser;
    const state = inputs.paths.stateDir;
    if (inputs.commands.waitForBoot) await run('waiting for the first boot to finish', inputs.commands.waitForBoot);
    await must('preparing the host', [
      `set -e`,
      `mkdir -p ${q(`${root}/releases`)} ${q(`${root}/runtimes`)} ${q(state)}`,
      `getent passwd ${q(user)} >/dev/null || useradd --system --home-dir ${q(state)} --no-create-home --shell /usr/sbin/nologin ${q(user)}`,
      `chown ${q(user)}: ${q(state)}`,
      `chmod 0750 ${q(state)}`,
    ].join('\n'));

    // The runtime is large and rarely changes: upload only when this hash is missing, verify it on the host.
    const hasRuntime = await run('checking the runtime', `test -x ${q(`${runtimeDir}/node`)}`);
    if (hasRuntime.code !== 0) {
      const tmp = `${root}/runtimes/.upload-${release.runtimeSha256}`;
      await ssh.putFile(inputs.release.nodeBinary, tmp);
      const sum = await must('hashing the uploaded runtime', `sha256sum ${q(tmp)}`);
      if (!sum.startsWith(release.runtimeSha256)) throw new Error(`the Node runtime arrived corrupted on ${inputs.host} (sha256 ${sum.slice(0, 64)})`);
      await must('installing the runtime', `set -e; chmod 0755 ${q(tmp)}; mkdir -p ${q(runtimeDir)}; mv ${q(tmp)} ${q(`${runtimeDir}/node`)}`);
    }

    const hasRelease = await run('checking the release', `test -d ${q(releaseDir)}`);
    if (hasRelease.code !== 0) {
      const tarPath = `${root}/releases/.upload-${release.id}.tar.gz`;
      const unpack = `${root}/releases/.unpack-${release.id}`;
      await writeRemote(tarPath, await releaseTarball(release), 0o600);
      const secrets = secretPaths(release).map((p) => q(`${unpack}/${p}`)).join(' ');
      await must('unpacking the release', [
        `set -e`,
        `rm -rf ${q(unpack)}`,
        `mkdir -m 0755 ${q(unpack)}`,
        `tar -xzf ${q(tarPath)} -C ${q(unpack)} --no-same-owner`,
        ...(secrets ? [`chown ${q(user)}: ${secrets}`, `chmod 0600 ${secrets}`] : []),
        // The renewal job on the host replaces the certificate and key here (temp file + rename in this folder).
        `chown ${q(user)}: ${q(`${unpack}/tls`)}`,
        `mv -T ${q(unpack)} ${q(releaseDir)}`,
        `rm -f ${q(tarPath)}`,
      ].join('\n'));
    }

    if (inputs.authorizedKeys && inputs.paths.authorizedKeysPath) {
      const path = inputs.paths.authorizedKeysPath;
      await writeRemote(`${path}.postern-new`, Buffer.from(inputs.authorizedKeys.join('\n') + '\n'), 0o600);
      await must('installing authorized keys', `set -e; chmod 0600 ${q(`${path}.postern-new`)}; mv -T ${q(`${path}.postern-new`)} ${q(path)}`);
    }

    const previousLink = (await run('reading the current release', `readlink ${q(`${root}/current`)}`));
    const previous = previousLink.code === 0 ? (/^releases\/([0-9a-f]{24})$/.exec(previousLink.output.trim())?.[1] ?? '') : '';

    const activate = async (id: string) => {
      const dir = `${root}/releases/${id}`;
      await must(`installing the unit of release ${id}`, [
        `set -e`,
        `mkdir -p "$(dirname ${q(inputs.paths.unitPath)})"`,
        `cmp -s ${q(`${dir}/postern.service`)} ${q(inputs.paths.unitPath)} || install -m 0644 ${q(`${dir}/postern.service`)} ${q(inputs.paths.unitPath)}`,
        `ln -sfn ${q(`releases/${id}`)} ${q(`${root}/current.new`)}`,
        `mv -T ${q(`${root}/current.new`)} ${q(`${root}/current`)}`,
      ].join('\n'));
      await must('reloading the service manager', inputs.commands.daemonReload);
      await must('restarting the service', inputs.commands.restart);
    };

    await activate(release.id);
    const health = await run('health check', inputs.commands.health);
    if (health.code !== 0) {
      let rolledBack = 'there is no previous release to go back to';
      if (previous && previous !== release.id) {
        try {
          await activate(previous);
          const again = await run('health check after rollback', inputs.commands.health);
          rolledBack = again.code === 0 ? `switched back to release ${previous}, which is healthy`
            : `switched back to release ${previous}, which is not healthy either:\n${again.output}\n`;
        } catch (err) {
          rolledBack = `switching back to release ${previous} failed too: ${(err as Error).message}`;
        }
      }
      throw new Error(`release ${release.id} failed its health check on ${inputs.host}; ${rolledBack}. Health check output:\n${health.output}`);
    }

    // Keep current, previous and the newest `keepReleases` others; names are checked before anything is removed.
    const listed = await must('listing releases', `ls -1t ${q(`${root}/releases`)}`);
    const others = listed.split('\n').map((s) => s.trim()).filter((s) => /^[0-9a-f]{24}$/.test(s) && s !== release.id && s !== previous);
    const remove = others.slice(inputs.keepReleases);
    if (remove.length) await must('removing old releases', `rm -rf ${remove.map((id) => q(`${root}/releases/${id}`)).join(' ')}`);

    let outboundSmtp: DeploymentOutputs['outboundSmtp'] = 'unchecked';
    if (inputs.commands.outboundSmtpCheck) {
      outboundSmtp = (await run('outbound SMTP check', inputs.commands.outboundSmtpCheck)).code === 0 ? 'open' : 'blocked';
    }
    return { host: inputs.host, releaseId: release.id, previousReleaseId: previous, outboundSmtp, healthOutput: health.output.slice(0, 2000) };
  } finally {
    ssh.dispose();
  }
}

export const deploymentProvider: pulumi.dynamic.ResourceProvider<DeploymentInputs, DeploymentOutputs> = {
  async check(_olds, news) {
    const failures = knownFailures(news, checkDeploymentInputs(news));
    return failures.length ? { failures } : { inputs: news };
  },
  async diff(_id, olds, news) {
    // olds are outputs; what decides a deploy is the release id and the host it runs on.
    const replaces = olds.host !== news.host ? ['host'] : [];
    return { changes: olds.releaseId !== news.releaseId || replaces.length > 0, replaces };
  },
  async create(inputs) {
    const outs = await deployRelease(inputs);
    return { id: `${inputs.host}:${inputs.paths.root}`, outs };
  },
  async update(_id, _olds, news) {
    return { outs: await deployRelease(news) };
  },
  async delete() {
    // The release stays on the host: the droplet is destroyed with the stack, and removing only the
    // Deployment must not stop a running mail server by accident.
  },
};

export interface DeploymentArgs {
  host: pulumi.Input<string>;
  port?: pulumi.Input<number>;
  user?: pulumi.Input<string>;
  privateKey: pulumi.Input<string>;
  hostKeyFingerprint: pulumi.Input<string>;
  release: pulumi.Input<{ bundleDir: string; nodeBinary: string; files: ReleaseFile[] }>;
  releaseId: pulumi.Input<string>;
  paths: pulumi.Input<HostPaths>;
  serviceUser?: pulumi.Input<string>;
  commands?: pulumi.Input<HostCommands>;
  authorizedKeys?: pulumi.Input<pulumi.Input<string>[]>;
  keepReleases?: pulumi.Input<number>;
}

/** The deployed release on one host. `privateKey` and the release files (keys, config) are secret. */
export class Deployment extends pulumi.dynamic.Resource {
  declare readonly releaseId: pulumi.Output<string>;
  declare readonly previousReleaseId: pulumi.Output<string>;
  declare readonly outboundSmtp: pulumi.Output<'open' | 'blocked' | 'unchecked'>;
  declare readonly healthOutput: pulumi.Output<string>;

  constructor(name: string, args: DeploymentArgs, opts?: pulumi.CustomResourceOptions) {
    super(deploymentProvider, name, {
      port: 22, user: 'root', serviceUser: 'postern', commands: SYSTEMD_COMMANDS, keepReleases: 3,
      ...args,
      privateKey: pulumi.secret(args.privateKey),
      release: pulumi.secret(args.release),
      previousReleaseId: undefined, outboundSmtp: undefined, healthOutput: undefined,
    }, { ...opts, additionalSecretOutputs: ['privateKey', 'release'] }, 'postern', 'Deployment');
  }
}

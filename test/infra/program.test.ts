// The whole Pulumi program under pulumi.runtime.setMocks with the example stack (stacks/Pulumi.example.yaml):
// asserts on the resources it registers, as the engine would receive them (secret markers included).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { parse as parseYaml } from 'yaml';
import { parseStackConfig, type StackConfig } from '../../src/plan/stack-config.ts';
import { planDns } from '../../src/plan/dns-plan.ts';
import { mtaStsPolicyId, renderMtaStsPolicy } from '../../src/plan/client-config.ts';
import { dkimKeyProvider } from '../../src/infra/providers/dkim.ts';
import { sshKeyPairProvider } from '../../src/infra/providers/ssh-keys.ts';
import { cloudflareRecordArgs, MailDns } from '../../src/infra/components/mail-dns.ts';
import { postern, StackConfigError } from '../../src/infra/program.ts';

const SECRET_SIG = '4dabf18193072939515e22adb298388d';
const DO_TOKEN = 'dop_v1_test_token_value_0123456789';
const CF_TOKEN = 'cf_test_api_token_value_9876543210';
const IPV4 = '203.0.113.10';
const IPV6 = '2001:db8::10';

interface Registered {
  type: string; name: string; custom: boolean;
  /** Inputs as serialised for the engine: secrets are `{[SECRET_SIG]: …, value}` objects. */
  wire: Record<string, unknown>;
  /** Inputs with secrets unwrapped. */
  inputs: Record<string, unknown>;
  protect: boolean; retainOnDelete: boolean; ignoreChanges: string[]; additionalSecretOutputs: string[];
}
let registered: Registered[] = [];
const hostKeys = new Map<string, { privateKey: string; publicKey: string; fingerprint: string }>();
const dkimOutputs = new Map<string, { selector: string; algorithm: string; publicKey: string }>();

// Capture each registration as the engine would see it, before the mock monitor unwraps secrets.
const requireHere = createRequire(import.meta.url);
const { MockMonitor } = requireHere('@pulumi/pulumi/runtime/mocks.js') as { MockMonitor: { prototype: Record<string, (...a: unknown[]) => unknown> } };
const original = MockMonitor.prototype.registerResource!;
MockMonitor.prototype.registerResource = function (this: unknown, req: unknown, cb: unknown) {
  const r = req as Record<string, () => never>;
  const wire = (r.getObject!() as unknown as { toJavaScript(): Record<string, unknown> }).toJavaScript();
  registered.push({
    type: r.getType!(), name: r.getName!(), custom: r.getCustom!(), wire, inputs: unwrap(wire) as Record<string, unknown>,
    protect: Boolean(r.getProtect!()), retainOnDelete: Boolean(r.getRetainondelete!()),
    ignoreChanges: r.getIgnorechangesList!(), additionalSecretOutputs: r.getAdditionalsecretoutputsList!(),
  });
  return original.call(this, req, cb);
};

function unwrap(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(unwrap);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (SECRET_SIG in o && 'value' in o) return unwrap(o.value);
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, unwrap(x)]));
  }
  return v;
}

/** JSON with object keys sorted, so equal records compare equal whatever order their fields were built in. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
}

const isSecretWire = (v: unknown) => !!v && typeof v === 'object' && SECRET_SIG in (v as object);

await pulumi.runtime.setMocks({
  async newResource(args) {
    const i = args.inputs as Record<string, unknown>;
    // Dynamic resources register as pulumi-nodejs:dynamic/postern:<Type>.
    switch (args.type.startsWith('pulumi-nodejs:dynamic') ? 'dynamic' : args.type) {
      case 'digitalocean:index/droplet:Droplet':
        return { id: '4242', state: { ...i, ipv4Address: IPV4, ipv6Address: IPV6, dropletUrn: 'do:droplet:4242' } };
      case 'digitalocean:index/volume:Volume':
        return { id: 'vol-1', state: { ...i, volumeUrn: 'do:volume:vol-1' } };
      case 'digitalocean:index/sshKey:SshKey':
        return { id: `key-${args.name}`, state: { ...i, fingerprint: `fp-${args.name}` } };
      case 'dynamic': {
        // Dynamic resources: the real providers where they need no network, stand-in outputs otherwise.
        if ('selector' in i) {
          const { id, outs } = await dkimKeyProvider.create(i as never);
          dkimOutputs.set(String(i.selector), outs!);
          return { id, state: { ...i, ...outs } };
        }
        if ('comment' in i) {
          // One key per resource name for the whole file, as Pulumi state would keep it between runs.
          const outs = hostKeys.get(args.name) ?? (await sshKeyPairProvider.create(i as never)).outs!;
          hostKeys.set(args.name, outs);
          return { id: `key-${args.name}`, state: { ...i, ...outs } };
        }
        if ('directoryUrl' in i) {
          return { id: 'cert-1', state: { ...i, certificatePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
            privateKeyPem: '-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n', accountKeyPem: 'acct', accountUrl: 'https://ca/acct/1',
            notBefore: '2026-11-28T00:00:00.000Z', notAfter: '2027-02-26T00:00:00.000Z', serial: '01' } };
        }
        if ('releaseId' in i) {
          return { id: 'deploy-1', state: { ...i, previousReleaseId: '', outboundSmtp: 'blocked', healthOutput: '{"ok":true}' } };
        }
        throw new Error(`unexpected dynamic resource ${args.name}`);
      }
      default:
        return { id: `${args.name}-id`, state: i };
    }
  },
  call(args) {
    if (args.token === 'cloudflare:index/getZone:getZone') return { id: '0123456789abcdef0123456789abcdef', name: 'example.com', nameServers: [] };
    throw new Error(`unexpected call ${args.token}`);
  },
}, 'postern', 'example', false);

let work: string;
let firstUserData = '';
let example: Record<string, unknown>;
let stack: StackConfig;

/** Resolves an Output's value (mocks run with preview off, so every apply runs). */
function value<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => { resolve(v); return v; }));
}

/** Lets every registration the program started (including those inside applies) reach the monitor. */
async function settle(): Promise<void> {
  let n = -1;
  while (n !== registered.length) {
    n = registered.length;
    await new Promise((r) => setTimeout(r, 200));
  }
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'postern-program-'));
  await writeFile(join(work, 'server.js'), 'console.log("stand-in bundle");\n');
  process.env.POSTERN_BUNDLE_DIR = work;
  const doc = parseYaml(await readFile('stacks/Pulumi.example.yaml', 'utf8')) as { config: Record<string, unknown> };
  example = Object.fromEntries(Object.entries(doc.config).filter(([k]) => k.startsWith('postern:')).map(([k, v]) => [k.slice('postern:'.length), v]));
  const parsed = parseStackConfig(example);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.errors.join('\n'));
  stack = parsed.value;
});

after(async () => { await rm(work, { recursive: true, force: true }); });

const byType = (type: string) => registered.filter((r) => r.type === type);
const dynamicResources = () => registered.filter((r) => r.type.startsWith('pulumi-nodejs:dynamic/postern:'));

test('the program (index.ts) with the example stack: droplet, firewall, DNS, secrets, protection', async () => {
  const all: Record<string, string> = { 'digitalocean:token': DO_TOKEN, 'cloudflare:apiToken': CF_TOKEN };
  for (const [k, v] of Object.entries(example)) all[`postern:${k}`] = typeof v === 'string' ? v : JSON.stringify(v);
  pulumi.runtime.setAllConfig(all, ['digitalocean:token', 'cloudflare:apiToken']);
  const program = await import('../../src/infra/index.ts');
  const steps = await value(program.nextSteps as pulumi.Output<string[]>);
  const table = await value(program.dnsRecords as pulumi.Output<{ name: string; type: string; value: string }[]>);
  await settle();

  // The droplet is named by the mail hostname: that is how DigitalOcean sets its PTR.
  const [droplet] = byType('digitalocean:index/droplet:Droplet');
  assert.equal(droplet?.inputs.name, 'mail.example.com');
  assert.equal(droplet?.inputs.ipv6, true);
  assert.equal(droplet?.inputs.monitoring, true);
  assert.equal(droplet?.inputs.backups, false);
  assert.ok(isSecretWire(droplet?.wire.userData), 'user_data carries the host private key: secret');
  assert.match(String(droplet?.inputs.userData), /^#cloud-config\n/);
  // cloud-init installs the host key whose fingerprint the deployment pins: the first connection is verified.
  const cloudInit = parseYaml(String(droplet?.inputs.userData)) as { ssh_keys: { ed25519_private: string; ed25519_public: string }; mounts: string[][] };
  const hostKey = dynamicResources().find((r) => r.name === 'mail-host-host-key');
  assert.ok(hostKey);
  assert.equal(hostKeys.get('mail-host-host-key')?.privateKey, cloudInit.ssh_keys.ed25519_private);
  assert.equal(hostKeys.get('mail-host-host-key')?.publicKey, cloudInit.ssh_keys.ed25519_public);
  assert.equal(cloudInit.mounts[0]?.[1], '/var/lib/postern');
  assert.deepEqual(await value(program.expectedPtr as pulumi.Output<unknown[]>), [
    { address: IPV4, reverseName: '10.113.0.203.in-addr.arpa', target: 'mail.example.com' },
    { address: IPV6, reverseName: planDns(stack, { ipv4: IPV4, ipv6: IPV6, dkim: [], allowMissingDkim: true, mtaStsPolicyId: 'x' }).ptr[1]!.reverseName, target: 'mail.example.com' },
  ]);

  // Firewall: SSH only from adminCidrs, never from anywhere; everything else open is a mail port.
  const [firewall] = byType('digitalocean:index/firewall:Firewall');
  const rules = firewall!.inputs.inboundRules as { protocol: string; portRange?: string; sourceAddresses: string[] }[];
  const mailPorts = new Set(['25', '80', '443', '465', '587', '993', '995']);
  for (const r of rules) {
    if (r.protocol === 'icmp') continue;
    assert.equal(r.protocol, 'tcp');
    if (r.portRange === '22') {
      assert.deepEqual(r.sourceAddresses, stack.adminCidrs);
      assert.ok(!r.sourceAddresses.includes('0.0.0.0/0') && !r.sourceAddresses.includes('::/0'));
    } else {
      assert.ok(mailPorts.has(r.portRange ?? ''), `port ${r.portRange} is not a mail port`);
    }
  }
  assert.deepEqual(rules.filter((r) => r.protocol === 'tcp').map((r) => r.portRange).sort(), [...mailPorts, '22'].sort());
  assert.deepEqual(firewall!.inputs.dropletIds, [4242]);

  // DNS: exactly the plan's records (computed here from the same facts), none proxied.
  const dkim = [...dkimOutputs.values()].map((k) => ({ selector: k.selector, algorithm: k.algorithm as 'rsa-sha256', publicKey: k.publicKey }));
  const plan = planDns(stack, { ipv4: IPV4, ipv6: IPV6, dkim, mtaStsPolicyId: mtaStsPolicyId(renderMtaStsPolicy(stack)) });
  const records = byType('cloudflare:index/dnsRecord:DnsRecord');
  assert.equal(records.length, plan.records.length);
  const wanted = plan.records.map((r) => canonical({ name: r.name, type: r.type, ttl: r.ttl, ...cloudflareRecordArgs(r) })).sort();
  const got = records.map((r) => {
    const { name, type, ttl, content, priority, data } = r.inputs as Record<string, unknown>;
    return canonical({ name, type, ttl, ...(content !== undefined ? { content } : {}), ...(priority !== undefined ? { priority } : {}), ...(data !== undefined ? { data } : {}) });
  }).sort();
  assert.deepEqual(got, wanted);
  for (const r of records) assert.equal(r.inputs.proxied, false, `${r.name} proxied`);
  assert.equal(records.find((r) => r.inputs.type === 'MX')?.inputs.zoneId, '0123456789abcdef0123456789abcdef');
  // Long TXT values (the RSA DKIM key) are split into quoted strings of at most 255 bytes.
  const rsa = records.find((r) => String(r.inputs.name).startsWith('postern-rsa._domainkey'));
  assert.match(String(rsa?.inputs.content), /^"v=DKIM1; k=rsa; p=[^"]{200,}" "[^"]+"$/);
  assert.equal(table.length, plan.records.length);

  // Secrets: keys are secret outputs, tokens and the deploy key are secret inputs, nothing leaks into code.
  const dynamic = dynamicResources();
  const dkimKeys = dynamic.filter((r) => 'selector' in r.inputs);
  assert.equal(dkimKeys.length, 2);
  for (const k of dkimKeys) assert.ok(k.additionalSecretOutputs.includes('privateKeyPem'));
  const cert = dynamic.find((r) => 'directoryUrl' in r.inputs)!;
  assert.deepEqual([...cert.additionalSecretOutputs].sort(), ['accountKeyPem', 'dns', 'privateKeyPem']);
  assert.ok(isSecretWire(cert.wire.dns), 'Cloudflare token reaches the ACME provider as a secret input');
  assert.deepEqual(cert.inputs.dns, { apiToken: CF_TOKEN, zoneId: '0123456789abcdef0123456789abcdef' });
  assert.equal(cert.inputs.directoryUrl, 'https://acme-v02.api.letsencrypt.org/directory');
  assert.deepEqual(cert.inputs.names, ['mail.example.com', 'mta-sts.example.com', 'autoconfig.example.com', 'autodiscover.example.com']);
  for (const r of dynamic.filter((x) => 'comment' in x.inputs)) assert.ok(r.additionalSecretOutputs.includes('privateKey'));
  const deploy = dynamic.find((r) => 'releaseId' in r.inputs)!;
  assert.ok(isSecretWire(deploy.wire.privateKey) && isSecretWire(deploy.wire.release));
  assert.match(String(deploy.inputs.releaseId), /^[0-9a-f]{24}$/);
  assert.equal(deploy.inputs.hostKeyFingerprint, hostKeys.get('mail-host-host-key')?.fingerprint);
  assert.equal(deploy.inputs.host, IPV4);
  const [doProvider] = byType('pulumi:providers:digitalocean');
  const [cfProvider] = byType('pulumi:providers:cloudflare');
  assert.ok(isSecretWire(doProvider!.wire.token), 'digitalocean token secret');
  assert.ok(isSecretWire(cfProvider!.wire.apiToken), 'cloudflare token secret');
  for (const r of dynamic) {
    const code = String(r.inputs.__provider);
    assert.match(code, /exports\.handler/, `${r.name}: provider serialised`);
    assert.ok(!code.includes(CF_TOKEN) && !code.includes(DO_TOKEN), `${r.name}: a token was captured in the provider code`);
  }
  assert.ok(!JSON.stringify(steps).includes(CF_TOKEN));

  // Not ephemeral: the mail volume is protected and kept on delete.
  const [volume] = byType('digitalocean:index/volume:Volume');
  assert.equal(volume?.protect, true);
  assert.equal(volume?.retainOnDelete, true);
  assert.deepEqual(droplet?.ignoreChanges, ['sshKeys']);
  firstUserData = String(droplet?.inputs.userData);

  // Outbound 25 blocked (as the mock deploy reported) and no relay: the next steps say how to fix it.
  assert.ok(steps.some((s) => /Outbound port 25 is BLOCKED/.test(s) && /postern:relay/.test(s)), steps.join('\n'));
});

test('an ephemeral stack has no deletion protection and uses the staging CA', async () => {
  registered = [];
  const out = postern({
    config: { ...example, domain: 'example.org', hostname: 'mail.example.org', users: [{ address: 'bob@example.org', passwordHash: (example.users as { passwordHash: string }[])[0]!.passwordHash }],
      aliases: {}, dmarc: {}, tlsRpt: {}, acme: {}, ephemeral: true },
    digitaloceanToken: pulumi.output(DO_TOKEN), cloudflareApiToken: pulumi.output(CF_TOKEN),
    bundleDir: work, nodeBinary: 'node_modules/node/bin/node',
  });
  await value(out.nextSteps);
  await settle();
  const [volume] = byType('digitalocean:index/volume:Volume');
  assert.equal(volume?.protect, false);
  assert.equal(volume?.retainOnDelete, false);
  const cert = dynamicResources().find((r) => 'directoryUrl' in r.inputs)!;
  assert.equal(cert.inputs.directoryUrl, 'https://acme-staging-v02.api.letsencrypt.org/directory');
  assert.equal(byType('digitalocean:index/project:Project')[0]?.inputs.environment, 'Development');
  // Tokens given in clear to the program are still made secret before they reach a provider.
  assert.ok(isSecretWire(byType('pulumi:providers:digitalocean')[0]!.wire.token));
});

test('an invalid config stops the program with the plan\'s list of problems and registers nothing', async () => {
  registered = [];
  const bad = { ...example, region: 'Frankfurt', adminCidrs: ['0.0.0.0/0'] };
  const expected = parseStackConfig(bad);
  assert.ok(!expected.ok);
  assert.throws(() => postern({ config: bad, digitaloceanToken: pulumi.output(DO_TOKEN), cloudflareApiToken: pulumi.output(CF_TOKEN), bundleDir: work, nodeBinary: 'x' }),
    (err: unknown) => {
      assert.ok(err instanceof StackConfigError);
      assert.deepEqual(err.errors, expected.errors);
      assert.match(err.message, /postern:region/);
      assert.match(err.message, /postern:adminCidrs\[0\]/);
      return true;
    });
  await settle();
  assert.equal(registered.length, 0);
});

test('a rotated-out DKIM selector stays published next to the plan\'s records', async () => {
  registered = [];
  const dkim = [...dkimOutputs.values()].map((k) => ({ selector: k.selector, algorithm: k.algorithm as 'rsa-sha256', publicKey: k.publicKey }));
  const dns = new MailDns('rotation', {
    stack, zoneId: 'zone', ipv4: IPV4, ipv6: IPV6, dkim, mtaStsPolicyId: 'abc123',
    retiredDkim: [{ selector: 'old-rsa', algorithm: 'rsa-sha256', dnsValue: 'v=DKIM1; k=rsa; p=MIIBIjANBgkq' }],
  });
  await value(dns.table);
  await settle();
  const records = byType('cloudflare:index/dnsRecord:DnsRecord');
  const retired = records.filter((r) => r.inputs.name === 'old-rsa._domainkey.example.com');
  assert.equal(retired.length, 1);
  assert.equal(retired[0]!.inputs.content, '"v=DKIM1; k=rsa; p=MIIBIjANBgkq"');
  assert.equal(retired[0]!.inputs.proxied, false);
  // The current selectors are published too.
  assert.ok(records.some((r) => r.inputs.name === 'postern-rsa._domainkey.example.com'));
});

test('user_data stays the same when the mail config changes, so the droplet is not replaced', async () => {
  assert.ok(firstUserData.startsWith('#cloud-config'));
  registered = [];
  const out = postern({
    config: { ...example, dmarc: { policy: 'reject' }, mtaSts: { mode: 'enforce', maxAge: '14d' }, dkim: { selectorPrefix: 's2027' },
      aliases: {}, size: 's-2vcpu-2gb', backups: true },
    digitaloceanToken: pulumi.output(DO_TOKEN), cloudflareApiToken: pulumi.output(CF_TOKEN),
    bundleDir: work, nodeBinary: 'node_modules/node/bin/node',
  });
  await value(out.nextSteps);
  await settle();
  const [droplet] = byType('digitalocean:index/droplet:Droplet');
  assert.equal(droplet?.inputs.size, 's-2vcpu-2gb');
  assert.equal(droplet?.inputs.backups, true);
  assert.equal(String(droplet?.inputs.userData), firstUserData);
});

// The DNS world the doctor tests run against: Knot serves a clean domain (clean.test) and one with planted faults
// (faulty.test: no Ed25519 DKIM key, an SPF needing 11 lookups, a stale MTA-STS id, a PTR that does not confirm,
// no IPv6 PTR), their reverse zones and three test DNSBL zones (zen.bl.test lists the faulty host with 127.0.0.2,
// refuse.bl.test answers the refusal code 127.255.255.254 for everything, dbl.bl.test lists nothing). Unbound
// resolves through stub zones; an HTTPS server with a certificate from a test CA serves both MTA-STS policies.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { stringify } from 'yaml';
import { startUnbound, type RunningPeer } from './dns-peers.ts';
import { startKnot, type Knot } from '../../support/knot.ts';
import { makeTestCa } from './test-pki.ts';
import { parseStackConfig, type StackConfig } from '../../../src/plan/stack-config.ts';
import { renderZoneFile } from '../../../src/plan/zone-file.ts';
import { renderMtaStsPolicy } from '../../../src/plan/client-config.ts';
import type { DnsRecord } from '../../../src/plan/dns-records.ts';
import type { DkimAlgorithm } from '../../../src/plan/dkim.ts';
import { targetFromStack, type DiagnosticTarget } from '../../../src/server/diagnostics/target.ts';
import { reversedIp } from '../../../src/server/diagnostics/dnsbl.ts';

const HASH = '$argon2id$v=19$m=65536,t=3,p=4$mvibF0f8r3Oi6Ya+maJY+g$Xw93yVX4V6lqABw/klOXpMuqPUzzpnQxlkWCz2247lY';
const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4BG3e7eRd5fUpjQd75+0ge/aYVk5zz8kkt47geJtmy admin@example.com';

export const CLEAN = { domain: 'clean.test', ipv4: '192.0.2.10', ipv6: '2001:db8::10' };
export const FAULTY = { domain: 'faulty.test', ipv4: '192.0.2.20', ipv6: '2001:db8::20' };

export function stackInput(domain: string): Record<string, unknown> {
  return {
    domain, region: 'fra1', adminCidrs: ['203.0.113.7/32'], sshPublicKey: SSH_KEY,
    users: [{ address: `alice@${domain}`, passwordHash: HASH }],
    dmarc: { policy: 'quarantine', reportAddress: `postmaster@${domain}` },
    tlsRpt: { reportAddress: `postmaster@${domain}` },
    mtaSts: { mode: 'enforce', maxAge: '7d' },
  };
}

function stack(domain: string): StackConfig {
  const r = parseStackConfig(stackInput(domain));
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.value;
}

export interface DkimKey { selector: string; algorithm: DkimAlgorithm; publicKey: string; privateKeyPem: string }

function dkimKeys(s: StackConfig): DkimKey[] {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed = generateKeyPairSync('ed25519');
  const pub = (k: typeof rsa.publicKey) => k.export({ type: 'spki', format: 'pem' }).toString();
  const priv = (k: typeof rsa.privateKey) => k.export({ type: 'pkcs8', format: 'pem' }).toString();
  return [
    { selector: `${s.dkim.selectorPrefix}-rsa`, algorithm: 'rsa-sha256', publicKey: pub(rsa.publicKey), privateKeyPem: priv(rsa.privateKey) },
    { selector: `${s.dkim.selectorPrefix}-ed25519`, algorithm: 'ed25519-sha256', publicKey: pub(ed.publicKey), privateKeyPem: priv(ed.privateKey) },
  ];
}

const soa = (origin: string) => ({ origin, soa: { primary: `ns.${origin}`, contact: `hostmaster.${origin}`, serial: 1, minimum: 60 }, nameServers: [`ns.${origin}`], defaultTtl: 60 });
const zone = (origin: string, records: DnsRecord[], extra: string[] = []) => ({ origin, text: renderZoneFile(records, soa(origin)) + extra.join('\n') + '\n' });

export interface DoctorWorld {
  dir: string;
  clean: DiagnosticTarget;
  faulty: DiagnosticTarget;
  cleanDkim: DkimKey[];
  /** The faulty domain's Ed25519 public key (PEM): a key that is not clean.test's. */
  faultyDkimEd25519: string;
  /** `127.0.0.1:<port>` of the Unbound resolver. */
  resolverAddress: string;
  httpsPort: number;
  caPem: string;
  caFile: string;
  /** A stacks folder with Pulumi.clean.yaml and Pulumi.faulty.yaml. */
  stacksDir: string;
  stop(): Promise<void>;
}

export async function startDoctorWorld(): Promise<DoctorWorld> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-doctor-'));
  let knot: Knot | undefined;
  let unbound: RunningPeer | undefined;
  let https: Server | undefined;
  const stop = async () => {
    await unbound?.stop();
    await knot?.stop();
    await new Promise<void>((r) => (https ? https.close(() => r()) : r()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const cleanStack = stack(CLEAN.domain);
    const faultyStack = stack(FAULTY.domain);
    const cleanDkim = dkimKeys(cleanStack);
    const clean = targetFromStack(cleanStack, { ipv4: CLEAN.ipv4, ipv6: CLEAN.ipv6, dkimPublicKeys: cleanDkim });
    const faultyDkim = dkimKeys(faultyStack);
    const faulty = targetFromStack(faultyStack, { ipv4: FAULTY.ipv4, ipv6: FAULTY.ipv6, dkimPublicKeys: faultyDkim });

    const faultyRecords = faulty.dnsPlan!.records.flatMap((r): DnsRecord[] => {
      if (r.type === 'TXT' && r.name === 'postern-ed25519._domainkey.faulty.test') return [];
      if (r.type === 'TXT' && r.name === 'faulty.test' && r.value.startsWith('v=spf1')) {
        return [{ ...r, value: 'v=spf1 a mx include:_s1.faulty.test include:_s2.faulty.test -all' }];
      }
      if (r.type === 'TXT' && r.name === '_mta-sts.faulty.test') return [{ ...r, value: 'v=STSv1; id=old1' }];
      return [r];
    });
    const faultyExtra = [
      '_s1.faulty.test. 60 IN TXT "v=spf1 a mx exists:%{i}.x.faulty.test -all"',
      '_s2.faulty.test. 60 IN TXT "v=spf1 a mx include:_s3.faulty.test -all"',
      '_s3.faulty.test. 60 IN TXT "v=spf1 a -all"',
      // The faulty host's PTR names this host, whose address is another one: not forward-confirmed.
      'elsewhere.faulty.test. 60 IN A 192.0.2.99',
      '_loop.faulty.test. 60 IN TXT "v=spf1 include:_loop2.faulty.test -all"',
      '_loop2.faulty.test. 60 IN TXT "v=spf1 include:_loop.faulty.test -all"',
      '_void.faulty.test. 60 IN TXT "v=spf1 include:_none1.faulty.test include:_none2.faulty.test include:_none3.faulty.test -all"',
      '_redir.faulty.test. 60 IN TXT "v=spf1 mx redirect=_s2.faulty.test"',
    ];

    const ca = await makeTestCa(join(dir, 'ca'));
    const now = Date.now();
    const web = await ca.issue('mta-sts', ['mta-sts.clean.test', 'mta-sts.faulty.test'], new Date(now - 86_400_000), new Date(now + 60 * 86_400_000));
    const policies: Record<string, string> = { 'mta-sts.clean.test': renderMtaStsPolicy(cleanStack), 'mta-sts.faulty.test': renderMtaStsPolicy(faultyStack) };
    https = createServer({ cert: web.cert, key: web.key }, (req, res) => {
      const policy = policies[(req.headers.host ?? '').split(':')[0]!];
      if (req.url !== '/.well-known/mta-sts.txt' || !policy) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(policy);
    });
    const server = https;
    const httpsPort = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));

    const v6 = (ip: string) => `${reversedIp(ip)}.ip6.arpa.`;
    const zones = [
      zone('clean.test', clean.dnsPlan!.records),
      zone('faulty.test', faultyRecords, faultyExtra),
      zone('2.0.192.in-addr.arpa', [], ['10 60 IN PTR mail.clean.test.', '20 60 IN PTR elsewhere.faulty.test.']),
      zone('8.b.d.0.1.0.0.2.ip6.arpa', [], [`${v6(CLEAN.ipv6)} 60 IN PTR mail.clean.test.`]),
      zone('zen.bl.test', [], [`${reversedIp(FAULTY.ipv4)}.zen.bl.test. 60 IN A 127.0.0.2`]),
      zone('refuse.bl.test', [], ['*.refuse.bl.test. 60 IN A 127.255.255.254']),
      zone('dbl.bl.test', []),
    ];
    knot = await startKnot(Object.fromEntries(zones.map((z) => [z.origin, z.text])));
    unbound = await startUnbound(join(dir, 'unbound'), knot.port, zones.map((z) => z.origin));

    const stacksDir = join(dir, 'stacks');
    await mkdir(stacksDir);
    for (const [name, domain] of [['clean', CLEAN.domain], ['faulty', FAULTY.domain]] as const) {
      const config = Object.fromEntries(Object.entries(stackInput(domain)).map(([k, v]) => [`postern:${k}`, v]));
      await writeFile(join(stacksDir, `Pulumi.${name}.yaml`), stringify({ config }));
    }
    const caFile = join(dir, 'ca', 'ca.crt');
    return { dir, clean, faulty, cleanDkim, faultyDkimEd25519: faultyDkim[1]!.publicKey, resolverAddress: `127.0.0.1:${unbound.port}`, httpsPort, caPem: ca.certPem, caFile, stacksDir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

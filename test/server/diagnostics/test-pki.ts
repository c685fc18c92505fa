// A throw-away CA and server certificates made with the openssl command line (openssl ca, so start and end dates
// can be set: expired and nearly expired certificates are made honestly, not mocked).
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface TestCa {
  dir: string;
  certPem: string;
  issue(name: string, sans: string[], notBefore: Date, notAfter: Date): Promise<{ cert: string; key: string; certFile: string; keyFile: string }>;
}

const stamp = (d: Date) => d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';

export async function makeTestCa(dir: string): Promise<TestCa> {
  await mkdir(join(dir, 'newcerts'), { recursive: true });
  await writeFile(join(dir, 'index.txt'), '');
  await writeFile(join(dir, 'serial'), '1000\n');
  await writeFile(join(dir, 'ca.cnf'), [
    '[ ca ]', 'default_ca = test_ca', '[ test_ca ]',
    `database = ${join(dir, 'index.txt')}`, `new_certs_dir = ${join(dir, 'newcerts')}`, `serial = ${join(dir, 'serial')}`,
    'default_md = sha256', 'policy = policy_any', 'unique_subject = no', 'copy_extensions = none',
    '[ policy_any ]', 'commonName = supplied', '',
  ].join('\n'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-subj', '/CN=Postern Doctor Test CA', '-days', '30', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { stdio: 'pipe' });
  const certPem = await readFile(join(dir, 'ca.crt'), 'utf8');
  return {
    dir, certPem,
    async issue(name, sans, notBefore, notAfter) {
      const keyFile = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const certFile = join(dir, `${name}.crt`);
      const ext = join(dir, `${name}.ext`);
      await writeFile(ext, `basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=${sans.map((s) => `DNS:${s}`).join(',')}\n`);
      execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-subj', `/CN=${sans[0]}`, '-keyout', keyFile, '-out', csr], { stdio: 'pipe' });
      execFileSync('openssl', ['ca', '-batch', '-config', join(dir, 'ca.cnf'), '-cert', join(dir, 'ca.crt'), '-keyfile', join(dir, 'ca.key'),
        '-in', csr, '-out', certFile, '-startdate', stamp(notBefore), '-enddate', stamp(notAfter), '-extfile', ext, '-notext'], { stdio: 'pipe' });
      return { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8'), certFile, keyFile };
    },
  };
}

// Certificate files a test can replace (as a renewal does), and the serial a client that sends no SNI sees,
// read with `openssl s_client -noservername` (implicit TLS, or STARTTLS for smtp/pop3).
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSelfSignedCertificate } from '../../src/server/self-signed.ts';

export interface CertFiles { certFile: string; keyFile: string }

/** Writes a fresh self-signed pair over `dir`/cert.pem and key.pem (temp file + rename); returns its serial. */
export async function writeCertFiles(dir: string, names = ['mail.example.com', '127.0.0.1']): Promise<CertFiles & { serial: string }> {
  const pair = await createSelfSignedCertificate({ names, days: 2 });
  const files = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') };
  await writeFile(`${files.keyFile}.tmp`, pair.key, { mode: 0o600 });
  await writeFile(`${files.certFile}.tmp`, pair.cert);
  await rename(`${files.keyFile}.tmp`, files.keyFile);
  await rename(`${files.certFile}.tmp`, files.certFile);
  return { ...files, serial: new X509Certificate(pair.cert).serialNumber };
}

/** The serial of the certificate 127.0.0.1:`port` presents to a client without SNI. */
export function noSniSerial(port: number, starttls?: 'smtp' | 'pop3'): Promise<string> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-noservername', ...(starttls ? ['-starttls', starttls] : [])];
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { timeout: 15_000, maxBuffer: 1024 * 1024 }, (err, stdout) => {
      const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout);
      if (!pem) return reject(new Error(`openssl s_client ${starttls ?? 'tls'} on ${port} showed no certificate${err ? `: ${err.message}` : ''}`));
      resolve(new X509Certificate(pem[0]).serialNumber);
    });
    // End of input: s_client finishes the handshake, prints the certificate and leaves.
    child.stdin?.end();
  });
}

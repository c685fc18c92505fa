// Self-signed certificates for --dev and for tests: ECDSA P-256, made with @peculiar/x509 on node's WebCrypto
// (no openssl process, no network data involved).
// @peculiar/x509 2.x resolves its parts through tsyringe, which needs this polyfill loaded first.
import 'reflect-metadata';
import { webcrypto, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface SelfSignedOptions {
  /** First name is the subject CN; DNS names and IP addresses both go into subjectAltName. */
  names: string[];
  days: number;
  /** Hex serial; random when absent. */
  serialNumber?: string;
  now?: Date;
}

export interface PemPair {
  cert: string;
  key: string;
  serialNumber: string;
}

export async function createSelfSignedCertificate(o: SelfSignedOptions): Promise<PemPair> {
  if (o.names.length === 0) throw new Error('a certificate needs at least one name');
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  // Positive serial: clear the top bit so DER does not read it as negative.
  const serialNumber = o.serialNumber ?? (randomBytes(16)[0]! & 0x7f).toString(16).padStart(2, '0') + randomBytes(15).toString('hex');
  const now = o.now ?? new Date();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber,
    name: `CN=${o.names[0]}`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + o.days * 86_400_000),
    signingAlgorithm: alg,
    keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'],
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(o.names.map((n) => ({ type: isIP(n) ? 'ip' as const : 'dns' as const, value: n }))),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const key = x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
  return { cert: cert.toString('pem') + '\n', key: key + '\n', serialNumber };
}

// Is the certificate on disk due for renewal? Due when it cannot be read, does not cover every configured name,
// or has fewer than `renewBeforeDays` days left. Also checks a freshly issued pair before it replaces the old one.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';

const DAY_MS = 86_400_000;
const MAX_PEM_BYTES = 1024 * 1024;

export type CertificateStatus =
  | { due: false; notAfter: Date; daysLeft: number }
  | { due: true; reason: string; notAfter: Date | null };

export async function certificateStatus(certFile: string, names: readonly string[], renewBeforeDays: number, now: Date): Promise<CertificateStatus> {
  let cert: X509Certificate;
  try {
    const pem = await readFile(certFile);
    if (pem.length > MAX_PEM_BYTES) return { due: true, reason: `${certFile} is larger than ${MAX_PEM_BYTES} bytes`, notAfter: null };
    cert = new X509Certificate(pem);
  } catch (err) {
    return { due: true, reason: `cannot read ${certFile}: ${(err as Error).message}`, notAfter: null };
  }
  const notAfter = new Date(cert.validTo);
  const missing = names.filter((n) => cert.checkHost(n, { wildcards: false }) === undefined);
  if (missing.length > 0) return { due: true, reason: `${certFile} does not cover ${missing.join(', ')}`, notAfter };
  const daysLeft = (notAfter.getTime() - now.getTime()) / DAY_MS;
  if (daysLeft < renewBeforeDays) return { due: true, reason: `${certFile} has ${daysLeft.toFixed(1)} days left (renewal at ${renewBeforeDays})`, notAfter };
  return { due: false, notAfter, daysLeft };
}

/**
 * Checks a new key and certificate chain before they are installed: parseable, the key matches the leaf, every
 * name covered, currently valid. Returns the leaf's expiry; throws naming the problem.
 */
export function checkIssuedPair(keyPem: string, chainPem: string, names: readonly string[], now: Date): Date {
  const leaf = new X509Certificate(chainPem);
  if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('the issued certificate does not match the new private key');
  const missing = names.filter((n) => leaf.checkHost(n, { wildcards: false }) === undefined);
  if (missing.length > 0) throw new Error(`the issued certificate does not cover ${missing.join(', ')}`);
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  // A minute of slack: the CA's clock may run slightly ahead of ours.
  if (notBefore.getTime() > now.getTime() + 60_000 || notAfter.getTime() <= now.getTime()) {
    throw new Error(`the issued certificate is not valid now (${leaf.validFrom} to ${leaf.validTo})`);
  }
  return notAfter;
}

// DKIM selectors and public-key TXT values. Selector names: `<selectorPrefix>-rsa` and `<selectorPrefix>-ed25519`
// (e.g. `postern-rsa._domainkey.example.com`). To rotate keys, change the prefix: new selectors are published
// next to the old ones, which Postern then no longer owns (remove them yourself once mail signed with them has aged).
import type { StackConfig } from './stack-config.ts';

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

export interface DkimSelector { selector: string; algorithm: DkimAlgorithm; rsaBits?: number }

export function dkimSelectors(stack: Pick<StackConfig, 'dkim'>): DkimSelector[] {
  const out: DkimSelector[] = [];
  if (stack.dkim.rsa) out.push({ selector: `${stack.dkim.selectorPrefix}-rsa`, algorithm: 'rsa-sha256', rsaBits: stack.dkim.rsaBits });
  if (stack.dkim.ed25519) out.push({ selector: `${stack.dkim.selectorPrefix}-ed25519`, algorithm: 'ed25519-sha256' });
  return out;
}

// DER prefix of an Ed25519 SubjectPublicKeyInfo; the key's 32 bytes follow it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * The `p=` value for a public key given as PEM, base64 DER SubjectPublicKeyInfo, or already as the p= value.
 * RSA publishes the SPKI (RFC 6376); Ed25519 publishes the raw 32-byte key (RFC 8463). Throws on a key that fits
 * neither, naming the selector.
 */
export function dkimPublicValue(selector: string, algorithm: DkimAlgorithm, publicKey: string): string {
  const b64 = publicKey.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, '').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new Error(`DKIM key for selector ${selector}: expected base64 (PEM or DER SubjectPublicKeyInfo)`);
  const der = Buffer.from(b64, 'base64');
  if (algorithm === 'ed25519-sha256') {
    if (der.length === 32) return der.toString('base64');
    if (der.length === 44 && der.subarray(0, 12).equals(ED25519_SPKI_PREFIX)) return der.subarray(12).toString('base64');
    throw new Error(`DKIM key for selector ${selector}: expected an Ed25519 public key (32 bytes raw or 44 bytes SPKI), found ${der.length} bytes`);
  }
  // An RSA SPKI is a DER SEQUENCE; 2048-bit keys are 294 bytes.
  if (der[0] !== 0x30 || der.length < 160) throw new Error(`DKIM key for selector ${selector}: expected an RSA SubjectPublicKeyInfo, found ${der.length} bytes`);
  return der.toString('base64');
}

export function dkimTxtValue(algorithm: DkimAlgorithm, pValue: string): string {
  return `v=DKIM1; k=${algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519'}; p=${pValue}`;
}

// DKIM signing of submitted mail with every configured key (RSA-2048 and Ed25519 side by side, RFC 8463), by
// mailauth's signer. Keys are read once by the composition root; this module gets the PEM text.
import { readFile } from 'node:fs/promises';
import { createPrivateKey } from 'node:crypto';
import { dkimSign } from 'mailauth';

export interface DkimKey {
  selector: string;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  /** PEM (PKCS#8 or PKCS#1). */
  privateKey: string;
}

/** Reads and checks the configured key files (server/main.ts calls this once at start). */
export async function loadDkimKeys(entries: { selector: string; algorithm: DkimKey['algorithm']; privateKeyFile: string }[]): Promise<DkimKey[]> {
  const keys: DkimKey[] = [];
  for (const e of entries) {
    const pem = await readFile(e.privateKeyFile, 'utf8');
    const key = createPrivateKey(pem);
    const expected = e.algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519';
    if (key.asymmetricKeyType !== expected) {
      throw new Error(`DKIM key ${e.privateKeyFile} (selector ${e.selector}) is ${key.asymmetricKeyType}, expected ${expected} for ${e.algorithm}`);
    }
    keys.push({ selector: e.selector, algorithm: e.algorithm, privateKey: pem });
  }
  return keys;
}

/** DKIM-Signature header lines (CRLF-terminated) for `message`, one per key; '' when there are no keys. */
export async function dkimSignatures(message: Buffer, domain: string, keys: DkimKey[]): Promise<string> {
  if (keys.length === 0) return '';
  const signatureData = keys.map((k) => ({ signingDomain: domain, selector: k.selector, privateKey: k.privateKey, algorithm: k.algorithm }));
  // mailauth signs only what signatureData lists; the top-level fields just satisfy its option type.
  const r = await dkimSign(message, { ...signatureData[0]!, canonicalization: 'relaxed/relaxed', signatureData });
  if (r.errors?.length) throw new Error(`DKIM signing failed: ${r.errors.map((e) => `${e.selector ?? ''}: ${e.err.message}`).join('; ')}`);
  return r.signatures;
}

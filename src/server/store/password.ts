// argon2id password hashes as PHC strings ($argon2id$v=19$m=…,t=…,p=…$salt$hash), with node:crypto's argon2.
import { argon2, argon2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export interface Argon2Cost {
  /** KiB. */
  memory: number;
  passes: number;
  parallelism: number;
  tagLength: number;
}

/** OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane). */
const DEFAULTS: Argon2Cost = { memory: 19456, passes: 2, parallelism: 1, tagLength: 32 };
/** Refuse parameters that would let a config file make one login cost seconds or gigabytes. */
const MAX_MEMORY_KIB = 1024 * 1024;
const MAX_PASSES = 20;
const MAX_PASSWORD_BYTES = 1024;

export interface ParsedPhc {
  memory: number;
  passes: number;
  parallelism: number;
  salt: Buffer;
  hash: Buffer;
}

function b64(buf: Buffer): string {
  return buf.toString('base64').replace(/=+$/, '');
}

export function parsePhc(phc: string): ParsedPhc {
  const m = /^\$argon2id\$v=19\$m=(\d{1,8}),t=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]{11,88})\$([A-Za-z0-9+/]{6,172})$/.exec(phc);
  if (!m) throw new Error('not an argon2id (v=19) PHC string: expected $argon2id$v=19$m=…,t=…,p=…$salt$hash');
  const [memory, passes, parallelism] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (memory > MAX_MEMORY_KIB || passes > MAX_PASSES || passes < 1 || parallelism < 1 || memory < 8 * parallelism) {
    throw new Error(`argon2id parameters out of range (m=${memory}, t=${passes}, p=${parallelism})`);
  }
  const salt = Buffer.from(m[4]!, 'base64');
  const hash = Buffer.from(m[5]!, 'base64');
  if (salt.length < 8 || hash.length < 4) throw new Error('argon2id salt or hash too short');
  return { memory, passes, parallelism, salt, hash };
}

/** A PHC string for `password` (used by `postern users` and dev seeding). */
export function hashPassword(password: string, options: Partial<Argon2Cost> = {}): string {
  const p = { ...DEFAULTS, ...options };
  const salt = randomBytes(16);
  const hash = argon2Sync('argon2id', { message: password, nonce: salt, ...p });
  return `$argon2id$v=19$m=${p.memory},t=${p.passes},p=${p.parallelism}$${b64(salt)}$${b64(hash)}`;
}

/** True when `password` matches `phc`. Runs off the main thread (libuv pool). */
export async function verifyPasswordHash(phc: string, password: string): Promise<boolean> {
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return false;
  const p = parsePhc(phc);
  const derived = await new Promise<Buffer>((resolve, reject) => {
    argon2('argon2id', { message: password, nonce: p.salt, memory: p.memory, passes: p.passes,
      parallelism: p.parallelism, tagLength: p.hash.length }, (err, key) => (err ? reject(err) : resolve(key)));
  });
  return timingSafeEqual(derived, p.hash);
}

/**
 * Verified against when the account does not exist, so timing does not tell. A fixed string with the default
 * cost (no password matches a random-looking tag), not computed at load: that would cost 19 MiB at start.
 */
export const DUMMY_HASH = `$argon2id$v=19$m=${DEFAULTS.memory},t=${DEFAULTS.passes},p=${DEFAULTS.parallelism}$${b64(randomBytes(16))}$${b64(randomBytes(DEFAULTS.tagLength))}`;

// Plain-HTTP port 80: answers ACME HTTP-01 challenges from a folder in the state dir and redirects everything
// else to HTTPS. The token comes from the network, so it is checked against the base64url alphabet (RFC 8555
// §8.3) before it names a file, and the file is opened without following symlinks.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { send, sendError, requestPath } from './respond.ts';
import type { ResponseOptions } from './respond.ts';

/** Folder under the state dir where certificate renewal writes `<token>` files holding key authorizations. */
export const ACME_CHALLENGE_DIRNAME = 'acme-challenge';
export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;
/** A key authorization is token + '.' + a 43-char thumbprint; anything bigger is not one. */
const MAX_CHALLENGE_BYTES = 1024;
const HOST = /^(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}$|^\[[0-9A-Fa-f:.]{2,45}\]$/;

export function acmeChallengeDir(stateDir: string): string {
  return join(stateDir, ACME_CHALLENGE_DIRNAME);
}

export function isValidAcmeToken(token: string): boolean {
  return TOKEN.test(token);
}

async function readChallenge(dir: string, token: string): Promise<Buffer | null> {
  let fh;
  try {
    fh = await open(join(dir, token), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > MAX_CHALLENGE_BYTES) return null;
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await fh.read(buf, 0, st.size, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export interface PlainHttpDeps {
  stateDir: string;
  /** Canonical host name, used when the request's Host header is missing or malformed. */
  hostname: string;
  /** Bound HTTPS port, or null when HTTPS is off (then there is nowhere to redirect). */
  httpsPort: () => number | null;
}

/** Handles one request on the plain-HTTP listener. */
export async function handlePlainHttp(deps: PlainHttpDeps, req: IncomingMessage, res: ServerResponse, opts: ResponseOptions): Promise<void> {
  const path = requestPath(req);
  if (path === null) return sendError(req, res, opts, 400, 'Bad Request');
  if (path.startsWith(ACME_CHALLENGE_PREFIX)) {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(req, res, opts, 405, 'Method Not Allowed', { allow: 'GET, HEAD' });
    const token = path.slice(ACME_CHALLENGE_PREFIX.length);
    if (!isValidAcmeToken(token)) return sendError(req, res, opts, 400, 'Bad Request: invalid ACME token');
    const body = await readChallenge(acmeChallengeDir(deps.stateDir), token);
    if (body === null) return sendError(req, res, opts, 404, 'Not Found');
    return send(req, res, opts, 200, 'application/octet-stream', body);
  }
  const httpsPort = deps.httpsPort();
  if (httpsPort === null) return sendError(req, res, opts, 404, 'Not Found');
  const hostHeader = req.headers.host ?? '';
  const m = /^(.*?)(?::\d{1,5})?$/.exec(hostHeader);
  const host = m?.[1] && HOST.test(m[1]) ? m[1] : deps.hostname;
  const target = `https://${host}${httpsPort === 443 ? '' : `:${httpsPort}`}${req.url ?? '/'}`;
  return send(req, res, opts, 301, 'text/plain; charset=utf-8', `Moved to ${target}\n`, { location: target });
}

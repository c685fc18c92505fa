// Writing responses: every answer carries the same security headers, and HEAD gets headers only.
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface ResponseOptions {
  /** Strict-Transport-Security; off on plain HTTP and in --dev (no HSTS pinning of localhost). */
  hsts: boolean;
  /** Set while the server drains, so keep-alive clients reconnect elsewhere instead of reusing this socket. */
  closing: boolean;
}

const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'cross-origin-resource-policy': 'same-origin',
};

export function send(
  req: IncomingMessage,
  res: ServerResponse,
  opts: ResponseOptions,
  status: number,
  contentType: string,
  body: string | Buffer,
  extra: Record<string, string> = {},
): void {
  const data = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const headers: Record<string, string | number> = {
    ...SECURITY_HEADERS,
    'content-type': contentType,
    'content-length': data.length,
    'cache-control': 'no-store',
    ...extra,
  };
  if (opts.hsts) headers['strict-transport-security'] = 'max-age=31536000';
  if (opts.closing) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(req.method === 'HEAD' ? undefined : data);
}

export function sendError(req: IncomingMessage, res: ServerResponse, opts: ResponseOptions, status: number, message: string, extra: Record<string, string> = {}): void {
  send(req, res, opts, status, 'text/plain; charset=utf-8', `${status} ${message}\n`, extra);
}

/**
 * The path of the request target, without query; null when the target is not a plain origin-form path of
 * printable ASCII (absolute-form, '*', control bytes), which no client of ours sends.
 */
export function requestPath(req: IncomingMessage): string | null {
  const url = req.url ?? '';
  if (!/^\/[\x21-\x7e]*$/.test(url)) return null;
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export class BodyTooLargeError extends Error {}

/** Reads a request body of at most `max` bytes; rejects with BodyTooLargeError beyond that. */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) {
      reject(new BodyTooLargeError(`body of ${declared} bytes exceeds ${max}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.pause();
        reject(new BodyTooLargeError(`body exceeds ${max} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// A small HTTPS GET for the checks (MTA-STS policy): certificate verified against the system roots or an injected
// CA, no redirects (RFC 8461 §3.3 forbids following them), a body cap and a deadline.
import { request } from 'node:https';

export interface FetchedText {
  status: number;
  contentType: string;
  body: string;
}

export type TextFetcher = (url: string) => Promise<FetchedText>;

export interface FetchOptions {
  /** Trusted roots (PEM); the system's when omitted. */
  ca?: string | Buffer;
  timeoutMs?: number;
  maxBytes?: number;
  /** Connect here instead of the URL's host (tests); the URL's host is still the TLS name and Host header. */
  connectTo?: { host: string; port: number };
}

export function httpsFetcher(options: FetchOptions = {}): TextFetcher {
  const maxBytes = options.maxBytes ?? 64 * 1024;
  return (url) => new Promise((resolve, reject) => {
    const u = new URL(url);
    if (u.protocol !== 'https:') { reject(new Error(`refusing to fetch ${url}: https only`)); return; }
    const req = request({
      host: options.connectTo?.host ?? u.hostname,
      port: options.connectTo?.port ?? (u.port ? Number(u.port) : 443),
      servername: u.hostname,
      path: `${u.pathname}${u.search}`,
      headers: { host: u.host, 'user-agent': 'postern-doctor' },
      method: 'GET',
      ...(options.ca ? { ca: options.ca } : {}),
      timeout: options.timeoutMs ?? 10_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) { req.destroy(new Error(`${url} answered with more than ${maxBytes} bytes`)); return; }
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url} did not answer within ${options.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end();
  });
}

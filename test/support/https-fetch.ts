// A real HTTPS/HTTP client for tests: node's own client on a fresh connection per request (no pooling, so
// each request sees the certificate the server presents now), trusting the given CA.
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';

export interface FetchResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Serial number of the server certificate (https only). */
  serial?: string;
}

export interface FetchOptions {
  method?: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  ca?: Buffer | string;
  servername?: string;
}

export function fetchUrl(url: string, o: FetchOptions = {}): Promise<FetchResult> {
  const u = new URL(url);
  const isHttps = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const options = {
      method: o.method ?? 'GET', host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port, path: u.pathname + u.search,
      headers: { ...(o.headers ?? {}), ...(o.body !== undefined ? { 'content-length': String(Buffer.byteLength(o.body)) } : {}) },
      agent: false,
      ...(isHttps ? { ca: o.ca, servername: o.servername } : {}),
    };
    const req = (isHttps ? httpsRequest : httpRequest)(options, (res) => {
      const serial = isHttps ? (res.socket as TLSSocket).getPeerCertificate().serialNumber : undefined;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), serial }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

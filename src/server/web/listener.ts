// One HTTP or HTTPS listener with the lifecycle main.ts expects: bind, count connections per client address,
// and on stop refuse new connections, let in-flight requests finish (answering them with Connection: close),
// and cut whatever is left at the deadline.
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Listening } from '../service.ts';
import { sendError } from './respond.ts';
import type { ResponseOptions } from './respond.ts';

export interface ListenerOptions {
  scheme: 'http' | 'https';
  /** A connection whose first request (after the TLS handshake, for https) has not arrived by then is closed. */
  firstRequestTimeoutMs: number;
  host: string;
  port: number;
  maxConnectionsPerIp: number;
  hsts: boolean;
  logger: Logger;
  handle(req: IncomingMessage, res: ServerResponse, opts: ResponseOptions): void | Promise<void>;
}

export interface HttpListener {
  start(): Promise<Listening>;
  stop(deadline: number): Promise<void>;
  /** Bound port once started. */
  port(): number | null;
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export function createHttpListener(server: HttpServer, o: ListenerOptions): HttpListener {
  const sockets = new Set<Socket>();
  const perIp = new Map<string, number>();
  /** Raw sockets that have not sent a request yet, by remote address and port (a TLS socket shares both). */
  const awaitingFirstRequest = new Map<string, Socket>();
  /** Their TLS sockets once the handshake is done (same key). */
  const tlsSockets = new Map<string, Socket>();
  let closing = false;
  let boundPort: number | null = null;

  server.on('connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? '?';
    const n = (perIp.get(ip) ?? 0) + 1;
    if (n > o.maxConnectionsPerIp || closing) {
      o.logger.warn({ ip, scheme: o.scheme }, closing ? 'connection during shutdown dropped' : 'too many connections from one address; dropped');
      socket.destroy();
      return;
    }
    perIp.set(ip, n);
    sockets.add(socket);
    // node applies its header timeout only once request bytes arrive, and https.Server replaces its own
    // handshake timeout with the socket idle timeout, so a client that connects and stalls (before or after
    // the TLS handshake) gets a deadline here: it must not hold a connection slot for long.
    const key = `${ip}|${socket.remotePort}`;
    awaitingFirstRequest.set(key, socket);
    const firstRequestTimer = setTimeout(() => {
      if (awaitingFirstRequest.get(key) !== socket) return;
      o.logger.debug({ ip, scheme: o.scheme }, 'no request in time; closing');
      // Once TLS took the connection over, closing the raw socket alone does not end it.
      tlsSockets.get(key)?.destroy();
      socket.destroy();
    }, o.firstRequestTimeoutMs);
    firstRequestTimer.unref();
    socket.once('close', () => {
      clearTimeout(firstRequestTimer);
      if (awaitingFirstRequest.get(key) === socket) awaitingFirstRequest.delete(key);
      tlsSockets.delete(key);
      sockets.delete(socket);
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left <= 0) perIp.delete(ip);
      else perIp.set(ip, left);
    });
  });
  server.on('secureConnection', (tlsSocket: Socket) => {
    const key = `${tlsSocket.remoteAddress ?? '?'}|${tlsSocket.remotePort}`;
    if (awaitingFirstRequest.has(key)) tlsSockets.set(key, tlsSocket);
  });
  // A client that breaks off a TLS handshake or sends garbage: log at debug, never crash.
  server.on('tlsClientError', (err: Error) => o.logger.debug({ err: err.message }, 'tls handshake failed'));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    o.logger.debug({ err: err.message, code: err.code }, 'bad http request');
    if (!socket.writable) return socket.destroy();
    // Node's own answers for the limits it enforces; keep them, they tell the client what went wrong.
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large'
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    // Closed once the answer is written: a TLS socket that is only ended can linger half-open.
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
  });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const connKey = `${req.socket.remoteAddress ?? '?'}|${req.socket.remotePort}`;
    awaitingFirstRequest.delete(connKey);
    tlsSockets.delete(connKey);
    const started = process.hrtime.bigint();
    // `closing` is read when the response is written, so a request that began before stop() still tells
    // its client to go away.
    const opts: ResponseOptions = { hsts: o.hsts, get closing() { return closing; } };
    res.once('finish', () => {
      o.logger.info({
        scheme: o.scheme, method: req.method, path: (req.url ?? '').slice(0, 200), status: res.statusCode,
        ip: req.socket.remoteAddress, ms: Number(process.hrtime.bigint() - started) / 1e6,
      }, 'http request');
    });
    Promise.resolve()
      .then(() => o.handle(req, res, opts))
      .catch((err: unknown) => {
        o.logger.error({ err: (err as Error).message, path: req.url }, 'http handler failed');
        if (!res.headersSent) sendError(req, res, { ...opts, closing: true }, 500, 'Internal Server Error');
        else res.destroy();
      });
  });

  return {
    port: () => boundPort,
    start() {
      return new Promise((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        server.once('error', onError);
        server.listen({ host: o.host, port: o.port }, () => {
          server.off('error', onError);
          server.on('error', (err) => o.logger.error({ err: err.message, scheme: o.scheme }, 'listener error'));
          const addr = server.address();
          boundPort = addr && typeof addr === 'object' ? addr.port : o.port;
          resolve({ scheme: o.scheme, url: `${o.scheme}://${urlHost(o.host)}:${boundPort}` });
        });
      });
    },
    stop(deadline) {
      closing = true;
      return new Promise((resolve) => {
        if (!server.listening) {
          resolve();
          return;
        }
        const timer = setTimeout(() => {
          if (sockets.size) o.logger.warn({ scheme: o.scheme, open: sockets.size }, 'drain deadline reached; closing open connections');
          for (const s of sockets) s.destroy();
        }, Math.max(0, deadline - Date.now()));
        // close() stops accepting at once and calls back when the last connection is gone; idle keep-alive
        // connections are closed now, busy ones after their response (sent with Connection: close).
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
        // Connections that never sent a request (e.g. mid-handshake) are not "idle" to node: close them too.
        for (const s of sockets) if (s.bytesRead === 0) s.destroy();
      });
    },
  };
}

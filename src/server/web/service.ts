// The web service: HTTPS (documents for mail clients and MTAs, health) and plain HTTP (ACME HTTP-01 and a
// redirect to HTTPS), as one Service with up to two listeners.
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { ServerContext, ServiceFactory } from '../context.ts';
import type { Listening, Service } from '../service.ts';
import { followReloads } from '../tls.ts';
import { handlePlainHttp } from './acme-challenge.ts';
import { documentRoutes } from './documents.ts';
import { DEFAULT_WEB_LIMITS } from './limits.ts';
import type { WebLimits } from './limits.ts';
import { createHttpListener } from './listener.ts';
import type { HttpListener } from './listener.ts';
import { requestPath, sendError } from './respond.ts';
import type { ResponseOptions } from './respond.ts';

function serverOptions(l: WebLimits) {
  return {
    maxHeaderSize: l.maxHeaderBytes,
    headersTimeout: l.headersTimeoutMs,
    requestTimeout: l.requestTimeoutMs,
    keepAliveTimeout: l.keepAliveTimeoutMs,
    connectionsCheckingInterval: l.timeoutCheckIntervalMs,
    requireHostHeader: true,
  };
}

function applyLimits(server: import('node:http').Server, l: WebLimits): void {
  server.maxConnections = l.maxConnections;
  server.maxRequestsPerSocket = l.maxRequestsPerSocket;
  server.setTimeout(l.socketIdleTimeoutMs);
}

/** The web service factory; pass limits to override the defaults (tests use short timeouts). */
export function createWebService(overrides: Partial<WebLimits> = {}): ServiceFactory {
  const limits: WebLimits = { ...DEFAULT_WEB_LIMITS, ...overrides };
  return (ctx: ServerContext): Service | null => {
    const httpsPort = ctx.listenPort('https');
    const httpPort = ctx.listenPort('http');
    if (httpsPort === null && httpPort === null) return null;
    const logger = ctx.logger.child({ service: 'web' });
    const host = ctx.config.listenAddress;
    const listeners: HttpListener[] = [];
    let httpsListener: HttpListener | null = null;

    if (httpsPort !== null) {
      const route = documentRoutes({ config: ctx.config, health: () => ctx.health(), maxBodyBytes: limits.maxBodyBytes });
      const server = createHttpsServer({
        ...serverOptions(limits),
        ...ctx.tls.pem(),
        SNICallback: ctx.tls.sniCallback,
        handshakeTimeout: limits.handshakeTimeoutMs,
        minVersion: 'TLSv1.2',
      });
      applyLimits(server, limits);
      // Clients without SNI (any client connecting by IP address) get the default context: keep it current.
      followReloads(ctx.tls, { setSecureContext: (pem) => server.setSecureContext({ ...pem, minVersion: 'TLSv1.2' }) });
      httpsListener = createHttpListener(server, {
        scheme: 'https', host, port: httpsPort, maxConnectionsPerIp: ctx.config.limits.maxConnectionsPerIp,
        firstRequestTimeoutMs: limits.handshakeTimeoutMs + limits.headersTimeoutMs,
        hsts: !ctx.config.dev, logger,
        handle(req: IncomingMessage, res: ServerResponse, opts: ResponseOptions) {
          const path = requestPath(req);
          if (path === null) return sendError(req, res, opts, 400, 'Bad Request');
          const r = route(path);
          if (!r) return sendError(req, res, opts, 404, 'Not Found');
          if (!r.methods.includes(req.method ?? '')) return sendError(req, res, opts, 405, 'Method Not Allowed', { allow: r.methods.join(', ') });
          return r.handle(req, res, opts);
        },
      });
      listeners.push(httpsListener);
    }

    if (httpPort !== null) {
      const server = createHttpServer(serverOptions(limits));
      applyLimits(server, limits);
      const https = httpsListener;
      listeners.push(createHttpListener(server, {
        scheme: 'http', host, port: httpPort, maxConnectionsPerIp: ctx.config.limits.maxConnectionsPerIp,
        firstRequestTimeoutMs: limits.headersTimeoutMs,
        hsts: false, logger,
        handle: (req, res, opts) => handlePlainHttp({
          stateDir: ctx.stateDir, hostname: ctx.config.hostname, httpsPort: () => https?.port() ?? null,
        }, req, res, opts),
      }));
    }

    const started: HttpListener[] = [];
    return {
      name: 'web',
      async start(): Promise<Listening[]> {
        const out: Listening[] = [];
        // In order: the HTTP redirect needs the bound HTTPS port.
        for (const l of listeners) {
          out.push(await l.start());
          started.push(l);
        }
        return out;
      },
      async stop(deadline: number): Promise<void> {
        await Promise.all(started.map((l) => l.stop(deadline)));
      },
    };
  };
}

export const webService: ServiceFactory = createWebService();

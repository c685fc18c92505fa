// The IMAP listeners as a Service: imap:// (143, STARTTLS) and imaps:// (993, implicit TLS). Counts
// connections per IP address, hands each connection to a Session, and drains sessions on stop.
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { MailStore } from '../store/types.ts';
import type { Listening, Service, TlsSource } from '../service.ts';
import { DEFAULT_IMAP_LIMITS, type ImapLimits } from './limits.ts';
import { Session } from './session.ts';

export interface ImapServiceOptions {
  store: MailStore;
  tls: TlsSource;
  logger: Logger;
  /** Names the server in the greeting. */
  hostname: string;
  host: string;
  /** null: listener off; 0: an ephemeral port. */
  imapPort: number | null;
  imapsPort: number | null;
  limits?: Partial<ImapLimits>;
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export function createImapService(opts: ImapServiceOptions): Service {
  const limits: ImapLimits = { ...DEFAULT_IMAP_LIMITS, ...opts.limits };
  const log = opts.logger.child({ service: 'imap' });
  const servers: Server[] = [];
  const sessions = new Set<Session>();
  const sockets = new Set<Socket>();
  const perIp = new Map<string, number>();
  let stopping = false;

  const deps = { store: opts.store, tls: opts.tls, limits, logger: log, hostname: opts.hostname };

  function release(ip: string): void {
    const n = (perIp.get(ip) ?? 1) - 1;
    if (n <= 0) perIp.delete(ip);
    else perIp.set(ip, n);
  }

  async function serve(raw: Socket, implicitTls: boolean): Promise<void> {
    const ip = raw.remoteAddress ?? '?';
    sockets.add(raw);
    const count = (perIp.get(ip) ?? 0) + 1;
    perIp.set(ip, count);
    raw.once('close', () => {
      sockets.delete(raw);
      release(ip);
    });
    raw.on('error', () => { /* reported by the session or irrelevant after close */ });
    let socket: Socket = raw;
    if (implicitTls) {
      const tls = new TLSSocket(raw, { isServer: true, secureContext: opts.tls.current(), SNICallback: opts.tls.sniCallback });
      tls.on('error', (err) => {
        log.debug({ err: err.message, ip }, 'imaps handshake failed');
        raw.destroy();
      });
      const timer = setTimeout(() => raw.destroy(), limits.preAuthTimeoutMs);
      const secured = await new Promise<boolean>((resolve) => {
        tls.once('secure', () => resolve(true));
        tls.once('close', () => resolve(false));
      });
      clearTimeout(timer);
      if (!secured) return;
      socket = tls;
    }
    if (count > limits.maxConnectionsPerIp || stopping) {
      const why = stopping ? 'Server shutting down' : 'Too many connections from your address';
      socket.end(`* BYE [${stopping ? 'UNAVAILABLE' : 'LIMIT'}] ${why}\r\n`);
      setTimeout(() => raw.destroy(), 2000).unref();
      return;
    }
    const session = new Session(socket, implicitTls, deps);
    sessions.add(session);
    const caps = session.capabilities().join(' ');
    await session.run(`* OK [CAPABILITY ${caps}] ${opts.hostname} Postern IMAP ready\r\n`);
    await session.whenClosed();
    sessions.delete(session);
  }

  function listen(port: number, implicitTls: boolean): Promise<Listening> {
    const server = createServer({ pauseOnConnect: false, noDelay: true }, (sock) => {
      serve(sock, implicitTls).catch((err: unknown) => {
        log.error({ err }, 'imap connection failed');
        sock.destroy();
      });
    });
    server.on('error', (err) => log.error({ err: err.message }, 'imap listener error'));
    servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, opts.host, () => {
        server.off('error', reject);
        const addr = server.address();
        const p = typeof addr === 'object' && addr ? addr.port : port;
        const scheme = implicitTls ? 'imaps' : 'imap';
        resolve({ scheme, url: `${scheme}://${urlHost(opts.host)}:${p}` });
      });
    });
  }

  return {
    name: 'imap',
    async start() {
      const out: Listening[] = [];
      if (opts.imapPort !== null) out.push(await listen(opts.imapPort, false));
      if (opts.imapsPort !== null) out.push(await listen(opts.imapsPort, true));
      log.info({ listeners: out.map((l) => l.url) }, 'imap listening');
      return out;
    },
    async stop(deadline) {
      stopping = true;
      const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const s of sessions) s.shutdown();
      const waitAll = Promise.all([...sessions].map((s) => s.whenClosed()));
      const left = Math.max(0, deadline - Date.now());
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([waitAll, new Promise<void>((r) => { timer = setTimeout(r, left); })]);
      clearTimeout(timer);
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

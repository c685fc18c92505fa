// The POP3 listeners: 110 (STLS offered, credentials only after it) and 995 (implicit TLS). Connections are
// capped per address and in total. stop() refuses new connections and tells every session `-ERR [SYS/TEMP]`
// once its current command is answered (at once when it is between commands); whatever is still open at the
// deadline is cut. Either way no deletions are applied: only a client's own QUIT applies them.
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { Listening, Service, TlsSource } from '../service.ts';
import type { MailStore } from '../store/types.ts';
import { followReloads } from '../tls.ts';
import { DEFAULT_POP3_LIMITS, Pop3Session, SHUTDOWN_REPLY, type Pop3Limits } from './session.ts';

export interface Pop3ServiceOptions {
  store: MailStore;
  tls: TlsSource;
  logger: Logger;
  hostname: string;
  listenAddress: string;
  /** null = off, 0 = any free port. */
  ports: { pop3: number | null; pop3s: number | null };
  maxConnectionsPerIp: number;
  maxConnections?: number;
  limits?: Partial<Pop3Limits>;
}

export function createPop3Service(o: Pop3ServiceOptions): Service {
  const limits: Pop3Limits = { ...DEFAULT_POP3_LIMITS, ...o.limits };
  const maxConnections = o.maxConnections ?? 1000;
  const log = o.logger;
  const servers: Array<{ scheme: 'pop3' | 'pop3s'; server: net.Server; port: number }> = [];
  const sessions = new Set<Pop3Session>();
  const perIp = new Map<string, number>();
  let stopping = false;
  let drained: (() => void) | null = null;
  /** Every accepted TCP connection, so stop() can cut what is left at the deadline. */
  const rawSockets = new Set<net.Socket>();
  /** Raw sockets of 995 whose TLS handshake has not finished, by remote address and port. */
  const handshaking = new Map<string, net.Socket>();
  const peerKey = (s: net.Socket) => `${s.remoteAddress}|${s.remotePort}`;

  const accept = (socket: net.Socket, implicitTls: boolean) => {
    const ip = socket.remoteAddress ?? '?';
    if (implicitTls) handshaking.delete(peerKey(socket));
    if (stopping) {
      // A TLS handshake that began before stop() ends here.
      socket.on('error', () => undefined);
      socket.end(`${SHUTDOWN_REPLY}\r\n`);
      return;
    }
    const n = perIp.get(ip) ?? 0;
    if (n >= o.maxConnectionsPerIp || sessions.size >= maxConnections) {
      socket.on('error', () => undefined);
      socket.end('-ERR [SYS/TEMP] too many connections\r\n');
      return;
    }
    perIp.set(ip, n + 1);
    const session: Pop3Session = new Pop3Session({
      socket, implicitTls, tls: o.tls, store: o.store, hostname: o.hostname, limits, logger: log,
      onClose: () => {
        sessions.delete(session);
        const left = (perIp.get(ip) ?? 1) - 1;
        if (left <= 0) perIp.delete(ip); else perIp.set(ip, left);
        if (sessions.size === 0) drained?.();
      },
    });
    sessions.add(session);
  };

  if (o.ports.pop3 !== null) servers.push({ scheme: 'pop3', port: o.ports.pop3, server: net.createServer((s) => accept(s, false)) });
  if (o.ports.pop3s !== null) {
    const server = tls.createServer({ SNICallback: o.tls.sniCallback, ...o.tls.pem() }, (s) => accept(s, true));
    // A failed handshake never reaches accept(); it must not crash the process.
    server.on('tlsClientError', (err) => log.debug({ err: err.message }, 'pop3s handshake failed'));
    // Clients that send no SNI (an IP address) get the default context: keep it current across renewals.
    // (STLS on 110 takes tls.current() at each upgrade.)
    followReloads(o.tls, server);
    server.on('connection', (raw: net.Socket) => {
      const key = peerKey(raw);
      handshaking.set(key, raw);
      raw.once('close', () => { if (handshaking.get(key) === raw) handshaking.delete(key); });
    });
    servers.push({ scheme: 'pop3s', port: o.ports.pop3s, server });
  }
  for (const s of servers) {
    s.server.on('error', (err) => log.error({ err: err.message, scheme: s.scheme }, 'pop3 listener error'));
    s.server.on('connection', (raw: net.Socket) => {
      rawSockets.add(raw);
      raw.once('close', () => rawSockets.delete(raw));
    });
  }

  return {
    name: 'pop3',
    async start(): Promise<Listening[]> {
      const out: Listening[] = [];
      for (const s of servers) {
        await new Promise<void>((resolve, reject) => {
          s.server.once('error', reject);
          s.server.listen(s.port, o.listenAddress, () => { s.server.off('error', reject); resolve(); });
        });
        const addr = s.server.address() as net.AddressInfo;
        const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
        out.push({ scheme: s.scheme, url: `${s.scheme}://${host}:${addr.port}` });
      }
      return out;
    },
    async stop(deadline: number): Promise<void> {
      stopping = true;
      const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.server.close(() => resolve()))));
      // A connection still in its TLS handshake has no session to finish (node would wait up to 120 s for it).
      for (const raw of handshaking.values()) raw.destroy();
      const allEnded = new Promise<void>((resolve) => { drained = resolve; });
      for (const s of [...sessions]) s.shutDown();
      let timer: NodeJS.Timeout | undefined;
      const atDeadline = new Promise<void>((r) => { timer = setTimeout(r, Math.max(0, deadline - Date.now())); });
      if (sessions.size > 0) await Promise.race([allEnded, atDeadline]);
      for (const s of [...sessions]) s.close();
      // Sessions told to go have ended their side; a client that keeps its side open is cut at the deadline.
      await Promise.race([closed, atDeadline]);
      clearTimeout(timer);
      for (const raw of rawSockets) raw.destroy();
      await closed;
    },
  };
}

// Scripted SMTP peers for the queue tests, on smtp-server: a remote MX whose RCPT answers follow a script
// (4xx then 2xx, or 5xx), and a smarthost that requires STARTTLS and AUTH.
import { SMTPServer } from 'smtp-server';
import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';

export interface ReceivedMessage {
  from: string;
  to: string[];
  data: string;
  secure: boolean;
  user?: string;
  /** With `dsn`: MAIL FROM's RET/ENVID and each RCPT's NOTIFY/ORCPT, as smtp-server parsed them. */
  dsn?: { ret: string | null; envid: string | null; rcpts: { address: string; notify?: string[]; orcpt?: string }[] };
}

export interface ScriptedRemote {
  received: ReceivedMessage[];
  /** Every RCPT TO seen, with the reply given. */
  rcpts: { address: string; reply: string }[];
  logins: { user: string; ok: boolean }[];
  port: number;
  close(): Promise<void>;
}

export interface ScriptOptions {
  host: string;
  port: number;
  key: Buffer;
  cert: Buffer;
  /** Reply for the n-th RCPT (0-based) to `address`; undefined = accept. `"451 4.7.1 try later"` style. */
  rcptReply?: (address: string, n: number) => string | undefined;
  /** Require AUTH (relay): only this user and password. */
  auth?: { user: string; pass: string };
  /** TLS from the first byte (port 465) instead of STARTTLS. */
  implicitTls?: boolean;
  /** Wait this long before answering the end of DATA (a slow remote). */
  dataDelayMs?: number;
  /** SIZE advertised in EHLO (default 10 MiB). */
  size?: number;
  /** Announce DSN (RFC 3461) and record the parameters received. */
  dsn?: boolean;
}

function recordedDsn(session: SMTPServerSession): NonNullable<ReceivedMessage['dsn']> {
  const d = (session.envelope as { dsn?: { ret: string | null; envid: string | null } }).dsn;
  return {
    ret: d?.ret ?? null, envid: d?.envid ?? null,
    rcpts: session.envelope.rcptTo.map((r) => ({ address: r.address, ...(r as { dsn?: { notify?: string[]; orcpt?: string } }).dsn })),
  };
}

export async function startScriptedRemote(opts: ScriptOptions): Promise<ScriptedRemote> {
  const received: ReceivedMessage[] = [];
  const rcpts: ScriptedRemote['rcpts'] = [];
  const logins: ScriptedRemote['logins'] = [];
  const seen = new Map<string, number>();
  const options: SMTPServerOptions = {
    key: opts.key,
    cert: opts.cert,
    secure: Boolean(opts.implicitTls),
    name: 'remote.test',
    size: opts.size ?? 10 * 1024 * 1024,
    disabledCommands: opts.auth ? [] : ['AUTH'],
    authOptional: !opts.auth,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    hideDSN: !opts.dsn,
    // close() waits this long for open sessions (a stalled one in the stop() test) before cutting them.
    closeTimeout: 200,
    onAuth(auth, session, cb) {
      const ok = Boolean(opts.auth && session.secure && auth.username === opts.auth.user && auth.password === opts.auth.pass);
      logins.push({ user: auth.username ?? '', ok });
      if (!ok) return cb(Object.assign(new Error('Authentication failed'), { responseCode: 535 }));
      cb(null, { user: auth.username });
    },
    onRcptTo(address, _session, cb) {
      const n = seen.get(address.address) ?? 0;
      seen.set(address.address, n + 1);
      const reply = opts.rcptReply?.(address.address, n);
      rcpts.push({ address: address.address, reply: reply ?? '250 OK' });
      if (!reply) return cb();
      const code = Number(reply.slice(0, 3));
      cb(Object.assign(new Error(reply.slice(4)), { responseCode: code }));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks).toString(),
          secure: session.secure,
          ...(typeof session.user === 'string' ? { user: session.user } : {}),
          ...(opts.dsn ? { dsn: recordedDsn(session) } : {}),
        });
        if (opts.dataDelayMs) setTimeout(() => cb(), opts.dataDelayMs).unref();
        else cb();
      });
    },
  };
  const server = new SMTPServer(options);
  server.on('error', () => { /* a client reset must not crash the test process */ });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.server.address() as { port: number };
  return {
    received, rcpts, logins, port: addr.port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface BrokenTlsRemote {
  /** Messages received (in plaintext, after the client gave up on TLS). */
  received: string[];
  starttlsAttempts: number;
  close(): Promise<void>;
}

/**
 * A remote MX that offers STARTTLS but answers the handshake with garbage (a broken TLS stack or a middlebox),
 * and otherwise accepts mail in plaintext. Raw sockets: no SMTP library would do this.
 */
export async function startBrokenTlsRemote(host: string, port: number): Promise<BrokenTlsRemote> {
  const { createServer } = await import('node:net');
  const state: BrokenTlsRemote = { received: [], starttlsAttempts: 0, close: async () => {} };
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    let inData = false;
    let data = '';
    socket.write('220 broken.test ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      if (buf.length > 1 << 20) { socket.destroy(); return; }
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          data += buf.slice(0, end + 2);
          buf = buf.slice(end + 5);
          inData = false;
          state.received.push(data);
          data = '';
          socket.write('250 2.0.0 queued\r\n');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-broken.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n');
        else if (verb === 'STAR') {
          state.starttlsAttempts++;
          socket.write('220 2.0.0 go ahead\r\nthis is not a TLS server hello\r\n');
          setTimeout(() => socket.destroy(), 50);
          return;
        } else if (verb === 'MAIL' || verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP') socket.write('250 2.0.0 ok\r\n');
        else if (verb === 'DATA') { inData = true; socket.write('354 go on\r\n'); }
        else if (verb === 'QUIT') { socket.end('221 2.0.0 bye\r\n'); return; }
        else socket.write('502 5.5.2 not implemented\r\n');
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  state.close = () => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  return state;
}

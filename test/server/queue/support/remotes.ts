// Scripted SMTP peers for the queue tests, on smtp-server: a remote MX whose RCPT answers follow a script
// (4xx then 2xx, or 5xx), and a smarthost that requires STARTTLS and AUTH.
import { SMTPServer } from 'smtp-server';
import type { SMTPServerOptions } from 'smtp-server';

export interface ReceivedMessage {
  from: string;
  to: string[];
  data: string;
  secure: boolean;
  user?: string;
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
        });
        if (opts.dataDelayMs) setTimeout(() => cb(), opts.dataDelayMs);
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

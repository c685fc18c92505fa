// One outbound SMTP session on nodemailer's SMTPConnection, with per-recipient outcomes. A session can carry
// several transactions (connection reuse per domain): after a refused transaction it is reset, after a
// connection-level error it is closed.
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import type { SecureContextOptions } from 'node:tls';
import type { RecipientDsn } from './api.ts';
import { decodeXtext, isOrcpt } from './xtext.ts';

export interface OutboundTarget {
  /** Host name: logs, SNI and certificate checks. */
  hostname: string;
  /** Where to connect: an IP address (MX delivery) or a host name (relay). */
  address: string;
  port: number;
  /**
   * `opportunistic`: STARTTLS whenever offered, certificate not checked (RFC 7435).
   * `required`: STARTTLS must succeed and the certificate must be valid for `hostname` (MTA-STS enforce, relay).
   * `implicit`: TLS from the first byte, certificate checked (relay on 465).
   * `plaintext`: STARTTLS not attempted: only for a retry after a failed opportunistic handshake.
   */
  tls: 'opportunistic' | 'required' | 'implicit' | 'plaintext';
  auth?: { user: string; pass: string };
}

export interface OutboundClientOptions {
  /** Our host name, sent in EHLO. */
  heloName: string;
  /** Extra trusted CAs (tests, private relays); the system store is used as well. */
  ca?: SecureContextOptions['ca'];
  connectTimeoutMs?: number;
  /** Idle time allowed between reads/writes on an open session. */
  socketTimeoutMs?: number;
}

export interface RecipientOutcome {
  address: string;
  /** 2xx from the remote. */
  ok: boolean;
  /** 5xx: do not retry. Connection problems and 4xx are temporary. */
  permanent: boolean;
  /** The remote reply, or the local error, e.g. `550 5.1.1 <x@example.org>: Recipient address rejected`. */
  reply: string;
}

/** DSN parameters to pass on (RFC 3461), as the spool keeps them: ENVID and ORCPT in xtext. */
export interface OutboundDsn {
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  /** Per recipient address as given to send(). */
  recipients: Map<string, RecipientDsn>;
}

/** nodemailer's SMTPConnection internals used to give each RCPT its own NOTIFY/ORCPT (nodemailer 10). */
interface ConnectionInternals {
  _supportedExtensions: string[];
  _sendRcpt(recipient: string, callback: unknown): void;
  _getDsnRcptToArgs(): string;
}

type SmtpError = Error & { code?: string; responseCode?: number; response?: string; recipient?: string; rejectedErrors?: SmtpError[] };

/** True for an error from OutboundSession.open that happened in the TLS handshake (implicit or STARTTLS). */
export function isTlsFailure(err: unknown): boolean {
  return Boolean((err as { tlsFailure?: boolean } | null)?.tlsFailure);
}

function describe(err: SmtpError): string {
  const text = err.response ? err.response : err.message;
  return text.replace(/[\r\n]+/g, ' ').trim().slice(0, 500);
}

/** An open session; `usable` turns false once the connection is gone. */
export class OutboundSession {
  private readonly conn: SMTPConnection;
  readonly target: OutboundTarget;
  private closed = false;

  /** The DSN parameters of the transaction being sent, read by the per-RCPT hook below. */
  private dsn: OutboundDsn | null = null;
  /** Whether the per-RCPT hook is in place. */
  private readonly hooked: boolean = false;

  private constructor(conn: SMTPConnection, target: OutboundTarget) {
    this.conn = conn;
    this.target = target;
    conn.on('end', () => { this.closed = true; });
    conn.on('error', () => { this.closed = true; });
    // nodemailer applies one NOTIFY/ORCPT to every RCPT of a transaction; this instance (never the prototype)
    // writes each recipient's own, so recipients with different parameters still share one transaction.
    const internals = conn as unknown as ConnectionInternals;
    // Should a nodemailer upgrade rename these, delivery goes on without per-recipient DSN parameters.
    if (typeof internals._sendRcpt !== 'function' || typeof internals._getDsnRcptToArgs !== 'function') return;
    const sendRcpt = internals._sendRcpt.bind(conn);
    let current = '';
    internals._sendRcpt = (recipient, callback) => {
      current = recipient;
      sendRcpt(recipient, callback);
    };
    internals._getDsnRcptToArgs = () => {
      const d = this.passesDsn ? this.dsn?.recipients.get(current) : undefined;
      if (!d) return '';
      // Only well-formed values reach the command line, whatever a hand-edited state file holds.
      const notify = d.notify?.filter((n) => /^(NEVER|SUCCESS|FAILURE|DELAY)$/.test(n)) ?? [];
      const args = [
        ...(notify.length ? [`NOTIFY=${notify.join(',')}`] : []),
        ...(d.orcpt && isOrcpt(d.orcpt) ? [`ORCPT=${d.orcpt}`] : []),
      ];
      return args.length ? ` ${args.join(' ')}` : '';
    };
    this.hooked = true;
  }

  /** Whether DSN parameters reach the server: it announced DSN in its EHLO reply (and the hook above is in place). */
  get passesDsn(): boolean {
    return this.hooked && ((this.conn as unknown as Partial<ConnectionInternals>)._supportedExtensions?.includes('DSN') ?? false);
  }

  /** Calls `fn` once the connection has ended, whoever ended it. */
  onClose(fn: () => void): void {
    this.conn.once('end', fn);
  }

  get usable(): boolean {
    return !this.closed && !this.conn.destroyed;
  }

  /** Whether the session runs over TLS (implicit or after STARTTLS). */
  get secure(): boolean {
    return this.conn.secure;
  }

  /** Connects, greets, upgrades with STARTTLS when offered or required, authenticates when asked. */
  static open(target: OutboundTarget, options: OutboundClientOptions): Promise<OutboundSession> {
    const verify = target.tls === 'required' || target.tls === 'implicit';
    const conn = new SMTPConnection({
      host: target.address,
      port: target.port,
      servername: target.hostname,
      name: options.heloName,
      secure: target.tls === 'implicit',
      requireTLS: target.tls === 'required',
      // Opportunistic: if the upgrade fails, fall back to plaintext rather than not delivering (RFC 7435).
      opportunisticTLS: target.tls === 'opportunistic',
      ignoreTLS: target.tls === 'plaintext',
      connectionTimeout: options.connectTimeoutMs ?? 30_000,
      greetingTimeout: options.connectTimeoutMs ?? 30_000,
      socketTimeout: options.socketTimeoutMs ?? 300_000,
      allowInternalNetworkInterfaces: true,
      logger: false,
      tls: {
        servername: target.hostname,
        rejectUnauthorized: verify,
        minVersion: 'TLSv1.2',
        // A `ca` option replaces Node's bundled roots; keep them so public certificates still verify.
        ...(options.ca ? { ca: [...rootCertificates, ...[options.ca].flat()] } : {}),
      },
    });
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: SmtpError): void => {
        if (settled) return;
        settled = true;
        // nodemailer reports a handshake that dies as a socket error; the caller needs to know it was TLS.
        if (err.code === 'ETLS' || conn.upgrading) Object.assign(err, { tlsFailure: true });
        conn.close();
        reject(err);
      };
      conn.once('error', fail);
      conn.connect((err) => {
        if (err) return fail(err as SmtpError);
        if (verify && !conn.secure) return fail(Object.assign(new Error(`${target.hostname} did not offer STARTTLS`), { code: 'ETLS' }));
        const done = (): void => {
          if (settled) return;
          settled = true;
          conn.removeListener('error', fail);
          conn.on('error', () => { /* reported through send() callbacks */ });
          resolve(new OutboundSession(conn, target));
        };
        if (!target.auth) return done();
        conn.login({ user: target.auth.user, pass: target.auth.pass }, (loginErr) => {
          if (loginErr) return fail(loginErr as SmtpError);
          done();
        });
      });
    });
  }

  /**
   * One transaction: MAIL FROM, RCPT TO each recipient, DATA. Never rejects: every recipient gets an outcome.
   * `connectionLost` says whether the session must be dropped; `messageStarted` whether any byte of the message
   * went out (when not, the transaction can be repeated on a new connection without risk of a duplicate).
   */
  send(from: string, recipients: string[], message: Buffer, dsn?: OutboundDsn): Promise<{ outcomes: RecipientOutcome[]; connectionLost: boolean; messageStarted: boolean }> {
    const stream = Readable.from([message]);
    this.dsn = dsn ?? null;
    // nodemailer writes RET and ENVID on MAIL FROM itself (when the server announces DSN), encoding ENVID as xtext.
    const envelopeDsn = dsn && (dsn.ret || dsn.envid) ? { ...(dsn.ret ? { ret: dsn.ret } : {}), ...(dsn.envid ? { envid: decodeXtext(dsn.envid) } : {}) } : undefined;
    return new Promise((resolve) => {
      // BODY=8BITMIME is only sent when the server offers it; declaring it for 7-bit content is harmless.
      this.conn.send({ from, to: recipients, size: message.length, use8BitMime: true, ...(envelopeDsn ? { dsn: envelopeDsn } : {}) }, stream, (err, info) => {
        this.dsn = null;
        const messageStarted = stream.readableDidRead;
        if (!err && info) {
          const rejected = new Map((info.rejectedErrors ?? []).map((e) => [(e as SmtpError).recipient?.toLowerCase(), e as SmtpError]));
          const outcomes = recipients.map((address): RecipientOutcome => {
            const r = rejected.get(address.toLowerCase());
            if (r) return { address, ok: false, permanent: (r.responseCode ?? 400) >= 500, reply: describe(r) };
            return { address, ok: true, permanent: false, reply: info.response.replace(/[\r\n]+/g, ' ').slice(0, 500) };
          });
          resolve({ outcomes, connectionLost: false, messageStarted });
          return;
        }
        const e = (err ?? new Error('no answer')) as SmtpError;
        if (e.code === 'EMESSAGE' && e.responseCode === undefined && /larger than allowed/.test(e.message)) {
          // The server's EHLO SIZE limit: retrying cannot help.
          Object.assign(e, { responseCode: 552, response: `552 5.3.4 message of ${message.length} bytes is larger than ${this.target.hostname} accepts (${e.message.replace(/^.*allowed\s*/, '')})` });
        }
        const perRecipient = new Map((e.rejectedErrors ?? []).map((x) => [x.recipient?.toLowerCase(), x]));
        const outcomes = recipients.map((address): RecipientOutcome => {
          const r = perRecipient.get(address.toLowerCase()) ?? e;
          const code = r.responseCode;
          return { address, ok: false, permanent: code !== undefined && code >= 500, reply: describe(r) };
        });
        const protocolRefusal = (e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && e.responseCode !== 421 && this.usable;
        if (!protocolRefusal) {
          this.close();
          resolve({ outcomes, connectionLost: true, messageStarted });
          return;
        }
        this.conn.reset((resetErr) => {
          if (resetErr) this.close();
          resolve({ outcomes, connectionLost: Boolean(resetErr), messageStarted });
        });
      });
    });
  }

  /** Drops the connection at once (stop deadline passed): no QUIT, an unfinished transaction is abandoned. */
  destroy(): void {
    this.closed = true;
    this.conn.close();
  }

  /** Sends QUIT and closes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.quit();
    } catch {
      this.conn.close();
    }
    // quit() waits for the server's answer; make sure the socket goes away even if it never comes.
    setTimeout(() => this.conn.close(), 2000).unref();
  }
}

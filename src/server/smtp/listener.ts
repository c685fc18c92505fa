// One SMTP listener on smtp-server: the MX (port 25: STARTTLS offered, no AUTH, local recipients only) or
// submission (587: STARTTLS then AUTH; 465: implicit TLS then AUTH). DATA is checked for smuggling, run through
// the pipeline's pre-250 decisions and written durably to the spool (inbound: both at once), and only then
// answered 250.
import { SMTPServer } from 'smtp-server';
import type { SMTPServerAddress, SMTPServerAuthentication, SMTPServerDataStream, SMTPServerOptions, SMTPServerResolver, SMTPServerSession } from 'smtp-server';
import type { Listening, Service, TlsSource } from '../service.ts';
import type { DeliveryStore } from '../store/api.ts';
import type { ClientInfo, RecipientDsn, Spool, SpoolEntry, SpoolEnvelope } from '../queue/api.ts';
import { SpoolError } from '../queue/api.ts';
import type { Trace } from '../trace/api.ts';
import type { AcceptedDecision, Pipeline } from '../pipeline/pipeline.ts';
import type { ReceiveContext } from '../pipeline/receive.ts';
import { isProblem, parseEnvelopeAddress } from './addresses.ts';
import { readGuardedData } from './data-guard.ts';
import { dsnParamProblem, envelopeDsn, recipientDsn as recipientDsnOf } from './dsn-params.ts';
import type { MemoryBudget } from './data-guard.ts';
import type { AuthBackoff, ConnectionCounter } from './limits.ts';
import { guardSessions } from './session-guard.ts';
import { followReloads } from '../tls.ts';

export type ListenerKind = 'mx' | 'submission' | 'submissions';

const SCHEME: Record<ListenerKind, string> = { mx: 'smtp', submission: 'submission', submissions: 'smtps' };

export interface SmtpLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SmtpListenerOptions {
  kind: ListenerKind;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Our host name, for the greeting and Received headers. */
  hostname: string;
  localDomains: Set<string>;
  maxMessageBytes: number;
  maxRecipients: number;
  maxErrors?: number;
  maxCommandsBeforeMail?: number;
  /** Pause before the greeting in ms (early-talker detection); 0, the default, greets at once as Postfix does. */
  greetPauseMs?: number;
  /** Most simultaneous connections on this listener from all addresses. */
  maxClients?: number;
  socketTimeoutMs?: number;
  tls: TlsSource;
  store: DeliveryStore;
  spool: Spool;
  pipeline: Pipeline;
  trace: Trace;
  /** Shared by every listener, so limits hold per address across ports. */
  connections: ConnectionCounter;
  authBackoff: AuthBackoff;
  log: SmtpLog;
  /** DATA bytes all sessions may hold in memory together (shared by every listener). */
  memory: MemoryBudget;
  /** Reverse DNS for Received headers; false turns lookups off. */
  reverseDns?: SMTPServerResolver | false;
}

/** An error whose reply smtp-server sends as `code text` (text starting with our enhanced code). */
function reply(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}

interface SessionState { admitted: boolean; user?: string; transaction: number }

function spoolAddress(r: SMTPServerAddress): string {
  const p = parseEnvelopeAddress(r.address);
  return isProblem(p) ? r.address : p.address;
}

/** The transaction's DSN parameters (RFC 3461) for the spool; nothing when the client gave none. */
function withDsn(session: SMTPServerSession): Pick<SpoolEnvelope, 'dsn' | 'recipientDsn'> {
  const dsn = envelopeDsn(session);
  const recipientDsn: Record<string, RecipientDsn> = {};
  for (const r of session.envelope.rcptTo) {
    const d = recipientDsnOf(r);
    if (d) recipientDsn[spoolAddress(r)] = d;
  }
  return { ...(dsn ? { dsn } : {}), ...(Object.keys(recipientDsn).length ? { recipientDsn } : {}) };
}

export function createSmtpListener(o: SmtpListenerOptions): Service {
  const states = new Map<string, SessionState>();
  const state = (s: SMTPServerSession): SessionState => {
    let st = states.get(s.id);
    if (!st) { st = { admitted: false, transaction: 0 }; states.set(s.id, st); }
    return st;
  };
  const isMx = o.kind === 'mx';
  const traceRejected = (s: SMTPServerSession, detail: string, recipient?: string) => {
    o.trace.record({
      traceId: `smtp-${s.id}-${s.transaction}`, kind: 'rejected', detail,
      sender: s.envelope.mailFrom ? s.envelope.mailFrom.address : undefined, recipient,
      data: { ip: s.remoteAddress, listener: o.kind },
    });
  };

  const options: SMTPServerOptions = {
    name: o.hostname,
    banner: 'Postern ESMTP',
    secure: o.kind === 'submissions',
    ...o.tls.pem(),
    SNICallback: o.tls.sniCallback,
    size: o.maxMessageBytes,
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: isMx,
    disabledCommands: isMx ? ['AUTH'] : [],
    allowInsecureAuth: false,
    authRequiredMessage: '5.7.0 Authentication required',
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    hideREQUIRETLS: true,
    maxClients: o.maxClients ?? 500,
    socketTimeout: o.socketTimeoutMs ?? 5 * 60_000,
    // Our own counter (commands before MAIL) replaces smtp-server's, which would also count a logged-out MX.
    maxAllowedUnauthenticatedCommands: false,
    maxCommandLength: 4096,
    disableReverseLookup: o.reverseDns === false,
    ...(o.reverseDns ? { resolver: o.reverseDns } : {}),
    logger: false,

    onConnect(session, cb) {
      if (!o.connections.tryOpen(session.remoteAddress)) {
        return cb(reply(421, '4.7.0 Too many connections from your address, try again later'));
      }
      state(session).admitted = true;
      cb();
    },

    onClose(session) {
      const st = states.get(session.id);
      states.delete(session.id);
      if (st?.admitted) o.connections.close(session.remoteAddress);
    },

    onAuth(auth: SMTPServerAuthentication, session, cb) {
      const ip = session.remoteAddress;
      const wait = o.authBackoff.blockedFor(ip);
      if (wait > 0) return cb(reply(454, `4.7.0 Too many failed logins from your address; try again in ${Math.ceil(wait / 1000)} s`));
      if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return cb(reply(504, '5.5.4 Unsupported authentication mechanism'));
      const username = auth.username ?? '';
      if (auth.authzid && auth.authzid !== username) return cb(reply(535, '5.7.8 Authorization identity must equal the login name'));
      if (!username || username.length > 320 || !auth.password || auth.password.length > 1024) {
        o.authBackoff.failed(ip);
        return cb(null, { message: '5.7.8 Authentication credentials invalid', responseCode: 535 });
      }
      o.store.verifyPassword(username, auth.password).then((account) => {
        if (!account) {
          o.authBackoff.failed(ip);
          o.log.warn({ ip, username, listener: o.kind }, 'failed SMTP login');
          return cb(null, { message: '5.7.8 Authentication credentials invalid', responseCode: 535 });
        }
        o.authBackoff.succeeded(ip);
        state(session).user = account.address;
        cb(null, { user: account.address });
      }, (err: unknown) => {
        o.log.error({ err, ip }, 'password check failed');
        cb(reply(454, '4.7.0 Temporary authentication failure, try again later'));
      });
    },

    onMailFrom(address: SMTPServerAddress, session, cb) {
      const from = address.address;
      if (!isMx) {
        const user = state(session).user;
        if (!user) return cb(reply(530, '5.7.0 Authentication required'));
        let allowed: string[];
        try { allowed = o.store.sendableAddresses(user).map((a) => a.toLowerCase()); } catch (err) {
          o.log.error({ err }, 'sendableAddresses failed');
          return cb(reply(451, '4.3.0 Temporary local problem, try again later'));
        }
        if (!from || !allowed.includes(from.toLowerCase())) {
          traceRejected(session, `553 5.7.1 sender <${from}> is not an address of ${user}`);
          return cb(reply(553, `5.7.1 Sender address <${from}> is not yours`));
        }
      } else if (from) {
        const p = parseEnvelopeAddress(from);
        if (isProblem(p) && p.problem === 'syntax') return cb(reply(553, p.message));
      }
      cb();
    },

    onRcptTo(address: SMTPServerAddress, session, cb) {
      if (session.envelope.rcptTo.length >= o.maxRecipients) return cb(reply(452, '4.5.3 Too many recipients'));
      const p = parseEnvelopeAddress(address.address);
      if (isProblem(p)) {
        const code = p.problem === 'routing' ? (isMx ? 554 : 553) : 553;
        traceRejected(session, `${code} ${p.message}`, address.address);
        return cb(reply(code, p.message));
      }
      if (!isMx) return cb();
      if (!o.localDomains.has(p.domain)) {
        traceRejected(session, '554 5.7.1 relaying denied', p.address);
        return cb(reply(554, '5.7.1 Relaying denied: this server only accepts mail for its own domains'));
      }
      let known: boolean;
      try { known = o.store.resolveRecipient(p.address).kind === 'local'; } catch (err) {
        o.log.error({ err }, 'resolveRecipient failed');
        return cb(reply(451, '4.3.0 Temporary local problem, try again later'));
      }
      if (!known) {
        traceRejected(session, '550 5.1.1 no such user', p.address);
        return cb(reply(550, '5.1.1 No such user here'));
      }
      cb();
    },

    onData(stream: SMTPServerDataStream, session, cb) {
      handleData(stream, session).then((text) => cb(null, text), (err: Error) => cb(err));
    },
  };

  async function handleData(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const guarded = await readGuardedData(stream, o.maxMessageBytes, o.memory);
    try {
      return await handleMessage(guarded, session);
    } finally {
      if (guarded.ok) guarded.release();
    }
  }

  async function handleMessage(guarded: Awaited<ReturnType<typeof readGuardedData>>, session: SMTPServerSession): Promise<string> {
    if (!guarded.ok) {
      const [code, text] = guarded.reason === 'too-large'
        ? [552, `5.3.4 Message exceeds the size limit of ${o.maxMessageBytes} bytes`]
        : guarded.reason === 'busy' ? [452, '4.3.1 Insufficient system resources right now, try again later']
        : [550, `5.6.0 Message refused: ${guarded.reason === 'nul' ? 'NUL byte' : `bare ${guarded.reason === 'bare-lf' ? 'LF' : 'CR'}`} at byte ${guarded.offset}; lines must end in CRLF`];
      traceRejected(session, `${code} ${text}`);
      throw reply(code, text);
    }
    const st = state(session);
    const client: ClientInfo = {
      remoteAddress: session.remoteAddress,
      helo: session.hostNameAppearsAs || '',
      hostname: session.clientHostname && !session.clientHostname.startsWith('[') ? session.clientHostname : undefined,
      tls: session.secure,
      listener: o.kind,
    };
    const envelope: SpoolEnvelope = {
      from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      to: [...new Set(session.envelope.rcptTo.map(spoolAddress))],
      client,
      ...(st.user ? { authenticatedUser: st.user } : {}),
      ...withDsn(session),
    };
    const ctx: ReceiveContext = {
      envelope,
      receiptId: `${session.id}.${++st.transaction}`,
      tls: session.tlsOptions ? `${session.tlsOptions.version} ${session.tlsOptions.name}` : undefined,
      receivedAt: new Date(),
    };
    if (o.kind === 'mx') return receiveInbound(guarded.message, envelope, ctx, session);
    let outcome;
    try {
      outcome = await o.pipeline.receiveSubmission(guarded.message, ctx);
    } catch (err) {
      o.log.error({ err, session: session.id }, 'message checks failed');
      throw reply(451, '4.3.0 Temporary local problem while checking the message, try again later');
    }
    if (!outcome.accept) throw refused(outcome, ctx);
    let entry;
    try {
      entry = await o.spool.accept(envelope, [outcome.prefix, guarded.message], { maxBytes: o.maxMessageBytes + outcome.prefix.length });
    } catch (err) {
      throw spoolFailure(err, session);
    }
    return acceptedReply(entry, outcome, ctx, [outcome.prefix, guarded.message]);
  }

  /**
   * Inbound: the spool writes the message (our Received header in front) while the checks run; the reply waits
   * for both. The two take about as long as each other (fsyncs against SPF/DKIM/DMARC/ARC), so the message is
   * answered in the time of the longer one. A refused message's entry is removed before the reply.
   */
  async function receiveInbound(message: Buffer, envelope: SpoolEnvelope, ctx: ReceiveContext, session: SMTPServerSession): Promise<string> {
    const received = o.pipeline.receivedHeader(ctx);
    const [spooled, checked] = await Promise.allSettled([
      o.spool.accept(envelope, [received, message], { maxBytes: o.maxMessageBytes + received.length, checksPending: { receivedBytes: received.length } }),
      o.pipeline.checkInbound(message, envelope),
    ]);
    if (checked.status === 'rejected' || !checked.value.accept) {
      if (spooled.status === 'fulfilled') await discardEntry(spooled.value.id, session);
      if (checked.status === 'fulfilled' && !checked.value.accept) throw refused(checked.value, ctx);
      o.log.error({ err: checked.status === 'rejected' ? checked.reason : undefined, session: session.id }, 'message checks failed');
      throw reply(451, '4.3.0 Temporary local problem while checking the message, try again later');
    }
    if (spooled.status === 'rejected') throw spoolFailure(spooled.reason, session);
    const verdict = checked.value;
    return acceptedReply(spooled.value, verdict, ctx, [verdict.headers, received, verdict.message ?? message]);
  }

  /** A spooled entry whose message is refused: removed, so that no restart delivers it. */
  async function discardEntry(id: string, session: SMTPServerSession): Promise<void> {
    try {
      await o.spool.remove(id);
    } catch (err) {
      // Left in the spool, it is checked again and filed in Junk (never delivered to INBOX) by the sweep.
      o.log.error({ err, id, session: session.id }, 'could not remove the entry of a refused message');
    }
  }

  function refused(outcome: { code: number; reply: string; messageId?: string | undefined }, ctx: ReceiveContext): Error {
    const { envelope } = ctx;
    o.trace.record({ traceId: `smtp-${ctx.receiptId}`, kind: 'rejected', detail: `${outcome.code} ${outcome.reply}`, messageId: outcome.messageId, sender: envelope.from, data: { ip: envelope.client.remoteAddress, listener: o.kind } });
    return reply(outcome.code, outcome.reply);
  }

  function spoolFailure(err: unknown, session: SMTPServerSession): Error {
    if (err instanceof SpoolError) {
      o.log.error({ err, session: session.id }, 'spool refused the message');
      return reply(err.smtpCode, `${err.enhanced} ${err.temporary ? 'Temporary local problem, try again later' : err.message}`);
    }
    o.log.error({ err, session: session.id }, 'spool failed');
    return reply(451, '4.3.0 Temporary local problem, try again later');
  }

  /**
   * The entry is durable: the trace records and the delivery scheduling run after the 250 is written, not before
   * it (smtp-server writes the reply in the callback that the returned promise feeds). `message` is what delivery
   * stores (the spooled bytes plus any headers the inbound checks added).
   */
  function acceptedReply(entry: SpoolEntry, decided: AcceptedDecision, ctx: ReceiveContext, message: Uint8Array[]): string {
    setImmediate(() => {
      try { o.pipeline.accepted(entry, decided, ctx, message); } catch (err) {
        o.log.error({ err, id: entry.id }, 'recording an accepted message failed; the sweep delivers it');
      }
    });
    return `Ok: queued as ${entry.id}`;
  }

  const server = new SMTPServer(options);
  // Clients without SNI (MTAs connecting by IP address) get smtp-server's default context, built from the PEM
  // pair above: rebuild it on every renewal, for implicit TLS and STARTTLS alike.
  followReloads(o.tls, { setSecureContext: (pem) => server.updateSecureContext(pem) });
  const sessions = guardSessions(server, { maxErrors: o.maxErrors ?? 20, maxCommandsBeforeMail: o.maxCommandsBeforeMail ?? 25, greetPauseMs: o.greetPauseMs ?? 0, checkCommand: dsnParamProblem });
  server.on('error', (err: Error) => {
    // Client resets under load surface here; without a handler they would crash the process (PEERS.md).
    o.log.warn({ err: err.message, listener: o.kind }, 'SMTP connection error');
  });

  return {
    name: `smtp-${o.kind}`,
    start(): Promise<Listening[]> {
      return new Promise((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        server.server.once('error', onError);
        server.listen(o.port, o.host, () => {
          server.server.off('error', onError);
          const addr = server.server.address();
          const port = typeof addr === 'object' && addr ? addr.port : o.port;
          const host = o.host.includes(':') ? `[${o.host}]` : o.host;
          resolve([{ scheme: SCHEME[o.kind], url: `${SCHEME[o.kind]}://${host}:${port}` }]);
        });
      });
    },
    stop(deadline: number): Promise<void> {
      // smtp-server reads a closeTimeout of 0 as "its default of 30 s". At the deadline it says 421 to whatever
      // is left (a DATA transfer still running) and resolves.
      (server.options as SMTPServerOptions).closeTimeout = Math.max(1, deadline - Date.now());
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      sessions.shutDown();
      return closed;
    },
  };
}

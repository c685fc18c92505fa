// Per-connection limits smtp-server has no hook for: errors per session, commands before MAIL, and replies
// carrying our own enhanced status code. smtp-server adds a fixed enhanced code per reply code (554 → 5.6.0),
// so a reply text that starts with its own code (`5.7.1 Relaying denied`) is sent without the automatic one.
// Also the graceful stop: smtp-server's close() lets idle sessions sit until its timeout, so shutDown() says
// 421 to every session between commands and, for one inside DATA or awaiting a reply, right after that reply.
// Also the pause before the greeting (greetPauseMs). Only the connection instance is wrapped, never smtp-server's
// prototypes.
import type { SMTPServer, SMTPServerSession } from 'smtp-server';

export interface SessionLimits {
  /** Error replies (4xx/5xx) before the session is closed with 421. */
  maxErrors: number;
  /** Commands while no transaction is open (EHLO, NOOP, RSET, VRFY, AUTH…) before 421. */
  maxCommandsBeforeMail: number;
  /**
   * Pause before the greeting, in ms. smtp-server hard-codes 100 ms (a client that talks before the greeting gets
   * `421 You talk too soon`); Postfix's smtpd greets at once. 0 greets on the next turn of the event loop, which
   * still catches a client that pipelines ahead of the greeting in its first packet.
   */
  greetPauseMs: number;
  /**
   * Checks a command line before smtp-server parses it (which loses what it decodes); a returned reply text
   * (starting with its enhanced code) is sent with 501 and the command goes no further. Only commands in
   * sequence are checked (after EHLO, and after AUTH where it is required): the others get the library's 503/530.
   */
  checkCommand?: (line: string) => string | null;
}

export const SHUTDOWN_REPLY = '4.3.2 Service shutting down';

/** smtp-server's own text for the 421 it sends while its server closes (commands after close(), deadline cut). */
const LIBRARY_SHUTDOWN_TEXT = 'Server shutting down';

export interface GuardedSessions {
  /**
   * The server is stopping: a session between commands gets `421 4.3.2` and is closed now; one inside DATA,
   * awaiting a command's answer or in a TLS handshake gets it as soon as that is over.
   */
  shutDown(): void;
}

/** The parts of smtp-server's SMTPConnection used here (internal fields of 3.21, read only). */
interface Connection {
  session: SMTPServerSession;
  send(code: number, data?: unknown, context?: unknown): void;
  _onCommand(command: Buffer | string, callback?: () => void): void;
  /** The message stream from DATA until the DATA reply is sent. */
  _dataStream: unknown;
  /** A command handler (ours: onAuth, onRcptTo…) has not called back yet. */
  _handlerPending: boolean;
  /** The next line belongs to a command in progress (an AUTH exchange), not a new command. */
  _nextHandler: unknown;
  _upgrading: boolean;
  _closing: boolean;
  _closed: boolean;
  init(): void;
  _setListeners(callback: () => void): void;
  connectionReady(): void;
  _server: { connections: Set<unknown>; options: { maxClients?: number; authOptional?: boolean } };
  name: string;
  /** The EHLO/HELO name; false before one. */
  hostNameAppearsAs: string | false;
  _isSupported(command: string): boolean;
}

const OWN_ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;

export function guardSessions(server: SMTPServer, limits: SessionLimits): GuardedSessions {
  const connections = server.connections as unknown as Set<Connection>;
  const add = connections.add.bind(connections);
  const shared = { shuttingDown: false };
  connections.add = (conn: Connection) => {
    instrument(conn, limits, shared);
    return add(conn);
  };
  return {
    shutDown() {
      shared.shuttingDown = true;
      for (const conn of [...connections]) closeIfIdle(conn);
    },
  };
}

function isBusy(conn: Connection): boolean {
  return Boolean(conn._dataStream) || conn._handlerPending || conn._upgrading;
}

function closeIfIdle(conn: Connection): void {
  if (conn._closing || conn._closed || isBusy(conn)) return;
  // send() closes the connection after any 421.
  conn.send(421, SHUTDOWN_REPLY, false);
}

function instrument(conn: Connection, limits: SessionLimits, shared: { shuttingDown: boolean }): void {
  const send = conn.send.bind(conn);
  const onCommand = conn._onCommand.bind(conn);
  let errors = 0;
  let commands = 0;
  let closing = false;
  // The library's init() with our pause instead of its fixed 100 ms (same connection-limit check first).
  conn.init = () => {
    conn._setListeners(() => {
      const max = conn._server.options.maxClients;
      if (max && conn._server.connections.size > max) return conn.send(421, `${conn.name} Too many connected clients, try again in a moment`, false);
      const ready = () => conn.connectionReady();
      if (limits.greetPauseMs > 0) setTimeout(ready, limits.greetPauseMs).unref();
      else setImmediate(ready);
    });
  };
  conn.send = (code, data, context) => {
    if (code === 421 && data === LIBRARY_SHUTDOWN_TEXT) send(code, SHUTDOWN_REPLY, false);
    else if (typeof data === 'string' && OWN_ENHANCED.test(data)) send(code, data, false);
    else send(code, data, context);
    if (code >= 400 && code !== 421 && !closing && ++errors >= limits.maxErrors) {
      closing = true;
      send(421, '4.7.0 Too many errors in this session, closing connection', false);
    }
    // A reply sent while stopping may end what kept the session busy (the DATA reply, an AUTH answer); the
    // library clears its busy flags right after send() returns, so look once they are settled.
    if (shared.shuttingDown && code !== 421) setImmediate(() => closeIfIdle(conn));
  };
  conn._onCommand = (command, callback) => {
    if (shared.shuttingDown && !conn._upgrading) {
      // Lines read during a TLS handshake are dropped by the library itself; anything else gets the 421.
      send(421, SHUTDOWN_REPLY, false);
      return;
    }
    if (!conn.session.envelope?.mailFrom) {
      if (++commands > limits.maxCommandsBeforeMail && !closing) {
        closing = true;
        send(421, '4.7.0 Too many commands without sending mail, closing connection', false);
        return;
      }
    } else {
      commands = 0;
    }
    // smtp-server refuses MAIL/RCPT before EHLO (503) or before a required AUTH (530) without reading their
    // parameters: such commands are left to it, so the order of replies stays the library's.
    const inSequence = conn.hostNameAppearsAs && (conn.session.user || conn._server.options.authOptional || !conn._isSupported('AUTH'));
    const problem = limits.checkCommand && inSequence && !conn._nextHandler && !conn._upgrading ? limits.checkCommand(command.toString()) : null;
    if (problem) {
      conn.send(501, problem);
      setImmediate(() => callback?.());
      return;
    }
    onCommand(command, callback);
  };
}

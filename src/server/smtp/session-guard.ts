// Per-connection limits smtp-server has no hook for: errors per session, commands before MAIL, and replies
// carrying our own enhanced status code. smtp-server adds a fixed enhanced code per reply code (554 → 5.6.0),
// so a reply text that starts with its own code (`5.7.1 Relaying denied`) is sent without the automatic one.
// Only the connection instance is wrapped, never smtp-server's prototypes.
import type { SMTPServer, SMTPServerSession } from 'smtp-server';

export interface SessionLimits {
  /** Error replies (4xx/5xx) before the session is closed with 421. */
  maxErrors: number;
  /** Commands while no transaction is open (EHLO, NOOP, RSET, VRFY, AUTH…) before 421. */
  maxCommandsBeforeMail: number;
}

interface Connection {
  session: SMTPServerSession;
  send(code: number, data?: unknown, context?: unknown): void;
  _onCommand(command: Buffer | string, callback?: () => void): void;
}

const OWN_ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;

export function guardSessions(server: SMTPServer, limits: SessionLimits): void {
  const connections = server.connections as unknown as Set<Connection>;
  const add = connections.add.bind(connections);
  connections.add = (conn: Connection) => {
    instrument(conn, limits);
    return add(conn);
  };
}

function instrument(conn: Connection, limits: SessionLimits): void {
  const send = conn.send.bind(conn);
  const onCommand = conn._onCommand.bind(conn);
  let errors = 0;
  let commands = 0;
  let closing = false;
  conn.send = (code, data, context) => {
    if (typeof data === 'string' && OWN_ENHANCED.test(data)) send(code, data, false);
    else send(code, data, context);
    if (code >= 400 && code !== 421 && !closing && ++errors >= limits.maxErrors) {
      closing = true;
      send(421, '4.7.0 Too many errors in this session, closing connection', false);
    }
  };
  conn._onCommand = (command, callback) => {
    if (!conn.session.envelope?.mailFrom) {
      if (++commands > limits.maxCommandsBeforeMail && !closing) {
        closing = true;
        send(421, '4.7.0 Too many commands without sending mail, closing connection', false);
        return;
      }
    } else {
      commands = 0;
    }
    onCommand(command, callback);
  };
}

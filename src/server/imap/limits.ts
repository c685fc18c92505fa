// Every bound the IMAP server puts on a client, in one place so tests and main.ts can tune them.

export interface ImapLimits {
  /** Longest command line (without literals), in bytes. */
  maxLineBytes: number;
  /** Largest literal in any command but APPEND. */
  maxLiteralBytes: number;
  /** Largest message APPEND accepts (also announced as APPENDLIMIT). */
  maxAppendBytes: number;
  /** Sum of all lines and small literals of one command. */
  maxCommandBytes: number;
  /** Literals in one command. */
  maxLiteralsPerCommand: number;
  /** Parenthesis and bracket nesting. */
  maxNestingDepth: number;
  /** Commands a client may send before it authenticates; then BYE. */
  maxCommandsBeforeAuth: number;
  /** Failed authentications on one connection before BYE. */
  maxAuthFailures: number;
  /** Delay before answering a failed authentication, in ms. */
  authFailureDelayMs: number;
  /** Open connections from one IP address. */
  maxConnectionsPerIp: number;
  /** Idle time without a command before BYE (RFC 9051: at least 30 minutes). */
  idleTimeoutMs: number;
  /** Time allowed for the TLS handshake and for the client to authenticate. */
  preAuthTimeoutMs: number;
  /** Bad commands in a row before BYE. */
  maxBadCommands: number;
}

export const DEFAULT_IMAP_LIMITS: ImapLimits = {
  maxLineBytes: 65536,
  maxLiteralBytes: 65536,
  maxAppendBytes: 50 * 1024 * 1024,
  maxCommandBytes: 256 * 1024,
  maxLiteralsPerCommand: 64,
  maxNestingDepth: 16,
  maxCommandsBeforeAuth: 30,
  maxAuthFailures: 5,
  authFailureDelayMs: 1000,
  maxConnectionsPerIp: 20,
  idleTimeoutMs: 31 * 60 * 1000,
  preAuthTimeoutMs: 60 * 1000,
  maxBadCommands: 20,
};

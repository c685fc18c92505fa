// The per-message event log every stage appends to, and `postern trace` reads. One trace per message copy that
// Postern handles (keyed by the spool id), plus the addresses and Message-ID that let a user find it.

/** What happened. Stages choose the closest kind; `detail` says the rest in words a user understands. */
export type TraceKind =
  /** Connection and envelope accepted; DATA spooled and answered 250. */
  | 'received'
  /** Refused in SMTP (relay, unknown user, smuggling, DMARC reject, limit). */
  | 'rejected'
  /** One check and its result (spf, dkim, dmarc, arc, spam, antivirus, dkim-sign). */
  | 'check'
  /** The pipeline's decision for the message (inbox, junk, reject). */
  | 'verdict'
  /** Stored into a local mailbox. */
  | 'stored'
  /** Handed to the outbound queue for a remote recipient. */
  | 'queued'
  /** One outbound delivery attempt and the remote reply. */
  | 'attempt'
  /** Delivered to the remote MX (2xx). */
  | 'delivered'
  /** Temporary failure; will retry. */
  | 'deferred'
  /** Permanent failure or expiry for a recipient. */
  | 'failed'
  /** A DSN (bounce or delay notice) was generated. */
  | 'dsn'
  /** Removed from the spool (done) or from the queue by an operator. */
  | 'removed'
  /** Internal error while handling the message (answered 4xx or left for retry). */
  | 'error';

export interface TraceEventInput {
  /** The spool/queue id of the message copy; groups one message's events. */
  traceId: string;
  kind: TraceKind;
  /** Short human-readable summary, e.g. `from mx.example.org [192.0.2.1] over TLS` or `250 2.0.0 Ok: queued`. */
  detail: string;
  /** RFC 5322 Message-ID without angle brackets, when known. */
  messageId?: string;
  /** Envelope sender (empty string for the null sender). */
  sender?: string;
  /** The recipient this event concerns, when it concerns one. */
  recipient?: string;
  /** Structured extras (remote host, SMTP code, check result); kept small (the trace truncates large values). */
  data?: Record<string, string | number | boolean | null>;
  /** Defaults to now. */
  at?: Date;
}

export interface TraceEvent extends Required<Omit<TraceEventInput, 'data' | 'messageId' | 'sender' | 'recipient'>> {
  messageId: string | null;
  sender: string | null;
  recipient: string | null;
  data: Record<string, string | number | boolean | null>;
}

export interface TraceTimeline {
  traceId: string;
  events: TraceEvent[];
}

export interface Trace {
  /**
   * Appends one event. Never throws: a trace failure must not lose or refuse mail (it is logged instead).
   * Events from one process are written in call order.
   */
  record(event: TraceEventInput): void;
  /**
   * Timelines whose Message-ID equals `query` (angle brackets optional) or whose sender or any recipient equals it
   * (case-insensitive address), newest first, at most `limit` (default 20) timelines.
   */
  find(query: string, limit?: number): TraceTimeline[];
  /** One timeline by trace id; null when unknown. */
  get(traceId: string): TraceTimeline | null;
  close(): void;
}

/** Where the trace database lives inside the server's state folder (`openTrace` in ./sqlite-trace.ts opens it). */
export const TRACE_FILE_NAME = 'trace.sqlite';

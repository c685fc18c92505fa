// Bounds on what one HTTP client can make the server hold: header bytes, body bytes, time to send a request
// (slowloris), idle keep-alive, TLS handshake time, connections. Defaults suit a single mail host; tests pass
// shorter timeouts through createWebService().
export interface WebLimits {
  /** Total request header bytes; larger answers 431. */
  maxHeaderBytes: number;
  /** Request body bytes (Outlook's autodiscover POST is < 1 KiB); larger answers 413. */
  maxBodyBytes: number;
  /** Time for the complete request headers to arrive; slower answers 408 and closes. */
  headersTimeoutMs: number;
  /** Time for the complete request (headers and body). */
  requestTimeoutMs: number;
  /** Idle time on a keep-alive connection between requests. */
  keepAliveTimeoutMs: number;
  /** Socket inactivity at any stage. */
  socketIdleTimeoutMs: number;
  /** Time for a TLS handshake to finish. */
  handshakeTimeoutMs: number;
  /** How often the server checks the two request timeouts above. */
  timeoutCheckIntervalMs: number;
  /** Open connections per listener. */
  maxConnections: number;
  maxRequestsPerSocket: number;
}

export const DEFAULT_WEB_LIMITS: WebLimits = {
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 64 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  socketIdleTimeoutMs: 60_000,
  handshakeTimeoutMs: 10_000,
  timeoutCheckIntervalMs: 1_000,
  maxConnections: 1_000,
  maxRequestsPerSocket: 1_000,
};

// The lifecycle every listener module (web, smtp, imap, pop3) follows, so main.ts can start them in order,
// print where they listen, reload certificates without a restart, and drain them on SIGTERM/SIGINT.
import type { SecureContext } from 'node:tls';

export interface Listening {
  /** Scheme named by service: https, smtp (MX), submission (587), smtps (465), imap, imaps, pop3, pop3s. */
  scheme: string;
  /** e.g. `imaps://127.0.0.1:10993` */
  url: string;
}

export interface Service {
  readonly name: string;
  /** Binds its sockets; resolves once it accepts connections. */
  start(): Promise<Listening[]>;
  /**
   * Stops accepting, lets open connections finish until `deadline` (ms since epoch), then closes them.
   * Resolves when every socket is closed.
   */
  stop(deadline: number): Promise<void>;
}

/** Current TLS credentials; listeners ask it for every new connection, so a reload needs no restart. */
export interface TlsSource {
  current(): SecureContext;
  /** For APIs that want raw PEM (nodemailer, smtp-server's initial options). */
  pem(): { key: Buffer; cert: Buffer };
  /** SNICallback that always answers with the current context. */
  readonly sniCallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
}

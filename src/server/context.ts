// What every service factory receives from main.ts. Services get typed values from here and never read config
// files, environment variables or signals themselves.
import type { Logger } from 'pino';
import type { ServerConfig } from '../plan/server-config.ts';
import type { Listening, Service } from './service.ts';
import type { ReloadableTls } from './tls.ts';
import type { MailStore } from './store/types.ts';
import type { Trace } from './trace/api.ts';
import type { QueueModule } from './queue/service.ts';
import type { DkimKey } from './pipeline/dkim-signer.ts';

export type PortName = keyof ServerConfig['ports'];

export type ServiceState = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface ServiceHealth {
  name: string;
  state: ServiceState;
  listeners: Listening[];
}

export interface HealthReport {
  ok: boolean;
  services: ServiceHealth[];
}

export interface ServerContext {
  readonly config: ServerConfig;
  readonly logger: Logger;
  /** Current certificate; `tls.sniCallback` for new connections, `tls.onReload` for a listener's default context. */
  readonly tls: ReloadableTls;
  /** Absolute, created before any factory runs. */
  readonly stateDir: string;
  /**
   * The port a listener binds: null when the listener is off (0 in config), 0 when the server runs with
   * ephemeral ports (tests), else the configured port. Always use this rather than config.ports directly.
   */
  listenPort(name: PortName): number | null;
  /** Live state of every service, for /healthz. */
  health(): HealthReport;
  /** The mailbox store (accounts, aliases, messages), opened and reconciled before any factory runs. */
  readonly store: MailStore;
  /** The per-message event log every stage appends to. */
  readonly trace: Trace;
  /** The durable spool (`queue.spool`) and the outbound scheduler (run by the `queue` service). */
  readonly queue: QueueModule;
  /** DKIM private keys from config.dkim, read and checked at start. */
  readonly dkimKeys: DkimKey[];
}

/** Builds one service from the context; returns null when its listeners are all off. */
export type ServiceFactory = (ctx: ServerContext) => Service | null;

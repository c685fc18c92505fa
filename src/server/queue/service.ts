// The queue module as the composition root builds it: the spool (for the SMTP listeners and the pipeline) and the
// scheduler as a Service (start/stop; no listener). Built once, before the listener factories run.
import { Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServerConfig } from '../../plan/server-config.ts';
import type { Service } from '../service.ts';
import type { DeliveryStore } from '../store/api.ts';
import type { Trace } from '../trace/api.ts';
import type { Spool } from './api.ts';
import { Bouncer } from './bouncer.ts';
import { mailauthPolicySource } from './mta-sts.ts';
import type { StsPolicySource } from './mta-sts.ts';
import type { QueueResolver } from './mx.ts';
import { Scheduler } from './scheduler.ts';
import type { RelaySettings } from './route.ts';
import type { SchedulerOptions } from './scheduler.ts';
import { FileSpool } from './spool.ts';

/** The spool's folder inside the server's state folder (`postern queue --state` uses the same). */
export const QUEUE_DIR_NAME = 'queue';

export interface QueueDeps {
  config: Pick<ServerConfig, 'hostname' | 'relay' | 'limits'>;
  /** Absolute state folder. */
  stateDir: string;
  store: DeliveryStore;
  trace: Trace;
  warn: (message: string) => void;
  /** Defaults to the system resolver's servers. */
  resolver?: QueueResolver;
  stsPolicy?: StsPolicySource;
  /** Scheduler tuning (tests: ports, retry schedule, CA). */
  tuning?: Omit<SchedulerOptions, 'spool' | 'bouncer' | 'trace' | 'hostname' | 'resolver' | 'stsPolicy' | 'relay' | 'warn'>;
}

export interface QueueModule {
  readonly spool: Spool;
  /** The same spool with the queue-internal operations (CLI, tests). */
  readonly fileSpool: FileSpool;
  readonly scheduler: Scheduler;
  /** Starts the scheduler; `stop` drains in-flight deliveries until the deadline. Prints no listener. */
  readonly service: Service;
}

const MAX_PASSWORD_FILE = 4096;

/** The relay password: the file's first line (a trailing newline is not part of it). */
export function readRelayPassword(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`relay.passwordFile ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  if (text.length > MAX_PASSWORD_FILE) throw new Error(`relay password file ${file} is larger than ${MAX_PASSWORD_FILE} bytes`);
  const line = text.split(/\r?\n/)[0] ?? '';
  if (!line) throw new Error(`relay password file ${file} is empty`);
  return line;
}

export function relaySettings(relay: ServerConfig['relay']): RelaySettings | undefined {
  if (!relay) return undefined;
  if (relay.username && !relay.passwordFile) throw new Error('relay.username is set but relay.passwordFile is not');
  return {
    host: relay.host,
    port: relay.port,
    ...(relay.username ? { username: relay.username, password: readRelayPassword(relay.passwordFile!) } : {}),
  };
}

export function createQueue(deps: QueueDeps): QueueModule {
  const fileSpool = FileSpool.openSync({ dir: join(deps.stateDir, QUEUE_DIR_NAME), maxMessageBytes: deps.config.limits.maxMessageBytes, warn: deps.warn });
  const resolver = deps.resolver ?? new Resolver({ timeout: 10_000, tries: 2 });
  const now = deps.tuning?.now ?? Date.now;
  const bouncer = new Bouncer({ spool: fileSpool, store: deps.store, trace: deps.trace, hostname: deps.config.hostname, now, warn: deps.warn });
  const relay = relaySettings(deps.config.relay);
  const scheduler = new Scheduler({
    ...deps.tuning,
    spool: fileSpool,
    bouncer,
    trace: deps.trace,
    hostname: deps.config.hostname,
    resolver,
    stsPolicy: deps.stsPolicy ?? mailauthPolicySource(resolver),
    ...(relay ? { relay } : {}),
    warn: deps.warn,
  });
  const service: Service = {
    name: 'queue',
    async start() {
      await scheduler.start();
      return [];
    },
    async stop(deadline) {
      await scheduler.stop(deadline);
      // Releases the spool folder's fd; a write still finishing elsewhere reopens it.
      await fileSpool.close();
    },
  };
  return { spool: fileSpool, fileSpool, scheduler, service };
}

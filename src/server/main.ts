// Composition root of the mail server: reads the config, makes the state dir, builds the logger and the TLS
// source, starts every service from the factory list, prints where each listens, reloads certificates on
// SIGHUP and drains on SIGTERM/SIGINT. The only place (with cli/) that reads config files and signals.
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { Logger } from 'pino';
import { parseServerConfig } from '../plan/server-config.ts';
import type { ParseResult, ServerConfig } from '../plan/server-config.ts';
import type { HealthReport, PortName, ServerContext, ServiceFactory, ServiceState } from './context.ts';
import { createLogger } from './log.ts';
import type { Listening, Service } from './service.ts';
import { createTlsSource } from './tls.ts';
import type { ReloadableTls } from './tls.ts';
import { webService } from './web/service.ts';
import { createStore } from './store/create-store.ts';
import { openTrace } from './trace/sqlite-trace.ts';
import { createQueue } from './queue/service.ts';
import type { QueueModule } from './queue/service.ts';
import type { MailStore } from './store/types.ts';
import type { Trace } from './trace/api.ts';
import { loadDkimKeys } from './pipeline/dkim-signer.ts';
import type { DkimKey } from './pipeline/dkim-signer.ts';
import { imapService, pop3Service, smtpService } from './protocol-services.ts';
import { monitorService } from './diagnostics/monitor-service.ts';
import { acmeRenewalService } from './acme/service.ts';

export type { ServerContext, ServiceFactory } from './context.ts';

/** Runs the outbound queue's scheduler (retries, bounces); it has no listener. */
export const queueService: ServiceFactory = (ctx) => ctx.queue.service;

/**
 * Every service the server runs, started in this order and stopped together. To add one (webmail, admin, ...):
 * write `export const imapService: ServiceFactory = (ctx) => ...` in its folder — return null when all its
 * ports are off (`ctx.listenPort('imaps') === null`), take certificates from `ctx.tls` (sniCallback per
 * connection, onReload for a default context), a logger from `ctx.logger.child({ service: 'imap' })`, and the
 * shared modules `ctx.store`, `ctx.trace`, `ctx.queue.spool` — then import it here and append it to this list
 * (the protocol modules' factories are in protocol-services.ts).
 * A module several services share is built once in startServer() and added to ServerContext.
 */
export const factories: ServiceFactory[] = [
  webService,
  queueService,
  smtpService,
  imapService,
  pop3Service,
  monitorService,
  acmeRenewalService,
];

/** How long open connections may finish after SIGTERM/SIGINT before they are cut. */
export const DEFAULT_DRAIN_MS = 10_000;
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/**
 * Reads a server config file (YAML, or JSON which YAML also reads) and validates it. Relative paths in it
 * (stateDir, certificate, keys) are taken relative to the file's folder, so a config moves with its files.
 */
export function loadServerConfigFile(file: string): ParseResult<ServerConfig> {
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) return { ok: false, errors: [`${file}: not a regular file`] };
    if (st.size > MAX_CONFIG_BYTES) return { ok: false, errors: [`${file}: larger than ${MAX_CONFIG_BYTES} bytes`] };
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`] };
  }
  let data: unknown;
  try {
    data = parseYaml(text, { maxAliasCount: 100, prettyErrors: true });
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const pos = err.linePos?.[0];
      return { ok: false, errors: [`${file}${pos ? `:${pos.line}:${pos.col}` : ''}: ${err.message.split('\n')[0]}`] };
    }
    throw err;
  }
  const parsed = parseServerConfig(data ?? {});
  if (!parsed.ok) return parsed;
  const base = dirname(resolve(file));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const c = parsed.value;
  return {
    ok: true,
    value: {
      ...c,
      stateDir: abs(c.stateDir),
      tls: { certFile: abs(c.tls.certFile), keyFile: abs(c.tls.keyFile) },
      dkim: c.dkim.map((d) => ({ ...d, privateKeyFile: abs(d.privateKeyFile) })),
      relay: c.relay && { ...c.relay, ...(c.relay.passwordFile ? { passwordFile: abs(c.relay.passwordFile) } : {}) },
      acme: c.acme && { ...c.acme, ...(c.acme.directoryCaFile ? { directoryCaFile: abs(c.acme.directoryCaFile) } : {}) },
    },
  };
}

export interface StartOptions {
  /** Bind every enabled listener to an ephemeral port (tests); the printed URLs show the real ports. */
  ephemeralPorts?: boolean;
  /** Use this logger instead of building one from config.log. */
  logger?: Logger;
  /** Replace the factory list (tests compose services with their own limits). */
  factories?: ServiceFactory[];
}

export interface RunningServer {
  readonly listeners: Listening[];
  readonly logger: Logger;
  readonly tls: ReloadableTls;
  health(): HealthReport;
  /** Stops accepting, drains open connections until `drainMs` from now, then closes them. */
  stop(drainMs?: number): Promise<void>;
}

export async function startServer(config: ServerConfig, opts: StartOptions = {}): Promise<RunningServer> {
  const stateDir = resolve(config.stateDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const logger = opts.logger ?? createLogger(config.log);
  const tls = createTlsSource(config.tls, logger);
  let trace: Trace | undefined;
  let store: MailStore | undefined;
  let queue: QueueModule;
  let dkimKeys: DkimKey[];
  try {
    dkimKeys = await loadDkimKeys(config.dkim);
    trace = openTrace(stateDir, { onError: (err) => logger.warn({ module: 'trace', err: String(err) }, 'trace write failed') });
    store = await createStore({ ...config, stateDir }, logger);
    queue = createQueue({
      config, stateDir, store, trace, warn: (message) => logger.warn({ module: 'queue' }, message),
    });
  } catch (err) {
    tls.close();
    await store?.close();
    trace?.close();
    throw err;
  }

  const entries: { service: Service; state: ServiceState; listeners: Listening[] }[] = [];
  const health = (): HealthReport => {
    const services = entries.map((e) => ({ name: e.service.name, state: e.state, listeners: e.listeners }));
    return { ok: services.length > 0 && services.every((s) => s.state === 'running'), services };
  };
  const ctx: ServerContext = {
    config, logger, tls, stateDir, health, store, trace, queue, dkimKeys,
    listenPort(name: PortName) {
      const port = config.ports[name];
      if (port === 0) return null;
      return opts.ephemeralPorts ? 0 : port;
    },
  };

  const stopAll = async (drainMs: number) => {
    const deadline = Date.now() + drainMs;
    await Promise.all(entries.map(async (e) => {
      if (e.state === 'stopped') return;
      e.state = 'stopping';
      try {
        await e.service.stop(deadline);
      } catch (err) {
        logger.error({ service: e.service.name, err: (err as Error).message }, 'service stop failed');
      }
      e.state = 'stopped';
    }));
    tls.close();
    // Services are stopped: nothing writes to the store or the trace any more.
    await store.close().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'store close failed'));
    trace.close();
  };

  try {
    for (const factory of opts.factories ?? factories) {
      const service = factory(ctx);
      if (service) entries.push({ service, state: 'starting', listeners: [] });
    }
    for (const e of entries) {
      try {
        e.listeners = await e.service.start();
        e.state = 'running';
      } catch (err) {
        e.state = 'failed';
        throw new Error(`${e.service.name}: ${(err as Error).message}`, { cause: err });
      }
    }
  } catch (err) {
    await stopAll(0);
    throw err;
  }

  const listeners = entries.flatMap((e) => e.listeners);
  logger.info({ listeners: listeners.map((l) => l.url), domain: config.domain }, 'server started');
  let stopping: Promise<void> | undefined;
  return {
    listeners, logger, tls, health,
    stop(drainMs = DEFAULT_DRAIN_MS) {
      stopping ??= stopAll(drainMs).then(() => logger.info('server stopped'));
      return stopping;
    },
  };
}

export interface ProcessOptions extends StartOptions {
  drainMs?: number;
  /** Extra lines printed after the listener URLs (the --dev user and certificate). */
  banner?: string[];
  out?: NodeJS.WritableStream;
}

/** One line per listener, scheme first, e.g. `https  https://127.0.0.1:10443`. */
export function listenerLines(listeners: Listening[]): string[] {
  return listeners.map((l) => `${l.scheme.padEnd(11)}${l.url}`);
}

/**
 * Runs the server as this process: starts it, prints the listener lines, reloads TLS on SIGHUP, and on
 * SIGTERM/SIGINT drains and exits 0. A second signal during the drain exits at once with status 1.
 */
export async function runServerProcess(config: ServerConfig, opts: ProcessOptions = {}): Promise<RunningServer> {
  const out = opts.out ?? process.stdout;
  const server = await startServer(config, opts);
  out.write([`postern serving ${config.domain} (state ${resolve(config.stateDir)})`, ...listenerLines(server.listeners).map((l) => `  ${l}`),
    ...(opts.banner ?? []), 'ready (SIGTERM or SIGINT stops after draining; SIGHUP reloads the certificate)'].join('\n') + '\n');

  process.on('SIGHUP', () => {
    server.logger.info('SIGHUP: reloading tls certificate');
    server.tls.reload();
  });
  let signalled = false;
  const onStop = (signal: NodeJS.Signals) => {
    if (signalled) {
      server.logger.warn({ signal }, 'second signal: exiting without finishing the drain');
      process.exit(1);
    }
    signalled = true;
    server.logger.info({ signal, drainMs: opts.drainMs ?? DEFAULT_DRAIN_MS }, 'stopping: draining open connections');
    server.stop(opts.drainMs).then(() => process.exit(0), (err: unknown) => {
      server.logger.error({ err: (err as Error).message }, 'stop failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  return server;
}

/** Prints config errors one per line, naming the key, and returns the exit status for a bad config. */
export function reportConfigErrors(file: string, errors: string[], err: NodeJS.WritableStream = process.stderr): number {
  err.write(`postern: invalid server config ${file}:\n${errors.map((e) => `  ${e}`).join('\n')}\n`);
  return 2;
}

// The certificate renewal job as a Service without a listener: runs once just after start, then every
// `checkIntervalMs` (twice a day); after a failure it retries sooner, with exponential backoff up to that interval.
// Stopping waits for a run in progress until the drain deadline.
import type { ServiceFactory } from '../context.ts';
import type { Service } from '../service.ts';
import { readRenewalState, writeRenewalState, type RenewalState } from './renewal-state.ts';
import { runRenewal, type Orderer, type RenewalSettings } from './renewal.ts';

const HOUR_MS = 3_600_000;

export interface RenewalServiceOptions {
  /** Between checks when all is well; twice a day by default. */
  checkIntervalMs?: number;
  /** First retry delay after a failure; doubled per consecutive failure, capped at checkIntervalMs. */
  retryBaseMs?: number;
  /** Replaces the ACME order (tests of the scheduling only). */
  order?: Orderer;
}

export const DEFAULT_CHECK_INTERVAL_MS = 12 * HOUR_MS;
export const DEFAULT_RETRY_BASE_MS = 15 * 60_000;

export function retryDelay(consecutiveFailures: number, retryBaseMs: number, checkIntervalMs: number): number {
  if (consecutiveFailures <= 0) return checkIntervalMs;
  return Math.min(checkIntervalMs, retryBaseMs * 2 ** Math.min(consecutiveFailures - 1, 30));
}

export function createAcmeRenewalService(opts: RenewalServiceOptions = {}): ServiceFactory {
  const checkIntervalMs = opts.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
  const retryBaseMs = opts.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
  return (ctx) => {
    const acme = ctx.config.acme;
    const logger = ctx.logger.child({ service: 'acme' });
    if (!acme || !acme.enabled) {
      logger.info('certificate renewal on the host is off (no enabled acme section in the server config)');
      return null;
    }
    if (ctx.listenPort('http') === null) logger.warn('certificate renewal uses HTTP-01 but the http listener (port 80) is off: renewals will fail');
    const settings: RenewalSettings = {
      directoryUrl: acme.directoryUrl, email: acme.email, names: acme.names, renewBeforeDays: acme.renewBeforeDays,
      ...(acme.directoryCaFile ? { directoryCaFile: acme.directoryCaFile } : {}),
      certFile: ctx.config.tls.certFile, keyFile: ctx.config.tls.keyFile, stateDir: ctx.stateDir,
    };
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> | undefined;
    let stopped = false;

    const schedule = (ms: number) => {
      if (stopped) return;
      timer = setTimeout(() => { running = runOnce().finally(() => { running = undefined; }); }, ms);
      timer.unref();
    };

    const runOnce = async (): Promise<void> => {
      let previous: RenewalState | null = null;
      try {
        previous = await readRenewalState(ctx.stateDir);
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'ignoring an unreadable renewal state file');
      }
      let delay = checkIntervalMs;
      try {
        const outcome = await runRenewal(settings, previous, logger, () => new Date(), opts.order);
        delay = retryDelay(outcome.state.consecutiveFailures, retryBaseMs, checkIntervalMs);
        if (outcome.result === 'failed') logger.warn({ retryInMinutes: Math.round(delay / 60_000) }, 'certificate renewal will be retried');
        await writeRenewalState(ctx.stateDir, { ...outcome.state, nextCheck: new Date(Date.now() + delay).toISOString() });
      } catch (err) {
        // Only the state file or the certificate's folder can fail here: log it and try again later.
        delay = retryBaseMs;
        logger.error({ err: (err as Error).message }, 'certificate renewal job could not record its run');
      }
      schedule(delay);
    };

    const service: Service = {
      name: 'acme',
      async start() {
        // Off the start path: the web listener must be up to answer the CA, and start-up never waits for the CA.
        // After failures a restart keeps the backoff (CAs rate-limit failed validations), unless the names changed.
        const previous = await readRenewalState(ctx.stateDir).catch(() => null);
        const sameNames = previous !== null && previous.names.join(',') === settings.names.join(',');
        const wait = previous?.lastError && sameNames ? Date.parse(previous.nextCheck) - Date.now() : 0;
        if (wait > 0) logger.info({ nextCheck: previous!.nextCheck }, 'certificate renewal: waiting for the retry time after the last failure');
        schedule(Math.min(Math.max(0, wait), checkIntervalMs));
        return [];
      },
      async stop(deadline) {
        stopped = true;
        clearTimeout(timer);
        if (!running) return;
        let wait: NodeJS.Timeout | undefined;
        await Promise.race([running, new Promise<void>((r) => { wait = setTimeout(r, Math.max(0, deadline - Date.now())); })]);
        clearTimeout(wait);
      },
    };
    return service;
  };
}

export const acmeRenewalService: ServiceFactory = createAcmeRenewalService();

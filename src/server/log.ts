// One logger for the whole server: pino JSON lines (one object per event, easy to ship and grep), or
// pino-pretty's readable lines in --dev. Both write to a file descriptor (stderr by default) from the main
// thread, so no worker thread is needed and the bundle stays self-contained.
import { pino } from 'pino';
import type { Logger } from 'pino';
import pretty from 'pino-pretty';
import { isatty } from 'node:tty';
import type { ServerConfig } from '../plan/server-config.ts';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** File descriptor to write to; stdout is left for the listener lines a person reads. */
  fd?: number;
}

export function createLogger(config: ServerConfig['log'], opts: LoggerOptions = {}): Logger {
  const fd = opts.fd ?? 2;
  const base = { level: config.level, base: { pid: process.pid } };
  if (config.pretty) {
    return pino(base, pretty({ destination: fd, sync: true, colorize: isatty(fd), singleLine: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' }));
  }
  // Asynchronous writes coalesce lines under load (one request log line each) and still go out at once when
  // idle; pino flushes what is pending when the process exits.
  return pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: fd, sync: false, minLength: 0 }));
}

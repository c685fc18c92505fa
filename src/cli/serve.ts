// `postern serve`: runs the mail server in this process, from a rendered config file (--config) or on the
// embedded development default (--dev: example.test, self-signed certificate, seeded user, high ports).
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { prepareDevServer, DEFAULT_DEV_STATE_DIR } from '../server/dev.ts';
import { DEFAULT_DRAIN_MS, loadServerConfigFile, reportConfigErrors, runServerProcess } from '../server/main.ts';
import type { ServerConfig } from '../plan/server-config.ts';

interface ServeOptions {
  dev?: boolean;
  config?: string;
  state?: string;
  ports: string;
  drainSeconds: string;
}

export function register(program: Command): void {
  program.command('serve')
    .description('run the mail server: --dev for a local one on example.test, or --config <file> for a rendered config')
    .option('--dev', 'development server: domain example.test, self-signed certificate, one seeded user, high ports, readable logs')
    .option('--config <file>', 'server config file (YAML or JSON) rendered by plan/')
    .option('--state <dir>', `state folder (keys, certificate, mail); --dev default ${DEFAULT_DEV_STATE_DIR}`)
    .option('--ports <mode>', '"config" binds the configured ports; "auto" binds free ephemeral ports (tests)', 'config')
    .option('--drain-seconds <n>', 'on SIGTERM/SIGINT, how long open connections may finish', String(DEFAULT_DRAIN_MS / 1000))
    .action(async (opts: ServeOptions) => {
      if (!opts.dev === !opts.config) program.error('serve: pass exactly one of --dev or --config <file>');
      if (opts.ports !== 'config' && opts.ports !== 'auto') program.error(`--ports: expected "config" or "auto", got ${JSON.stringify(opts.ports)}`);
      const drainSeconds = Number(opts.drainSeconds);
      if (!Number.isFinite(drainSeconds) || drainSeconds < 0 || drainSeconds > 3600) {
        program.error(`--drain-seconds: expected a number from 0 to 3600, got ${JSON.stringify(opts.drainSeconds)}`);
      }
      let config: ServerConfig;
      let banner: string[] = [];
      if (opts.dev) {
        try {
          const dev = await prepareDevServer(opts.state ?? DEFAULT_DEV_STATE_DIR);
          config = dev.config;
          banner = dev.banner;
        } catch (err) {
          process.stderr.write(`postern: cannot prepare the dev server: ${(err as Error).message}\n`);
          process.exit(1);
        }
      } else {
        const file = opts.config!;
        const loaded = loadServerConfigFile(file);
        if (!loaded.ok) process.exit(reportConfigErrors(file, loaded.errors));
        config = opts.state ? { ...loaded.value, stateDir: resolve(opts.state) } : loaded.value;
      }
      try {
        await runServerProcess(config, { ephemeralPorts: opts.ports === 'auto', drainMs: drainSeconds * 1000, banner });
      } catch (err) {
        process.stderr.write(`postern: cannot start: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });
}

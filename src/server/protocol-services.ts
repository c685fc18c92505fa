// Factories that build the protocol modules (SMTP, IMAP, POP3) from the server context. Each module takes
// typed options; this file only maps the context onto them, so every module stays testable on its own.
import type { ServiceFactory } from './context.ts';
import { createSmtpModule } from './smtp/service.ts';
import { reportIngestFor } from './reports/ingest.ts';
import { createImapService } from './imap/service.ts';
import { createPop3Service } from './pop3/service.ts';

/** MX (smtp://, 25), submission (587, STARTTLS) and submissions (smtps://, 465). */
export const smtpService: ServiceFactory = (ctx) => {
  const ports = { mx: ctx.listenPort('smtp'), submission: ctx.listenPort('submission'), submissions: ctx.listenPort('submissions') };
  if (ports.mx === null && ports.submission === null && ports.submissions === null) return null;
  return createSmtpModule({
    config: ctx.config, ports, tls: ctx.tls, store: ctx.store, spool: ctx.queue.spool, trace: ctx.trace,
    log: ctx.logger.child({ service: 'smtp' }), dkimKeys: ctx.dkimKeys,
    reports: reportIngestFor({ ...ctx.config, stateDir: ctx.stateDir }),
  }).service;
};

/** imap:// (143, STARTTLS) and imaps:// (993). */
export const imapService: ServiceFactory = (ctx) => {
  const imapPort = ctx.listenPort('imap');
  const imapsPort = ctx.listenPort('imaps');
  if (imapPort === null && imapsPort === null) return null;
  return createImapService({
    store: ctx.store, tls: ctx.tls, logger: ctx.logger, hostname: ctx.config.hostname, host: ctx.config.listenAddress,
    imapPort, imapsPort,
    limits: { maxConnectionsPerIp: ctx.config.limits.maxConnectionsPerIp, maxAppendBytes: ctx.config.limits.maxMessageBytes },
  });
};

/** pop3:// (110, STLS) and pop3s:// (995). */
export const pop3Service: ServiceFactory = (ctx) => {
  const ports = { pop3: ctx.listenPort('pop3'), pop3s: ctx.listenPort('pop3s') };
  if (ports.pop3 === null && ports.pop3s === null) return null;
  return createPop3Service({
    store: ctx.store, tls: ctx.tls, logger: ctx.logger.child({ service: 'pop3' }), hostname: ctx.config.hostname,
    listenAddress: ctx.config.listenAddress, ports, maxConnectionsPerIp: ctx.config.limits.maxConnectionsPerIp,
  });
};

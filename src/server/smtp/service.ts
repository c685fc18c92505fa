// The SMTP module as main.ts runs it: the MX, submission and submissions listeners (each optional) sharing one
// pipeline, one per-IP connection counter and one AUTH back-off table. Start runs crash recovery first
// (spooled-but-undelivered messages), so nothing accepted before a crash waits for new traffic.
import { Resolver } from 'node:dns/promises';
import type { DNSResolver } from 'mailauth';
import type { SMTPServerResolver } from 'smtp-server';
import type { ServerConfig } from '../../plan/server-config.ts';
import type { Listening, Service, TlsSource } from '../service.ts';
import type { DeliveryStore } from '../store/api.ts';
import type { Spool } from '../queue/api.ts';
import type { Trace } from '../trace/api.ts';
import type { MessageCheck } from '../pipeline/checks.ts';
import type { DkimKey } from '../pipeline/dkim-signer.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import type { PipelineLog } from '../pipeline/pipeline.ts';
import { localDomainsOf } from './addresses.ts';
import { AuthBackoff, ConnectionCounter } from './limits.ts';
import type { AuthBackoffPolicy } from './limits.ts';
import { createSmtpListener } from './listener.ts';
import { MemoryBudget } from './data-guard.ts';
import type { ListenerKind } from './listener.ts';
import type { ReportIngest } from '../reports/ingest.ts';

export interface SmtpModuleOptions {
  config: Pick<ServerConfig, 'domain' | 'hostname' | 'listenAddress' | 'users' | 'aliases' | 'limits' | 'dmarc'>;
  /** Port per listener: null = off, 0 = any free port. */
  ports: Record<ListenerKind, number | null>;
  tls: TlsSource;
  store: DeliveryStore;
  spool: Spool;
  trace: Trace;
  log: PipelineLog;
  dkimKeys: DkimKey[];
  /** Spam/antivirus filters; none by default. */
  checks?: MessageCheck[];
  /** mailauth's DNS; default: the system resolver with a 5 s timeout. */
  resolver?: DNSResolver;
  reverseDns?: SMTPServerResolver | false;
  authBackoff?: AuthBackoffPolicy;
  maxErrors?: number;
  maxCommandsBeforeMail?: number;
  /** Pause before the greeting on every listener, in ms (default 0: greet at once). */
  greetPauseMs?: number;
  sweepIntervalMs?: number;
  /** Spooled messages delivered at the same time (default 8). */
  deliveryConcurrency?: number;
  /** Pause before deliveries start, so that several share their fsyncs (default 20 ms). */
  deliveryBatchDelayMs?: number;
  /** DATA bytes all sessions may hold in memory at once (default 512 MiB, at least two maximum-size messages). */
  memoryBudgetBytes?: number;
  /** DMARC/TLS-RPT report ingestion for mail to the report addresses (reports/ingest.ts). */
  reports?: ReportIngest | undefined;
}

export interface SmtpModule {
  readonly service: Service;
  readonly pipeline: Pipeline;
}

export function systemDnsResolver(): DNSResolver {
  const r = new Resolver({ timeout: 5000, tries: 2 });
  return (name, type) => r.resolve(name, type) as Promise<string[] | string[][]>;
}

export function createSmtpModule(o: SmtpModuleOptions): SmtpModule {
  const localDomains = localDomainsOf(o.config);
  const pipeline = new Pipeline({
    hostname: o.config.hostname, domain: o.config.domain, localDomains, store: o.store, spool: o.spool, trace: o.trace,
    resolver: o.resolver ?? systemDnsResolver(), dkimKeys: o.dkimKeys, checks: o.checks ?? [],
    dmarcRejectAction: o.config.dmarc.inboundRejectAction, log: o.log, sweepIntervalMs: o.sweepIntervalMs, concurrency: o.deliveryConcurrency,
    batchDelayMs: o.deliveryBatchDelayMs,
    reports: o.reports,
  });
  const connections = new ConnectionCounter(o.config.limits.maxConnectionsPerIp);
  const authBackoff = new AuthBackoff(o.authBackoff);
  const memory = new MemoryBudget(o.memoryBudgetBytes ?? Math.max(512 * 1024 * 1024, 2 * o.config.limits.maxMessageBytes));
  const listeners: Service[] = [];
  for (const kind of ['mx', 'submission', 'submissions'] as const) {
    const port = o.ports[kind];
    if (port === null) continue;
    listeners.push(createSmtpListener({
      kind, host: o.config.listenAddress, port, hostname: o.config.hostname, localDomains,
      maxMessageBytes: o.config.limits.maxMessageBytes, maxRecipients: o.config.limits.maxRecipients,
      maxErrors: o.maxErrors, maxCommandsBeforeMail: o.maxCommandsBeforeMail, greetPauseMs: o.greetPauseMs,
      tls: o.tls, store: o.store, spool: o.spool, pipeline, trace: o.trace, connections, authBackoff, memory, log: o.log,
      reverseDns: o.reverseDns,
    }));
  }
  const service: Service = {
    name: 'smtp',
    async start(): Promise<Listening[]> {
      await pipeline.start();
      const out: Listening[] = [];
      for (const l of listeners) out.push(...await l.start());
      return out;
    },
    async stop(deadline: number): Promise<void> {
      await Promise.all(listeners.map((l) => l.stop(deadline)));
      await pipeline.stop();
    },
  };
  return { service, pipeline };
}

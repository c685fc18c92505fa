// The HTTPS documents mail clients and sending MTAs fetch: the MTA-STS policy (RFC 8461), Thunderbird
// autoconfig, Outlook autodiscover, an Apple configuration profile, and a health report. The documents are
// rendered by plan/ into the server config; this file only serves them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerConfig } from '../../plan/server-config.ts';
import type { HealthReport } from '../context.ts';
import { BodyTooLargeError, readBody, send, sendError } from './respond.ts';
import type { ResponseOptions } from './respond.ts';

export interface DocumentsDeps {
  config: ServerConfig;
  health: () => HealthReport;
  maxBodyBytes: number;
}

interface Route {
  methods: readonly string[];
  handle(req: IncomingMessage, res: ServerResponse, opts: ResponseOptions): void | Promise<void>;
}

const READ = ['GET', 'HEAD'] as const;

function serveDocument(body: string, contentType: string, extra: Record<string, string> = {}): Route['handle'] {
  return (req, res, opts) => {
    // An empty document means plan/ did not render one (e.g. MTA-STS mode none): the resource does not exist.
    if (body === '') sendError(req, res, opts, 404, 'Not Found');
    else send(req, res, opts, 200, contentType, body, extra);
  };
}

function safeFileName(domain: string): string {
  return /^[A-Za-z0-9.-]{1,253}$/.test(domain) ? domain : 'postern';
}

/** Routes by exact path; autodiscover paths also match case-insensitively because Outlook capitalises them. */
export function documentRoutes(deps: DocumentsDeps): (path: string) => Route | undefined {
  const { config } = deps;
  const mtaSts = config.mtaSts.mode === 'none' ? '' : config.mtaSts.policy;
  const autoconfig = serveDocument(config.clientConfig.autoconfigXml, 'application/xml; charset=utf-8');
  const autodiscoverDoc = serveDocument(config.clientConfig.autodiscoverXml, 'application/xml; charset=utf-8');
  const autodiscover: Route = {
    methods: ['GET', 'HEAD', 'POST'],
    async handle(req, res, opts) {
      if (req.method === 'POST') {
        // Outlook POSTs its request (the address it is configuring); the answer is the same for every address
        // of the domain, so the body is read within its limit and not otherwise used.
        try {
          await readBody(req, deps.maxBodyBytes);
        } catch (err) {
          if (err instanceof BodyTooLargeError) {
            sendError(req, res, { ...opts, closing: true }, 413, 'Content Too Large');
            return;
          }
          throw err;
        }
      }
      autodiscoverDoc(req, res, opts);
    },
  };
  const exact = new Map<string, Route>([
    ['/.well-known/mta-sts.txt', { methods: READ, handle: serveDocument(mtaSts, 'text/plain; charset=utf-8') }],
    ['/mail/config-v1.1.xml', { methods: READ, handle: autoconfig }],
    ['/.well-known/autoconfig/mail/config-v1.1.xml', { methods: READ, handle: autoconfig }],
    ['/.mobileconfig', {
      methods: READ,
      handle: serveDocument(config.clientConfig.mobileconfig, 'application/x-apple-aspen-config',
        { 'content-disposition': `attachment; filename="${safeFileName(config.domain)}.mobileconfig"` }),
    }],
    ['/healthz', {
      methods: READ,
      handle(req, res, opts) {
        const report = deps.health();
        send(req, res, opts, report.ok ? 200 : 503, 'application/json', JSON.stringify(report) + '\n');
      },
    }],
  ]);
  return (path) => exact.get(path) ?? (path.toLowerCase() === '/autodiscover/autodiscover.xml' ? autodiscover : undefined);
}

export type { Route };

// The HTTPS documents mail clients and sending MTAs fetch: the MTA-STS policy (RFC 8461), Thunderbird
// autoconfig, Outlook autodiscover, an Apple configuration profile, and a health report. The documents are
// rendered by plan/ into the server config; this file only serves them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerConfig } from '../../plan/server-config.ts';
import { PUBLIC_CLIENT_PORTS, renderAutodiscoverXml } from '../../plan/client-config.ts';
import { parseAddress } from '../../plan/names.ts';
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

/** The <EMailAddress> of an Outlook autodiscover request, when it is a valid address in `domain`. */
export function requestedAddress(xml: string, domain: string): string | undefined {
  const m = /<EMailAddress>\s*([^<\s]{3,254})\s*<\/EMailAddress>/.exec(xml);
  const parsed = m ? parseAddress(m[1]!) : undefined;
  return parsed && parsed.domain === domain.toLowerCase() ? parsed.address : undefined;
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
  const clientPorts = {
    imaps: config.ports.imaps || PUBLIC_CLIENT_PORTS.imaps,
    pop3s: config.ports.pop3s || PUBLIC_CLIENT_PORTS.pop3s,
    submissions: config.ports.submissions || PUBLIC_CLIENT_PORTS.submissions,
  };
  const autodiscover: Route = {
    methods: ['GET', 'HEAD', 'POST'],
    async handle(req, res, opts) {
      if (req.method !== 'POST' || config.clientConfig.autodiscoverXml === '') return autodiscoverDoc(req, res, opts);
      let body: Buffer;
      try {
        body = await readBody(req, deps.maxBodyBytes);
      } catch (err) {
        if (err instanceof BodyTooLargeError) return sendError(req, res, { ...opts, closing: true }, 413, 'Content Too Large');
        throw err;
      }
      // Outlook POSTs the address it is configuring; when it is one of ours, the answer names it as the login.
      const email = requestedAddress(body.toString('utf8'), config.domain);
      if (email === undefined) return autodiscoverDoc(req, res, opts);
      send(req, res, opts, 200, 'application/xml; charset=utf-8', renderAutodiscoverXml(config, clientPorts, email));
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

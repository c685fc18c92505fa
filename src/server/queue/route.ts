// Where one destination's mail goes right now: the relay's addresses, or the recipient domain's MX hosts filtered
// by its MTA-STS policy, each as a connection target with the TLS it requires. Temporary and permanent failures
// (no MX answer yet, null MX) are results, not exceptions.
import { isIP } from 'node:net';
import { mxAllowed } from './mta-sts.ts';
import type { StsPolicy, StsPolicySource } from './mta-sts.ts';
import { resolveMxRoute } from './mx.ts';
import type { QueueResolver } from './mx.ts';
import type { OutboundTarget } from './smtp-client.ts';

export interface RelaySettings {
  host: string;
  /** 465 = implicit TLS; anything else = STARTTLS required. */
  port: number;
  username?: string;
  password?: string;
}

export type Route =
  /** `sts`: the MTA-STS mode the targets were chosen under, or `relay`. */
  | { kind: 'targets'; targets: OutboundTarget[]; sts: string }
  /** `status`: the enhanced status code for the DSN. */
  | { kind: 'permanent'; reason: string; status: string }
  | { kind: 'temporary'; reason: string };

export interface RouteDeps {
  resolver: QueueResolver;
  stsPolicy: StsPolicySource;
  relay?: RelaySettings;
  mxPort: number;
  warn: (message: string) => void;
  /** Records a routing decision worth showing in the message's trace. */
  note: (detail: string) => void;
}

async function relayRoute(deps: RouteDeps, relay: RelaySettings): Promise<Route> {
  // The relay's name goes through the same resolver as MX lookups (tests, split-horizon setups).
  let addresses = [relay.host];
  if (isIP(relay.host) === 0) {
    const [v4, v6] = await Promise.allSettled([deps.resolver.resolve4(relay.host), deps.resolver.resolve6(relay.host)]);
    addresses = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (!addresses.length) return { kind: 'temporary', reason: `relay host ${relay.host} has no address records` };
  }
  const targets = addresses.map((address): OutboundTarget => ({
    hostname: relay.host,
    address,
    port: relay.port,
    tls: relay.port === 465 ? 'implicit' : 'required',
    ...(relay.username ? { auth: { user: relay.username, pass: relay.password ?? '' } } : {}),
  }));
  return { kind: 'targets', targets, sts: 'relay' };
}

/** `domain` is the recipient domain; null in relay mode. */
export async function resolveRoute(deps: RouteDeps, domain: string | null): Promise<Route> {
  if (deps.relay) return relayRoute(deps, deps.relay);
  if (domain === null) throw new Error('a destination without a domain needs a relay');
  const mx = await resolveMxRoute(deps.resolver, domain);
  if (mx.kind === 'permanent') return { kind: 'permanent', reason: mx.reason, status: /null MX/.test(mx.reason) ? '5.1.10' : '5.1.2' };
  if (mx.kind === 'temporary') return { kind: 'temporary', reason: mx.reason };
  let policy: StsPolicy;
  try {
    policy = await deps.stsPolicy(domain);
  } catch (err) {
    // mailauth already falls back to a cached policy; a fetch error with nothing cached means no policy.
    deps.warn(`MTA-STS policy for ${domain}: ${(err as Error).message}`);
    policy = { mode: 'none', mx: [] };
  }
  let hosts = mx.hosts;
  if (policy.mode === 'enforce') {
    hosts = hosts.filter((h) => mxAllowed(policy, h.name));
    if (!hosts.length) {
      deps.note(`MTA-STS enforce: no MX of ${domain} matches the policy (${policy.mx.join(', ')})`);
      return { kind: 'temporary', reason: `MTA-STS policy of ${domain} (enforce) allows none of its MX hosts` };
    }
  }
  const tls = policy.mode === 'enforce' ? 'required' : 'opportunistic';
  const targets = hosts.flatMap((h) => h.addresses.map((address): OutboundTarget => ({ hostname: h.name, address, port: deps.mxPort, tls })));
  return { kind: 'targets', targets, sts: policy.mode };
}

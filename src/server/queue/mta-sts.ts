// MTA-STS (RFC 8461) for outbound delivery: which policy a recipient domain publishes, cached until it expires,
// through mailauth's helpers. The policy source is injectable so tests can serve policies without port 443.
import { getPolicy, validateMx } from 'mailauth/lib/mta-sts.js';
import type { QueueResolver } from './mx.ts';

export interface StsPolicy {
  mode: 'enforce' | 'testing' | 'none';
  /** Allowed MX patterns (`mx.example.org`, `*.example.org`). */
  mx: string[];
}

/** Returns the domain's policy, or a `none` policy when it has none. */
export type StsPolicySource = (domain: string) => Promise<StsPolicy>;

type CachedPolicy = Parameters<typeof getPolicy>[1];

/** The real source: `_mta-sts` TXT through our resolver, then the policy over HTTPS, cached per domain. */
export function mailauthPolicySource(resolver: QueueResolver, maxCached = 10_000): StsPolicySource {
  const cache = new Map<string, CachedPolicy>();
  const lookup = async (name: string, type: string): Promise<unknown> => resolver.resolve(name, type as 'TXT');
  return async (domain) => {
    const key = domain.toLowerCase();
    const known = cache.get(key) ?? null;
    const result = await getPolicy(key, known, { resolver: lookup as never, timeout: 20_000 });
    if (cache.size >= maxCached) cache.delete(cache.keys().next().value as string);
    cache.set(key, result.policy);
    return { mode: result.policy.mode, mx: result.policy.mx ?? [] };
  };
}

/** Whether an MX host name is allowed by the policy (always true for `none`). */
export function mxAllowed(policy: StsPolicy, host: string): boolean {
  if (policy.mode === 'none') return true;
  return validateMx(host, { mode: policy.mode, mx: policy.mx }).valid;
}

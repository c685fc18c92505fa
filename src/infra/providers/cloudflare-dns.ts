// DNS-01 challenge records through the Cloudflare v4 API (the only Cloudflare calls made outside the Pulumi
// provider: the challenge record lives for a few seconds and must not appear in Pulumi state).
import type { DnsApiSettings, DnsChallengeApi } from './dns-challenge.ts';

export const CLOUDFLARE_API = 'https://api.cloudflare.com/client/v4';
const MAX_RESPONSE_BYTES = 1 << 20;

interface CloudflareEnvelope {
  success: boolean;
  errors?: { code: number; message: string }[];
  result?: unknown;
}

/** settings: `apiToken` (Bearer token with Zone.DNS edit), `zoneId`, optional `apiBaseUrl` (tests). */
export async function cloudflareChallengeApi(settings: DnsApiSettings): Promise<DnsChallengeApi> {
  const { apiToken, zoneId } = settings;
  const base = (settings.apiBaseUrl ?? 'https://api.cloudflare.com/client/v4').replace(/\/+$/, '');
  if (!apiToken) throw new Error('Cloudflare DNS: apiToken is missing (set cloudflare:apiToken as a secret)');
  if (!zoneId || !/^[0-9a-f]{32}$/.test(zoneId)) throw new Error(`Cloudflare DNS: zoneId ${JSON.stringify(zoneId)} is not a 32-hex-digit zone id`);

  async function call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(`${base}/zones/${zoneId}${path}`, {
      method,
      headers: { authorization: `Bearer ${apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (text.length > MAX_RESPONSE_BYTES) throw new Error(`Cloudflare ${method} ${path}: response larger than ${MAX_RESPONSE_BYTES} bytes`);
    let parsed: CloudflareEnvelope;
    try {
      parsed = JSON.parse(text) as CloudflareEnvelope;
    } catch {
      throw new Error(`Cloudflare ${method} ${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
    }
    if (!res.ok || !parsed.success) {
      const why = (parsed.errors ?? []).map((e) => `${e.code} ${e.message}`).join('; ') || `HTTP ${res.status}`;
      throw new Error(`Cloudflare ${method} ${path} failed: ${why}`);
    }
    return parsed.result;
  }

  // Cloudflare stores TXT content quoted; the same quoting is used when looking the record up again.
  const quoted = (value: string) => `"${value}"`;

  async function find(fqdn: string, value: string): Promise<string[]> {
    const query = new URLSearchParams({ type: 'TXT', name: fqdn, per_page: '100' });
    const result = await call('GET', `/dns_records?${query}`);
    if (!Array.isArray(result)) throw new Error('Cloudflare list dns_records: result is not a list');
    return result
      .filter((r: { content?: string; id?: string }) => (r.content === quoted(value) || r.content === value) && typeof r.id === 'string')
      .map((r: { id: string }) => r.id);
  }

  return {
    async setTxt(fqdn, value) {
      await call('POST', '/dns_records', { type: 'TXT', name: fqdn, content: quoted(value), ttl: 60, comment: 'postern ACME DNS-01 challenge' });
    },
    async clearTxt(fqdn, value) {
      for (const id of await find(fqdn, value)) await call('DELETE', `/dns_records/${id}`);
    },
  };
}

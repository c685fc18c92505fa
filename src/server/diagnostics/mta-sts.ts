// MTA-STS (RFC 8461): the _mta-sts TXT record, the policy served at https://mta-sts.<domain>/.well-known/mta-sts.txt,
// and that the TXT id changed along with the policy (senders refetch a policy only when the id changes).
import type { DiagnosticResolver } from './resolver.ts';
import type { TextFetcher } from './https-fetch.ts';
import { dkimTags } from './dkim.ts';
import { fail, ok, warn, type CheckResult } from './check.ts';

export interface MtaStsExpectation {
  mode: 'none' | 'testing' | 'enforce';
  /** The policy text as planned (what the server should serve). */
  policy?: string;
  /** The id the plan publishes for that policy. */
  id?: string;
}

export interface ParsedStsPolicy {
  version: string;
  mode: string;
  mx: string[];
  maxAge: number;
}

export function parseStsPolicy(text: string): ParsedStsPolicy | string {
  const fields = new Map<string, string[]>();
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const m = /^([A-Za-z0-9_]+):\s*(.*?)\s*$/.exec(line);
    if (!m) return `line ${JSON.stringify(line.slice(0, 80))} is not "key: value"`;
    const list = fields.get(m[1]!) ?? [];
    list.push(m[2]!);
    fields.set(m[1]!, list);
  }
  const version = fields.get('version')?.[0];
  const mode = fields.get('mode')?.[0];
  const maxAge = Number(fields.get('max_age')?.[0]);
  if (version !== 'STSv1') return 'version is not STSv1';
  if (!mode || !['none', 'testing', 'enforce'].includes(mode)) return 'mode is not none, testing or enforce';
  if (!Number.isInteger(maxAge) || maxAge < 0 || maxAge > 31557600) return 'max_age is not a number of seconds up to 31557600';
  return { version, mode, mx: fields.get('mx') ?? [], maxAge };
}

function mxMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  const h = host.toLowerCase();
  if (p.startsWith('*.')) return h.endsWith(p.slice(1)) && !h.slice(0, h.length - p.length + 1).includes('.');
  return p === h;
}

export async function checkMtaSts(resolver: DiagnosticResolver, fetchText: TextFetcher, domain: string, hostname: string,
  expected: MtaStsExpectation): Promise<CheckResult[]> {
  const txtName = `_mta-sts.${domain}`;
  const url = `https://mta-sts.${domain}/.well-known/mta-sts.txt`;
  const records = (await resolver.txt(txtName)).filter((t) => /^v=STSv1/i.test(t));
  const wantTxt = `v=STSv1; id=${expected.id ?? '<policy id>'}`;
  const results: CheckResult[] = [];
  if (records.length === 0) {
    if (expected.mode === 'none') return [ok('dns.mta-sts', 'MTA-STS is not used (mode none)')];
    return [fail('dns.mta-sts', `no MTA-STS record at ${txtName}: senders will not enforce TLS to you`, `publish TXT ${txtName} "${wantTxt}"`)];
  }
  if (records.length > 1) return [fail('dns.mta-sts', `${records.length} MTA-STS records at ${txtName}: senders ignore them all`, `publish only TXT ${txtName} "${wantTxt}"`)];
  const txtId = dkimTags(records[0]!).get('id') ?? '';
  if (!/^[A-Za-z0-9]{1,32}$/.test(txtId)) return [fail('dns.mta-sts', `MTA-STS record at ${txtName} has no valid id= (1-32 letters and digits)`, `publish TXT ${txtName} "${wantTxt}"`)];

  let served: string;
  try {
    const res = await fetchText(url);
    if (res.status !== 200) return [fail('mta-sts.policy', `${url} answered HTTP ${res.status}, not the policy`, 'make sure the web listener runs and serves the policy (`postern doctor --local` on the host), and that mta-sts.' + domain + ' points at the host')];
    if (!/^text\/plain/i.test(res.contentType)) results.push(warn('mta-sts.policy.type', `${url} is served as ${res.contentType || 'no content type'}, RFC 8461 requires text/plain`, 'serve the policy with Content-Type: text/plain'));
    served = res.body;
  } catch (err) {
    return [fail('mta-sts.policy', `MTA-STS policy could not be fetched from ${url}: ${(err as Error).message}`, `make sure mta-sts.${domain} resolves to the host and its certificate covers mta-sts.${domain}`)];
  }
  const policy = parseStsPolicy(served);
  if (typeof policy === 'string') return [fail('mta-sts.policy', `MTA-STS policy at ${url} is invalid: ${policy}`, 'redeploy so the server serves the planned policy (`pulumi up`)')];
  if (policy.mode !== 'none' && !policy.mx.some((p) => mxMatches(p, hostname))) {
    results.push(fail('mta-sts.policy', `MTA-STS policy (mode ${policy.mode}) does not list ${hostname} as an MX: senders refuse to deliver to it`, `add "mx: ${hostname}" to the policy (redeploy with \`pulumi up\`)`));
  } else if (expected.policy !== undefined && served.replace(/\r\n/g, '\n').trim() !== expected.policy.replace(/\r\n/g, '\n').trim()) {
    results.push(fail('mta-sts.policy', `the served MTA-STS policy (mode ${policy.mode}) is not the planned one (mode ${expected.mode})`, 'redeploy the server configuration (`pulumi up`)'));
  } else {
    results.push(ok('mta-sts.policy', `MTA-STS policy served: mode ${policy.mode}, max_age ${policy.maxAge}s`));
  }
  if (expected.id !== undefined && txtId !== expected.id) {
    results.push(fail('dns.mta-sts', `MTA-STS TXT id=${txtId} does not match the served policy's id ${expected.id}: senders that cached the old policy keep using it`, `publish TXT ${txtName} "v=STSv1; id=${expected.id}"`));
  } else {
    results.push(ok('dns.mta-sts', `MTA-STS record id=${txtId}${expected.id !== undefined ? ' matches the served policy' : ''}`));
  }
  return results;
}

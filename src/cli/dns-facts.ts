// Builds a stack's DNS plan for the CLI: reads the stack file and the DKIM key files, and stands in
// documentation addresses for the facts only a deploy knows, remembering which values they are.
import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { parseStackFile, type StackConfig } from '../plan/stack-config.ts';
import { planDns, type DnsFacts, type DnsPlan } from '../plan/dns-plan.ts';
import { dkimSelectors } from '../plan/dkim.ts';
import { mtaStsPolicyId, renderMtaStsPolicy } from '../plan/client-config.ts';
import type { DnsRecord } from '../plan/dns-records.ts';

/** RFC 5737 / RFC 3849 documentation addresses: never routable, so a placeholder cannot be mistaken for a host. */
export const PLACEHOLDER_IPV4 = '192.0.2.1';
export const PLACEHOLDER_IPV6 = '2001:db8::1';

export class CliError extends Error {}

export interface FactOptions { ipv4?: string; ipv6?: string; dkimFile?: string[] }

export interface StackPlan {
  stack: StackConfig;
  plan: DnsPlan;
  /** Human descriptions of what is not known yet (empty when every fact was given). */
  unknown: string[];
  /** True for records whose data contains a placeholder. */
  isPlaceholder: (r: DnsRecord) => boolean;
}

const MAX_STACK_FILE_BYTES = 1024 * 1024;
const MAX_KEY_FILE_BYTES = 64 * 1024;

export function loadStack(stacksDir: string, name: string): StackConfig {
  // The stack name becomes part of a file name: letters, digits, dot, dash, underscore only.
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/.test(name)) throw new CliError(`--stack: ${JSON.stringify(name)} is not a stack name (letters, digits, ".", "-", "_")`);
  const file = join(stacksDir, `Pulumi.${name}.yaml`);
  let text: string;
  try {
    const buf = readFileSync(file);
    if (buf.length > MAX_STACK_FILE_BYTES) throw new CliError(`${file}: larger than ${MAX_STACK_FILE_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`cannot read stack ${JSON.stringify(name)}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? `${file} does not exist` : (e as Error).message}`);
  }
  const r = parseStackFile(text);
  if (!r.ok) throw new CliError(`${file} is not a valid stack:\n${r.errors.map((e) => `  ${e}`).join('\n')}`);
  return r.value;
}

/** The base64 DER SubjectPublicKeyInfo of a PEM public or private key file. */
function readPublicKey(selector: string, file: string): string {
  let pem: string;
  try {
    const buf = readFileSync(file);
    if (buf.length > MAX_KEY_FILE_BYTES) throw new CliError(`--dkim-file ${selector}: ${file} is larger than ${MAX_KEY_FILE_BYTES} bytes`);
    pem = buf.toString('utf8');
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`--dkim-file ${selector}: cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return createPublicKey(pem).export({ type: 'spki', format: 'der' }).toString('base64');
  } catch {
    throw new CliError(`--dkim-file ${selector}: ${file} holds no PEM public or private key`);
  }
}

export function buildStackPlan(stacksDir: string, name: string, opts: FactOptions): StackPlan {
  const stack = loadStack(stacksDir, name);
  if (opts.ipv4 !== undefined && !isIPv4(opts.ipv4)) throw new CliError(`--ipv4: ${JSON.stringify(opts.ipv4)} is not an IPv4 address`);
  if (opts.ipv6 !== undefined && !isIPv6(opts.ipv6)) throw new CliError(`--ipv6: ${JSON.stringify(opts.ipv6)} is not an IPv6 address`);
  if (opts.ipv6 !== undefined && !stack.ipv6) throw new CliError(`--ipv6: the stack has postern:ipv6 false`);
  const selectors = dkimSelectors(stack);
  const dkim: DnsFacts['dkim'] = [];
  for (const spec of opts.dkimFile ?? []) {
    const eq = spec.indexOf('=');
    const selector = spec.slice(0, eq);
    const sel = selectors.find((s) => s.selector === selector);
    if (eq <= 0 || !sel) {
      throw new CliError(`--dkim-file: expected <selector>=<key file> with selector one of ${selectors.map((s) => s.selector).join(', ')}; got ${JSON.stringify(spec)}`);
    }
    dkim.push({ selector, algorithm: sel.algorithm, publicKey: readPublicKey(selector, spec.slice(eq + 1)) });
  }
  const unknown: string[] = [];
  const ipv4 = opts.ipv4 ?? PLACEHOLDER_IPV4;
  if (opts.ipv4 === undefined) unknown.push(`IPv4 address of ${stack.hostname}: ${PLACEHOLDER_IPV4} stands in (pass --ipv4)`);
  let ipv6: string | undefined;
  if (stack.ipv6) {
    ipv6 = opts.ipv6 ?? PLACEHOLDER_IPV6;
    if (opts.ipv6 === undefined) unknown.push(`IPv6 address of ${stack.hostname}: ${PLACEHOLDER_IPV6} stands in (pass --ipv6)`);
  }
  const plan = planDns(stack, { ipv4, ...(ipv6 ? { ipv6 } : {}), dkim, mtaStsPolicyId: mtaStsPolicyId(renderMtaStsPolicy(stack)), allowMissingDkim: true });
  for (const p of plan.pendingDkim) unknown.push(`DKIM public key of selector ${p.selector} (${p.algorithm}): generated at deploy (pass --dkim-file ${p.selector}=<key file>)`);
  const placeholders = [opts.ipv4 === undefined ? PLACEHOLDER_IPV4 : undefined, stack.ipv6 && opts.ipv6 === undefined ? PLACEHOLDER_IPV6 : undefined]
    .filter((x): x is string => x !== undefined);
  const isPlaceholder = (r: DnsRecord): boolean => {
    const data = r.type === 'A' || r.type === 'AAAA' || r.type === 'TXT' ? r.value : '';
    return placeholders.some((p) => data === p || data.includes(`:${p} `));
  };
  return { stack, plan, unknown, isPlaceholder };
}

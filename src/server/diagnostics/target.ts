// What the doctor checks against: the domain's expected state, derived from the stack config through plan/ (the
// same functions `pulumi up` publishes from), plus the host's addresses.
import type { StackConfig } from '../../plan/stack-config.ts';
import type { ServerConfig } from '../../plan/server-config.ts';
import { planDns, spfValue, type DnsPlan } from '../../plan/dns-plan.ts';
import { mtaStsPolicyId, renderMtaStsPolicy } from '../../plan/client-config.ts';
import { dkimSelectors, dkimTxtValue, dkimPublicValue, type DkimAlgorithm } from '../../plan/dkim.ts';
import type { DkimSelector } from './dkim.ts';
import type { MtaStsExpectation } from './mta-sts.ts';

export interface DiagnosticTarget {
  domain: string;
  hostname: string;
  ipv4: string;
  ipv6?: string;
  /** The full record plan; absent on the host without the stack file (then SPF, DKIM, DMARC, MTA-STS are checked one by one). */
  dnsPlan?: Pick<DnsPlan, 'records' | 'owned'>;
  spf: string;
  dmarc: string;
  dkim: DkimSelector[];
  mtaSts: MtaStsExpectation;
  relayConfigured: boolean;
}

/**
 * The target for a stack. DKIM public keys are known on the host (from the private keys) but not on a laptop:
 * without them the DKIM records are checked for presence and validity only.
 */
export function targetFromStack(stack: StackConfig, facts: { ipv4: string; ipv6?: string; dkimPublicKeys?: { selector: string; algorithm: DkimAlgorithm; publicKey: string }[] }): DiagnosticTarget {
  const policy = renderMtaStsPolicy(stack);
  const id = mtaStsPolicyId(policy);
  const plan = planDns(stack, {
    ipv4: facts.ipv4, ...(facts.ipv6 ? { ipv6: facts.ipv6 } : {}), dkim: facts.dkimPublicKeys ?? [], mtaStsPolicyId: id,
    allowMissingDkim: true,
  });
  const ipv6 = stack.ipv6 ? facts.ipv6 : undefined;
  const dmarc = plan.records.find((r) => r.type === 'TXT' && r.name === `_dmarc.${stack.domain}`);
  return {
    domain: stack.domain,
    hostname: stack.hostname,
    ipv4: facts.ipv4,
    ...(ipv6 ? { ipv6 } : {}),
    dnsPlan: plan,
    spf: spfValue(stack, facts.ipv4, ipv6),
    dmarc: dmarc && dmarc.type === 'TXT' ? dmarc.value : `v=DMARC1; p=${stack.dmarc.policy}`,
    dkim: dkimSelectors(stack).map((sel) => {
      const key = facts.dkimPublicKeys?.find((k) => k.selector === sel.selector && k.algorithm === sel.algorithm);
      return key
        ? { selector: sel.selector, algorithm: sel.algorithm, expectedRecord: dkimTxtValue(sel.algorithm, dkimPublicValue(sel.selector, sel.algorithm, key.publicKey)) }
        : { selector: sel.selector, algorithm: sel.algorithm };
    }),
    mtaSts: { mode: stack.mtaSts.mode, policy, id },
    relayConfigured: stack.relay !== undefined,
  };
}

/**
 * The target on the host from the server's runtime config alone (no stack file there): the record plan is not
 * known, so the DNS group checks SPF, DKIM (against the keys the server signs with), DMARC and MTA-STS one by one.
 */
export function targetFromServerConfig(config: ServerConfig, facts: { ipv4: string; ipv6?: string; dkimPublicKeys: { selector: string; algorithm: DkimAlgorithm; publicKey: string }[] }): DiagnosticTarget {
  const policy = config.mtaSts.policy;
  const dmarc = [`v=DMARC1`, `p=${config.dmarc.policy}`, ...(config.dmarc.reportAddress ? [`rua=mailto:${config.dmarc.reportAddress}`] : [])].join('; ');
  return {
    domain: config.domain,
    hostname: config.hostname,
    ipv4: facts.ipv4,
    ...(facts.ipv6 ? { ipv6: facts.ipv6 } : {}),
    spf: spfValue({}, facts.ipv4, facts.ipv6),
    dmarc,
    dkim: facts.dkimPublicKeys.map((k) => ({ selector: k.selector, algorithm: k.algorithm, expectedRecord: dkimTxtValue(k.algorithm, dkimPublicValue(k.selector, k.algorithm, k.publicKey)) })),
    mtaSts: { mode: config.mtaSts.mode, ...(policy ? { policy, id: mtaStsPolicyId(policy) } : {}) },
    relayConfigured: config.relay !== undefined,
  };
}

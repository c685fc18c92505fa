// What the doctor checks against: the domain's expected state, derived from the stack config through plan/ (the
// same functions `pulumi up` publishes from), plus the host's addresses.
import type { StackConfig } from '../../plan/stack-config.ts';
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
  dnsPlan: Pick<DnsPlan, 'records' | 'owned'>;
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
      return key ? { selector: sel.selector, expectedRecord: dkimTxtValue(sel.algorithm, dkimPublicValue(sel.selector, sel.algorithm, key.publicKey)) } : { selector: sel.selector };
    }),
    mtaSts: { mode: stack.mtaSts.mode, policy, id },
    relayConfigured: stack.relay !== undefined,
  };
}

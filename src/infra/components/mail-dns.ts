// MailDns: the Cloudflare records of a Postern domain, one DnsRecord per record in the plan (src/plan/dns-plan.ts),
// never proxied (mail and TLS go straight to the host).
//
// The set of records depends only on the stack; their values also on the droplet's addresses and the DKIM keys,
// which are known later. So the plan runs twice: once with placeholder facts for the shape (names, types,
// count — every resource exists in `pulumi preview`), once with the real facts for the values.
import * as pulumi from '@pulumi/pulumi';
import * as cloudflare from '@pulumi/cloudflare';
import type { StackConfig } from '../../plan/stack-config.ts';
import { planDns, type DnsFacts } from '../../plan/dns-plan.ts';
import { txtChunks, type DnsRecord } from '../../plan/dns-records.ts';
import { dkimTxtValue, type DkimAlgorithm } from '../../plan/dkim.ts';

export interface DkimPublic { selector: string; algorithm: DkimAlgorithm; publicKey: string }

export interface MailDnsArgs {
  stack: StackConfig;
  zoneId: pulumi.Input<string>;
  ipv4: pulumi.Input<string>;
  ipv6: pulumi.Input<string>;
  dkim: pulumi.Input<DkimPublic[]>;
  mtaStsPolicyId: string;
  /** DKIM records of selectors rotated out by the last change: still published (see providers/dkim.ts). */
  retiredDkim: pulumi.Input<{ selector: string; algorithm: DkimAlgorithm; dnsValue: string }[]>;
}

/** Cloudflare's representation of a record: TXT pre-split into quoted character-strings (as Cloudflare returns it, so no diff on the next up). */
export function cloudflareRecordArgs(r: DnsRecord): Pick<cloudflare.DnsRecordArgs, 'content' | 'priority' | 'data'> {
  switch (r.type) {
    case 'A': case 'AAAA': case 'CNAME': return { content: r.value };
    case 'MX': return { content: r.value, priority: r.priority };
    case 'TXT': return { content: txtChunks(r.value).map((c) => `"${c.replace(/["\\]/g, (m) => `\\${m}`)}"`).join(' ') };
    case 'SRV': return { data: { priority: r.priority, weight: r.weight, port: r.port, target: r.target } };
    case 'CAA': return { data: { flags: r.flags, tag: r.tag, value: r.value } };
  }
}

/** The stable logical name of a record: type and name, plus an ordinal when a name has several of a type. */
function recordKeys(records: readonly DnsRecord[]): string[] {
  const count = new Map<string, number>();
  return records.map((r) => {
    const base = `${r.type}-${r.name}`;
    const n = count.get(base) ?? 0;
    count.set(base, n + 1);
    return n === 0 ? base : `${base}-${n + 1}`;
  });
}

export class MailDns extends pulumi.ComponentResource {
  /** The records as published: the table shown in the stack outputs. */
  readonly table: pulumi.Output<{ name: string; type: string; value: string }[]>;
  readonly records: cloudflare.DnsRecord[] = [];

  constructor(name: string, args: MailDnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('postern:infra:MailDns', name, {}, opts);
    const { stack } = args;
    const shapeFacts: DnsFacts = {
      ipv4: '192.0.2.1', ...(stack.ipv6 ? { ipv6: '2001:db8::1' } : {}), dkim: [], allowMissingDkim: true, mtaStsPolicyId: args.mtaStsPolicyId,
    };
    const shape = planDns(stack, shapeFacts);
    // DKIM records come in place of the pending entries, in the same order as the real plan lists them.
    const real = pulumi.all([args.ipv4, args.ipv6, args.dkim]).apply(([ipv4, ipv6, dkim]) =>
      planDns(stack, { ipv4, ...(stack.ipv6 && ipv6 ? { ipv6 } : {}), dkim, mtaStsPolicyId: args.mtaStsPolicyId }).records);
    const shapeRecords: DnsRecord[] = [...shape.records, ...shape.pendingDkim.map((p): DnsRecord => ({ name: p.name, type: 'TXT', ttl: stack.dnsTtl, value: '' }))];
    const keys = recordKeys(shapeRecords);

    shapeRecords.forEach((r, i) => {
      const key = keys[i]!;
      const value = real.apply((records) => {
        const found = recordKeys(records).indexOf(key);
        if (found < 0) throw new Error(`DNS plan has no record ${key} any more: the plan's shape changed between runs`);
        return records[found]!;
      });
      this.records.push(new cloudflare.DnsRecord(`${name}-${key}`, {
        zoneId: args.zoneId, name: r.name, type: r.type, ttl: r.ttl, proxied: false,
        content: value.apply((v) => cloudflareRecordArgs(v).content as string | undefined),
        priority: value.apply((v) => cloudflareRecordArgs(v).priority as number | undefined),
        data: value.apply((v) => cloudflareRecordArgs(v).data as cloudflare.types.input.DnsRecordData | undefined),
        comment: 'managed by postern (pulumi)',
      }, { parent: this, deleteBeforeReplace: true }));
    });

    // Retired DKIM selectors are known only once the keys exist; they are TXT records like the plan's own.
    pulumi.output(args.retiredDkim).apply((retired) => {
      for (const r of retired) {
        const fqdn = `${r.selector}._domainkey.${stack.domain}`;
        const value = dkimTxtValue(r.algorithm, r.dnsValue.replace(/^.*p=/, ''));
        this.records.push(new cloudflare.DnsRecord(`${name}-retired-${fqdn}`, {
          zoneId: args.zoneId, name: fqdn, type: 'TXT', ttl: stack.dnsTtl, proxied: false,
          content: cloudflareRecordArgs({ name: fqdn, type: 'TXT', ttl: stack.dnsTtl, value }).content as string,
          comment: 'managed by postern (pulumi): retired DKIM key, removed at the next rotation',
        }, { parent: this }));
      }
    });

    this.table = real.apply((records) => records.map((r) => ({
      name: r.name, type: r.type,
      value: r.type === 'SRV' ? `${r.priority} ${r.weight} ${r.port} ${r.target}` : r.type === 'CAA' ? `${r.flags} ${r.tag} "${r.value}"`
        : r.type === 'MX' ? `${r.priority} ${r.value}` : r.value,
    })));
    this.registerOutputs({ table: this.table });
  }
}

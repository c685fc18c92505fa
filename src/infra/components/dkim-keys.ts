// DkimKeys: one key pair per DKIM selector the stack asks for (rsa and/or ed25519). The resources are named by
// algorithm, not selector, so a new selectorPrefix updates them in place: new keys, and the previous selector's
// record kept published until the next rotation (providers/dkim.ts).
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from '../../plan/stack-config.ts';
import { dkimSelectors, type DkimAlgorithm } from '../../plan/dkim.ts';
import { DkimKey } from '../providers/dkim.ts';

export interface DkimKeyOutput {
  selector: string;
  algorithm: DkimAlgorithm;
  key: DkimKey;
}

export class DkimKeys extends pulumi.ComponentResource {
  readonly keys: DkimKeyOutput[];
  /** Public keys for the DNS plan. */
  readonly publicKeys: pulumi.Output<{ selector: string; algorithm: DkimAlgorithm; publicKey: string }[]>;
  readonly retired: pulumi.Output<{ selector: string; algorithm: DkimAlgorithm; dnsValue: string }[]>;

  constructor(name: string, args: { stack: StackConfig }, opts?: pulumi.ComponentResourceOptions) {
    super('postern:infra:DkimKeys', name, {}, opts);
    this.keys = dkimSelectors(args.stack).map((s) => ({
      selector: s.selector, algorithm: s.algorithm,
      key: new DkimKey(`${name}-${s.algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519'}`, {
        selector: s.selector, algorithm: s.algorithm,
        ...(s.rsaBits !== undefined ? { rsaBits: s.rsaBits as 2048 | 3072 | 4096 } : {}),
      }, { parent: this }),
    }));
    this.publicKeys = pulumi.all(this.keys.map((k) => k.key.publicKey)).apply((pks) =>
      pks.map((publicKey, i) => ({ selector: this.keys[i]!.selector, algorithm: this.keys[i]!.algorithm, publicKey })));
    this.retired = pulumi.all(this.keys.map((k) => k.key.retired)).apply((rs) =>
      rs.filter((r): r is NonNullable<typeof r> => r !== null && r !== undefined && !this.keys.some((k) => k.selector === r.selector)));
    this.registerOutputs({ publicKeys: this.publicKeys });
  }
}

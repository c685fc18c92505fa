// Runs a dynamic provider the way Pulumi's provider host does: serialised by Pulumi's closure serialiser, then
// loaded from that text with require-from-string. A provider that captured a module or a secret, or whose
// imports only work from the program's own module, fails here as it would under `pulumi up`.
import * as pulumi from '@pulumi/pulumi';
import { createRequire } from 'node:module';

const requireHere = createRequire(import.meta.url);

export interface SerializedProvider<P> {
  provider: P;
  /** The serialised module text (what lands in Pulumi state as `__provider`). */
  text: string;
}

export async function loadSerializedProvider<P extends object>(provider: P): Promise<SerializedProvider<P>> {
  const sf = await pulumi.runtime.serializeFunction(() => provider, { allowSecrets: true });
  const requireFromString = requireHere('require-from-string') as (code: string) => Record<string, () => P>;
  const factory = requireFromString(sf.text)[sf.exportName];
  if (!factory) throw new Error(`serialised provider has no export ${sf.exportName}`);
  return { provider: factory(), text: sf.text };
}

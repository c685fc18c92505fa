// The Pulumi program (Pulumi.yaml `main`). The only place that reads pulumi.Config: the `postern:` keys of the
// stack (validated by src/plan/, a bad config stops here with the plan's list of problems) and the two
// provider tokens, as secrets. Everything else is in program.ts.
import * as pulumi from '@pulumi/pulumi';
import { fileURLToPath } from 'node:url';
import { postern } from './program.ts';

const PREFIX = 'postern:';
const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** Config values arrive as strings; objects, lists, numbers and booleans as their JSON text. */
function configValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const config: Record<string, unknown> = {};
for (const [key, value] of Object.entries(pulumi.runtime.allConfig())) {
  if (key.startsWith(PREFIX)) config[key.slice(PREFIX.length)] = configValue(value);
}

const outputs = postern({
  config,
  digitaloceanToken: new pulumi.Config('digitalocean').requireSecret('token'),
  cloudflareApiToken: new pulumi.Config('cloudflare').requireSecret('apiToken'),
  // Overridable so a release can be built elsewhere (tests build into a temp folder).
  bundleDir: process.env.POSTERN_BUNDLE_DIR ?? `${REPO}dist`,
  nodeBinary: process.env.POSTERN_NODE_BINARY ?? `${REPO}node_modules/node/bin/node`,
});

export const addresses = outputs.addresses;
export const hostKeyFingerprint = outputs.hostKeyFingerprint;
export const expectedPtr = outputs.expectedPtr;
export const dnsRecords = outputs.dnsRecords;
export const certificate = outputs.certificate;
export const releaseId = outputs.releaseId;
export const outboundSmtp = outputs.outboundSmtp;
export const clientSettings = outputs.clientSettings;
export const nextSteps = outputs.nextSteps;

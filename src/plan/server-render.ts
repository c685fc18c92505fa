// Renders the server's runtime config (server-config.ts) from a validated stack plus the facts only the host
// knows (file locations, ports). infra/ writes the result to the host; `postern serve --dev` builds one in memory.
import type { ServerConfigInput } from './server-config.ts';
import type { StackConfig } from './stack-config.ts';
import type { DkimAlgorithm } from './dkim.ts';
import { certificateNames } from './dns-plan.ts';
import { PUBLIC_CLIENT_PORTS, renderAutoconfigXml, renderAutodiscoverXml, renderMobileconfig, renderMtaStsPolicy, type ClientPorts } from './client-config.ts';

type Ports = NonNullable<ServerConfigInput['ports']>;

export interface ServerFacts {
  stateDir: string;
  certFile: string;
  keyFile: string;
  dkimKeyFiles: { selector: string; algorithm: DkimAlgorithm; privateKeyFile: string }[];
  /** File holding the relay password (infra writes the secret there); required when the relay has a password. */
  relayPasswordFile?: string;
  /** Listener ports; 0 turns one off. Defaults: the standard ports, plaintext 143/110 only when the stack offers them. */
  ports?: Ports;
  listenAddress?: string;
  dev?: boolean;
}

/** Aliases RFC 5321/2142 expect (postmaster, abuse) go to the first user unless the stack defines them. */
function withRoleAliases(stack: StackConfig): { from: string; to: string[] }[] {
  const aliases = stack.aliases.map((a) => ({ from: a.from, to: [...a.to] }));
  const taken = new Set([...stack.users.map((u) => u.address.toLowerCase()), ...aliases.map((a) => a.from.toLowerCase())]);
  const first = stack.users[0];
  if (first) {
    for (const role of ['postmaster', 'abuse']) {
      const from = `${role}@${stack.domain}`;
      if (!taken.has(from)) aliases.push({ from, to: [first.address] });
    }
  }
  return aliases;
}

export function renderServerConfig(stack: StackConfig, facts: ServerFacts): ServerConfigInput {
  if (stack.relay?.password !== undefined && facts.relayPasswordFile === undefined) {
    throw new Error('renderServerConfig: the stack has a relay password but no relayPasswordFile was given');
  }
  const ports: Ports = facts.ports ?? (stack.plaintextPorts ? {} : { imap: 0, pop3: 0 });
  const clientPorts: ClientPorts = {
    imaps: ports.imaps || PUBLIC_CLIENT_PORTS.imaps,
    pop3s: ports.pop3s || PUBLIC_CLIENT_PORTS.pop3s,
    submissions: ports.submissions || PUBLIC_CLIENT_PORTS.submissions,
  };
  return {
    domain: stack.domain,
    hostname: stack.hostname,
    stateDir: facts.stateDir,
    ...(facts.listenAddress !== undefined ? { listenAddress: facts.listenAddress } : {}),
    ports,
    tls: { certFile: facts.certFile, keyFile: facts.keyFile },
    users: stack.users.map((u) => ({ address: u.address, name: u.name, passwordHash: u.passwordHash, quotaBytes: u.quotaBytes })),
    aliases: withRoleAliases(stack),
    dkim: facts.dkimKeyFiles.map((k) => ({ selector: k.selector, algorithm: k.algorithm, privateKeyFile: k.privateKeyFile })),
    dmarc: { policy: stack.dmarc.policy, reportAddress: stack.dmarc.reportAddress, inboundRejectAction: stack.dmarc.inboundRejectAction },
    mtaSts: { mode: stack.mtaSts.mode, maxAgeSeconds: stack.mtaSts.maxAge, policy: renderMtaStsPolicy(stack) },
    tlsRpt: { reportAddress: stack.tlsRpt.reportAddress },
    ...(stack.relay ? {
      relay: {
        host: stack.relay.host, port: stack.relay.port,
        ...(stack.relay.username !== undefined ? { username: stack.relay.username } : {}),
        ...(stack.relay.password !== undefined && facts.relayPasswordFile !== undefined ? { passwordFile: facts.relayPasswordFile } : {}),
      },
    } : {}),
    clientConfig: {
      autoconfigXml: renderAutoconfigXml(stack, clientPorts),
      autodiscoverXml: renderAutodiscoverXml(stack, clientPorts),
      mobileconfig: renderMobileconfig(stack, clientPorts),
    },
    limits: { maxMessageBytes: stack.maxMessageBytes },
    log: { level: stack.logLevel },
    // The host renews the certificate infra/ issued, for the same names, from the same CA.
    acme: { enabled: facts.dev !== true, directoryUrl: stack.acme.directoryUrl, email: stack.acme.email, names: certificateNames(stack) },
    ...(facts.dev !== undefined ? { dev: facts.dev } : {}),
  };
}

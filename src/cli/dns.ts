// `postern dns plan|diff`: the DNS records a stack needs, as a zone file, and how live DNS differs from them.
// Exit codes of `diff`: 0 in sync, 1 differences, 2 error.
import type { Command } from 'commander';
import { renderZoneFile, recordData } from '../plan/zone-file.ts';
import { diffDns, formatDiff } from '../plan/dns-diff.ts';
import { buildStackPlan, CliError, type FactOptions } from './dns-facts.ts';
import { authoritativeServer, observe, serverAddress } from './dns-live.ts';

interface CommonOptions extends FactOptions { stack: string; stacksDir: string }

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

function withFactOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--stack <name>', 'stack name: reads <stacks-dir>/Pulumi.<name>.yaml')
    .option('--stacks-dir <dir>', 'folder of the stack files', 'stacks')
    .option('--ipv4 <address>', 'the mail host\'s IPv4 address (known after deploy)')
    .option('--ipv6 <address>', 'the mail host\'s IPv6 address (known after deploy)')
    .option('--dkim-file <selector=file>', 'PEM public (or private) key of a DKIM selector; repeat per selector', collect);
}

function fail(err: unknown): never {
  const message = err instanceof CliError ? err.message : `unexpected error: ${(err as Error).stack ?? String(err)}`;
  process.stderr.write(`postern dns: ${message}\n`);
  process.exit(2);
}

export function register(program: Command): void {
  const dns = program.command('dns').description('the DNS records a stack publishes: print them, or compare them with live DNS');

  withFactOptions(dns.command('plan'))
    .description('print the records Postern owns for a stack, as an RFC 1035 zone file')
    .option('--ns <name>', 'name server for the SOA/NS lines (your DNS host\'s); repeat for more', collect)
    .option('--format <format>', '"zone" (RFC 1035 text) or "json" (records, owned record sets, PTR, unknowns)', 'zone')
    .action((opts: CommonOptions & { ns?: string[]; format: string }) => {
      try {
        if (opts.format !== 'zone' && opts.format !== 'json') throw new CliError(`--format: expected "zone" or "json", got ${JSON.stringify(opts.format)}`);
        const { stack, plan, unknown, isPlaceholder } = buildStackPlan(opts.stacksDir, opts.stack, opts);
        if (opts.format === 'json') {
          const records = plan.records.map((r) => ({ ...r, ...(isPlaceholder(r) ? { placeholder: true } : {}) }));
          process.stdout.write(`${JSON.stringify({ domain: stack.domain, records, owned: plan.owned, ptr: plan.ptr, pendingDkim: plan.pendingDkim, unknown }, null, 2)}\n`);
          return;
        }
        const ns = opts.ns ?? [`ns1.${stack.domain}.invalid`, `ns2.${stack.domain}.invalid`];
        const header = [
          `Postern DNS plan for stack "${opts.stack}": the records Postern owns in the ${stack.domain} zone.`,
          'Published by `pulumi up`; compare with live DNS with `postern dns diff`.',
          ...(unknown.length
            ? ['Unknown until deploy (values marked "unknown until deploy" below are placeholders):', ...unknown.map((u) => `  - ${u}`)]
            : ['All values are known: nothing below is a placeholder.']),
          `SOA and NS belong to your DNS host${opts.ns ? '' : ' (the .invalid names are placeholders; pass --ns)'}: they only make this text a loadable zone.`,
          `Expected reverse DNS (PTR, from the droplet's name): ${plan.ptr.map((p) => `${p.address} -> ${p.target}`).join(', ')}`,
          '',
        ];
        const trailer = plan.pendingDkim.length
          ? ['', 'Published at deploy, once the keys exist:', ...plan.pendingDkim.map((p) => `  ${p.name}. ${stack.dnsTtl} IN TXT "v=DKIM1; k=${p.algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519'}; p=<public key>"`)]
          : [];
        process.stdout.write(renderZoneFile(plan.records, {
          origin: stack.domain,
          soa: { primary: ns[0]!, contact: `hostmaster.${stack.domain}`, serial: 1 },
          nameServers: ns,
          header, trailer,
          defaultTtl: stack.dnsTtl,
          annotate: (r) => (isPlaceholder(r) ? 'unknown until deploy' : undefined),
        }));
      } catch (e) { fail(e); }
    });

  withFactOptions(dns.command('diff'))
    .description('compare live DNS with the plan; exit 0 in sync, 1 differences, 2 error')
    .option('--server <host:port>', 'DNS server to ask (default: the domain\'s first authoritative server)')
    .action(async (opts: CommonOptions & { server?: string }) => {
      try {
        const { stack, plan, unknown, isPlaceholder } = buildStackPlan(opts.stacksDir, opts.stack, opts);
        // Records whose value is not known cannot be compared: say so instead of proposing a placeholder.
        const checked = plan.records.filter((r) => !isPlaceholder(r));
        const skipped = plan.records.filter(isPlaceholder);
        const owned = plan.owned.filter((o) => checked.some((r) => r.name === o.name && r.type === o.type));
        const server = opts.server ? await serverAddress(opts.server) : await authoritativeServer(stack.domain);
        const current = await observe(server, owned);
        const changes = diffDns(checked, current, owned);
        const out: string[] = [`DNS diff for stack "${opts.stack}" (${stack.domain}) against ${server}:`];
        if (unknown.length || skipped.length) {
          out.push('Not checked (unknown until deploy):', ...unknown.map((u) => `  - ${u}`),
            ...skipped.map((r) => `  - ${r.name} ${r.type} ${recordData(r)}`));
        }
        out.push(changes.length ? formatDiff(changes) : 'in sync: live DNS matches the plan');
        process.stdout.write(`${out.join('\n')}\n`);
        process.exitCode = changes.length ? 1 : 0;
      } catch (e) { fail(e); }
    });
}

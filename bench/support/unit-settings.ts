// How the release's systemd unit (templates/postern.service) starts the server: its node flags (ExecStart) and
// its Environment= settings, so that a benchmark measures Postern as a host runs it.
import { readFileSync } from 'node:fs';
import path from 'node:path';

function unitText(): string {
  return readFileSync(path.join(import.meta.dirname, '../../templates/postern.service'), 'utf8');
}

/** The unit's node flags; BENCH_POSTERN_NODE_FLAGS overrides them ("" for none). */
export function posternNodeFlags(): string[] {
  const env = process.env.BENCH_POSTERN_NODE_FLAGS;
  if (env !== undefined) return env.split(' ').filter(Boolean);
  const exec = /^ExecStart=(.*)$/m.exec(unitText());
  if (!exec) throw new Error('templates/postern.service has no ExecStart line');
  const args = exec[1]!.trim().split(/\s+/);
  return args.slice(1, args.findIndex((a) => a.endsWith('server.js'))).filter((a) => a.startsWith('--'));
}

/** The unit's Environment= settings (NAME=value), which the server process gets as well. */
export function posternEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of unitText().matchAll(/^Environment=([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/gm)) env[m[1]!] = m[2]!;
  return env;
}

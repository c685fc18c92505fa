// `npm run bench`: runs every bench/*.ts (one figure each, compared with its peer in the same run) one after the
// other — never in parallel, so they do not disturb each other's timings. Arguments name benches to run
// (e.g. `npm run bench imap`).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const dir = path.join(import.meta.dirname, '..', 'bench');
const wanted = process.argv.slice(2);
const benches = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.startsWith('.')).sort()
  .filter((f) => wanted.length === 0 || wanted.includes(f.replace(/\.ts$/, '')));
if (benches.length === 0) {
  console.error(`no bench matches ${wanted.join(' ')}`);
  process.exit(1);
}
let failed = 0;
for (const b of benches) {
  console.log(`\n=== bench/${b}`);
  const r = spawnSync(process.execPath, [path.join(dir, b)], { stdio: 'inherit' });
  if (r.status !== 0) { failed++; console.error(`bench/${b} failed (exit ${r.status ?? r.signal})`); }
}
process.exit(failed ? 1 : 0);

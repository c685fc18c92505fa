// `npm test`: install the Debian peers the tests need (as root), type-check, then run every test with node:test.
// Extra arguments are passed to `node --test` (e.g. a file path to run one file).
import { spawnSync } from 'node:child_process';
import { TEST_DEBIAN_PACKAGES, ensureDebianPackages } from '../test/support/debian.ts';

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`\n${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

if (process.getuid?.() === 0) ensureDebianPackages(TEST_DEBIAN_PACKAGES);
run('tsc', ['--noEmit', '-p', 'tsconfig.json']);
const files = process.argv.slice(2);
run(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=300000',
  ...(files.length ? files : ['test/**/*.test.ts'])]);

// `npm run build`: bundles the CLI (dist/postern.js) and the server entry (dist/server.js) with esbuild into
// self-contained ES modules for Node 24, so a release is these files plus the pinned node binary — no
// node_modules on the host. Templates are TypeScript modules (see templates/README.md), so they are bundled
// too; pino writes through plain streams (no worker transports), so nothing has to stay external. `--outdir <dir>` builds elsewhere (tests build into a temp folder).
import { build } from 'esbuild';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { outdir: { type: 'string' } }, strict: true });
const outdir = resolve(values.outdir ?? join(root, 'dist'));

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

// CommonJS dependencies bundled into ESM still call require() for node built-ins and read __dirname; give
// them both, from the bundle's own location.
const banner = [
  "import { createRequire as __postern_createRequire } from 'node:module';",
  "import { fileURLToPath as __postern_fileURLToPath } from 'node:url';",
  "import { dirname as __postern_dirname } from 'node:path';",
  'const require = __postern_createRequire(import.meta.url);',
  'const __filename = __postern_fileURLToPath(import.meta.url);',
  'const __dirname = __postern_dirname(__filename);',
].join('\n');

const result = await build({
  absWorkingDir: root,
  // The delivery thread's script (store/delivery-thread.ts finds it next to the bundle).
  entryPoints: { postern: 'src/cli/main.ts', server: 'src/server/entry.ts', 'delivery-worker': 'src/server/store/delivery-worker.ts' },
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  splitting: true,
  // Whitespace and comments out (names kept, for stack traces; the linked source map gives positions): V8 keeps
  // every loaded module's source in memory, and a single non-ASCII comment (dependencies have them) makes the
  // whole source a two-byte string. About 6 MiB less resident memory for the server (bench/imap.ts).
  minifyWhitespace: true,
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  legalComments: 'linked',
  banner: { js: banner },
  logLevel: 'warning',
  metafile: true,
});

// The CLI is run as an executable on the host (`./postern.js serve --config ...`).
const cli = join(outdir, 'postern.js');
writeFileSync(cli, '#!/usr/bin/env node\n' + readFileSync(cli, 'utf8'));
chmodSync(cli, 0o755);

const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
process.stdout.write(`built ${outdir}: postern.js, server.js (${(bytes / 1024 / 1024).toFixed(1)} MiB with chunks)\n`);

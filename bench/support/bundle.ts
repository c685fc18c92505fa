// Benchmarked servers run as a release does: bundled by esbuild (as scripts/build.ts bundles dist/server.js,
// whitespace and comments out), not through Node's type stripping, whose TypeScript transformer alone adds
// ~40 MiB of resident memory (in every thread that loads TypeScript). The store's delivery thread gets its own
// entry point next to the server's, where store/delivery-thread.ts looks for it.
import path from 'node:path';
import { build } from 'esbuild';

/** Bundles `entry` (a server script under bench/support) into `outDir`; returns the file to run. */
export async function bundleServer(entry: string, outDir: string): Promise<string> {
  const name = path.basename(entry, '.ts');
  await build({
    entryPoints: {
      [name]: entry,
      'delivery-worker': path.join(import.meta.dirname, '../../src/server/store/delivery-worker.ts'),
    },
    outdir: outDir, bundle: true, splitting: true, format: 'esm', outExtension: { '.js': '.mjs' },
    platform: 'node', target: 'node24', logLevel: 'warning', minifyWhitespace: true,
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return path.join(outDir, `${name}.mjs`);
}

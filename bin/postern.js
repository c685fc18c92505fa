#!/usr/bin/env node
// Postern's CLI entry. Node 24 runs the TypeScript sources directly; a bundled release runs dist/.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`postern needs Node.js 24 (found ${process.version}). Run it through npm (npx postern, npm run postern) so the pinned Node from node_modules is used.`);
  process.exit(2);
}
await import('../src/cli/main.ts');

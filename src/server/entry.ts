// Entry of the server bundle (dist/server.js) that a release runs under its process supervisor:
// `node server.js --config /etc/postern/server.yaml`. The CLI's `postern serve --config` does the same.
import { parseArgs } from 'node:util';
import { loadServerConfigFile, reportConfigErrors, runServerProcess } from './main.ts';

const { values } = parseArgs({ options: { config: { type: 'string' } }, strict: true });
if (!values.config) {
  process.stderr.write('usage: server.js --config <file>\n');
  process.exit(2);
}
const loaded = loadServerConfigFile(values.config);
if (!loaded.ok) process.exit(reportConfigErrors(values.config, loaded.errors));
try {
  await runServerProcess(loaded.value);
} catch (err) {
  process.stderr.write(`postern: cannot start: ${(err as Error).message}\n`);
  process.exit(1);
}

// Entry of the server bundle (dist/server.js) that a release runs under its process supervisor:
// `node server.js --config /etc/postern/server.yaml [--ports auto]`. The CLI's `postern serve --config` does
// the same.
import { parseArgs } from 'node:util';
import { loadServerConfigFile, reportConfigErrors, runServerProcess } from './main.ts';

const { values } = parseArgs({ options: { config: { type: 'string' }, ports: { type: 'string', default: 'config' } }, strict: true });
if (!values.config || (values.ports !== 'config' && values.ports !== 'auto')) {
  process.stderr.write('usage: server.js --config <file> [--ports config|auto]\n');
  process.exit(2);
}
const loaded = loadServerConfigFile(values.config);
if (!loaded.ok) process.exit(reportConfigErrors(values.config, loaded.errors));
try {
  await runServerProcess(loaded.value, { ephemeralPorts: values.ports === 'auto' });
} catch (err) {
  process.stderr.write(`postern: cannot start: ${(err as Error).message}\n`);
  process.exit(1);
}

// `postern`: one command per concern. Each command lives in its own file and exports register(program);
// add a line below to register a new one.
import { Command } from 'commander';
import { register as registerTrace } from './trace.ts';
import { register as registerReports } from './reports.ts';
import { register as registerDoctor } from './doctor.ts';
import { register as registerServe } from './serve.ts';
import { register as registerDns } from './dns.ts';
import { register as registerQueue } from './queue.ts';

const program = new Command('postern')
  .description('Your own mail server for your own domain, as code.')
  .version('0.1.0')
  .showHelpAfterError();

// Commands register here (one import above and one line below per command file).
registerTrace(program);
registerReports(program);
registerDoctor(program);
registerServe(program);
registerDns(program);
registerQueue(program);

await program.parseAsync(process.argv);

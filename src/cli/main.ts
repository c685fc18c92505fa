// `postern`: one command per concern. Each command lives in its own file and exports register(program).
// Only the module of the command being run is loaded (each pulls in a different part of Postern, and loading
// them all would make every command start slowly); help and unknown commands load them all.
import { Command } from 'commander';

type CommandModule = { register(program: Command): void };

// One line per command file: its top-level command name and its module.
const commands: Record<string, () => Promise<CommandModule>> = {
  serve: () => import('./serve.ts'),
  dns: () => import('./dns.ts'),
  doctor: () => import('./doctor.ts'),
  users: () => import('./users.ts'),
  queue: () => import('./queue.ts'),
  trace: () => import('./trace.ts'),
  reports: () => import('./reports.ts'),
};

const program = new Command('postern')
  .description('Your own mail server for your own domain, as code.')
  .version('0.1.0')
  .showHelpAfterError();

const first = process.argv[2];
const wanted = first !== undefined && Object.hasOwn(commands, first) ? [first] : Object.keys(commands);
for (const name of wanted) (await commands[name]!()).register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // Commands throw Errors for bad input: one line, no stack trace, exit 2.
  process.stderr.write(`postern: ${(err as Error).message}\n`);
  process.exitCode = 2;
}

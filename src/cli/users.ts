// `postern users`: what a stack's `users:` entries need. The stack file keeps only argon2id hashes, so this makes
// one from a password read on standard input — never from the command line, where `ps` and shell history see it.
import type { Command } from 'commander';
import { hashPassword, verifyPasswordHash } from '../server/store/password.ts';

const MIN_PASSWORD_CHARS = 12;
const MAX_INPUT_BYTES = 4096;

/** Reads standard input to its end (a pipe) or one line typed without echo (a terminal). */
async function readPassword(prompt: string): Promise<string> {
  const input = process.stdin;
  if (input.isTTY) {
    process.stderr.write(prompt);
    input.setRawMode(true);
    input.resume();
    let typed = '';
    try {
      for await (const chunk of input) {
        for (const ch of String(chunk)) {
          if (ch === '\r' || ch === '\n') return typed;
          if (ch === '\u0003') throw new Error('cancelled');
          if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
          else typed += ch;
          if (typed.length > MAX_INPUT_BYTES) throw new Error('password too long');
        }
      }
      return typed;
    } finally {
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
    }
  }
  let data = '';
  for await (const chunk of input) {
    data += String(chunk);
    if (data.length > MAX_INPUT_BYTES) throw new Error(`standard input is longer than ${MAX_INPUT_BYTES} bytes: expected one password`);
  }
  return data.replace(/\r?\n$/, '');
}

export function register(program: Command): void {
  const users = program.command('users').description('manage the mail users of a stack');
  users.command('hash-password')
    .description('read a password on standard input and print its argon2id hash for the `passwordHash` of a user in the stack file')
    .option('--allow-short', `accept a password shorter than ${MIN_PASSWORD_CHARS} characters`)
    .action(async (opts: { allowShort?: boolean }) => {
      const password = await readPassword('Password: ');
      if (password.length === 0) throw new Error('no password on standard input');
      if (password !== password.trim()) throw new Error('the password starts or ends with white space: refused, since it is easily mistyped');
      if (password.length < MIN_PASSWORD_CHARS && !opts.allowShort) {
        throw new Error(`the password has ${password.length} characters; use at least ${MIN_PASSWORD_CHARS} (or --allow-short)`);
      }
      if (process.stdin.isTTY && (await readPassword('Again: ')) !== password) throw new Error('the two passwords differ');
      const phc = hashPassword(password);
      // The hash is checked once before it is shown: a hash that does not verify would lock the user out.
      if (!(await verifyPasswordHash(phc, password))) throw new Error('internal error: the new hash does not verify');
      process.stdout.write(`${phc}\n`);
    });
}

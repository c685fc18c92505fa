// NOOP and CHECK (RFC 9051 6.1.2; CHECK from RFC 3501 6.4.1): nothing to do but report pending changes,
// which the session does after every command. The store commits every change at once, so CHECK has no
// checkpoint to make.
import type { CommandHandler } from '../session.ts';
import { ok } from '../session.ts';

export const noop: CommandHandler = {
  name: 'NOOP',
  states: ['notauth', 'auth', 'selected'],
  async run(_s, a) {
    a.end();
    return ok('NOOP completed');
  },
};

export const check: CommandHandler = {
  name: 'CHECK',
  states: ['selected'],
  async run(_s, a) {
    a.end();
    return ok('CHECK completed');
  },
};

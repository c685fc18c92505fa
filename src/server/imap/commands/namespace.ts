// NAMESPACE (RFC 9051 6.3.10): one personal namespace, no shared or other users' folders.
import type { CommandHandler } from '../session.ts';
import { ok } from '../session.ts';

export const namespace: CommandHandler = {
  name: 'NAMESPACE',
  states: ['auth', 'selected'],
  async run(s, a) {
    a.end();
    s.hold('* NAMESPACE (("" "/")) NIL NIL\r\n');
    return ok('NAMESPACE completed');
  },
};

// CAPABILITY (RFC 9051 6.1.1): what this session may use now; the list changes after STARTTLS and login.
import type { CommandHandler } from '../session.ts';
import { ok } from '../session.ts';

export const capability: CommandHandler = {
  name: 'CAPABILITY',
  states: ['notauth', 'auth', 'selected'],
  async run(s, a) {
    a.end();
    s.hold(`* CAPABILITY ${s.capabilities().join(' ')}\r\n`);
    return ok('Capability completed');
  },
};

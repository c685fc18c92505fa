// LOGOUT (RFC 9051 6.1.3): BYE, then the tagged OK, then the server closes the connection.
import type { CommandHandler } from '../session.ts';
import { ok } from '../session.ts';

export const logout: CommandHandler = {
  name: 'LOGOUT',
  states: ['notauth', 'auth', 'selected'],
  async run(s, a) {
    a.end();
    s.hold('* BYE Logging out\r\n');
    s.leaveSelected();
    s.state = 'logout';
    return ok('LOGOUT completed');
  },
};

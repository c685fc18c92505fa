// LOGIN (RFC 9051 6.2.3): only over TLS (LOGINDISABLED is advertised until then).
import type { CommandHandler } from '../session.ts';
import { authenticateUser, privacyRequired } from './auth.ts';

export const login: CommandHandler = {
  name: 'LOGIN',
  states: ['notauth'],
  async run(s, a) {
    const user = a.astring('user name');
    const password = a.astring('password');
    a.end();
    if (!s.secure) return privacyRequired();
    return authenticateUser(s, user, password);
  },
};

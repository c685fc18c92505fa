// AUTHENTICATE PLAIN (RFC 9051 6.2.2, RFC 4616) with an initial response (SASL-IR, RFC 4959) or after a "+".
import type { CommandHandler } from '../session.ts';
import { bad, no } from '../session.ts';
import { authenticateUser, privacyRequired } from './auth.ts';

function decodeBase64(text: string): Buffer | null {
  if (text === '=') return Buffer.alloc(0);
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  return Buffer.from(text, 'base64');
}

export const authenticate: CommandHandler = {
  name: 'AUTHENTICATE',
  states: ['notauth'],
  async run(s, a) {
    const mechanism = a.keyword('SASL mechanism');
    const initial = a.remaining > 0 ? a.atom('initial response') : null;
    a.end();
    if (mechanism !== 'PLAIN') return no(`Unsupported mechanism ${mechanism.slice(0, 20)}`, 'CANNOT');
    if (!s.secure) return privacyRequired();
    let response = initial;
    if (response === null) {
      await s.send('+ \r\n');
      const line = await s.reader.readLine();
      if (line === null) return bad('Authentication response missing or too long');
      response = line.toString('latin1');
    }
    if (response === '*') return bad('Authentication cancelled');
    const decoded = decodeBase64(response);
    if (!decoded) return bad('Invalid base64 in authentication response');
    const fields = decoded.toString('utf8').split('\0');
    if (fields.length !== 3) return bad('Invalid PLAIN response');
    const [authzid, user, password] = fields as [string, string, string];
    if (authzid !== '' && authzid.toLowerCase() !== user.toLowerCase()) {
      return no('Acting as another user is not allowed', 'AUTHORIZATIONFAILED');
    }
    return authenticateUser(s, user, password);
  },
};

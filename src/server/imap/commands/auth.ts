// What LOGIN and AUTHENTICATE share: checking the password with the store, the delay after a failure, and the
// limit on failures per connection.
import type { CommandResult, Session } from '../session.ts';
import { no, ok } from '../session.ts';

const MAX_CREDENTIAL_BYTES = 1024;

export async function authenticateUser(s: Session, user: string, password: string): Promise<CommandResult> {
  if (Buffer.byteLength(user) > MAX_CREDENTIAL_BYTES || Buffer.byteLength(password) > MAX_CREDENTIAL_BYTES) {
    return failed(s);
  }
  const account = await s.store.authenticate(user.trim().toLowerCase(), password);
  if (!account) return failed(s);
  s.authenticated(account);
  s.log.info('imap login');
  return ok('Logged in', `CAPABILITY ${s.capabilities().join(' ')}`);
}

async function failed(s: Session): Promise<CommandResult> {
  s.authFailures++;
  s.log.info({ failures: s.authFailures }, 'imap authentication failed');
  // Slows password guessing on one connection; the per-IP connection limit bounds parallel guessing.
  await new Promise((r) => setTimeout(r, s.limits.authFailureDelayMs));
  if (s.authFailures >= s.limits.maxAuthFailures) {
    await s.send('* BYE [LIMIT] Too many failed authentications\r\n');
    s.state = 'logout';
  }
  return no('Authentication failed', 'AUTHENTICATIONFAILED');
}

export function privacyRequired(): CommandResult {
  return no('Authentication needs TLS: use STARTTLS first', 'PRIVACYREQUIRED');
}

// STARTTLS (RFC 9051 6.2.1). Anything the client sent after the command and before the handshake is dropped
// (it could be a man in the middle's injected command, CVE-2011-0411 style), and the session restarts
// reading from the TLS socket.
import type { CommandHandler } from '../session.ts';
import { bad } from '../session.ts';

export const starttls: CommandHandler = {
  name: 'STARTTLS',
  states: ['notauth'],
  async run(s, a, ctx) {
    a.end();
    if (s.secure) return bad('TLS is already active');
    s.reader.detach();
    const injected = s.reader.discardBuffered();
    if (injected > 0) s.log.warn({ bytes: injected }, 'imap client sent data before the TLS handshake; dropped');
    // The TLS socket must exist before the event loop can deliver the ClientHello: write and wrap in one tick.
    s.write(`${ctx.tag} OK Begin TLS negotiation now\r\n`);
    const secured = await s.upgradeToTls();
    if (!secured) s.state = 'logout';
    return { status: 'OK', text: '', answered: true };
  },
};

// IDLE (RFC 2177 / RFC 9051 6.3.13): changes reach the client as soon as the store reports them, until DONE.
import type { CommandHandler } from '../session.ts';
import { bad, ok } from '../session.ts';
import { flushUpdates } from '../updates.ts';

export const idle: CommandHandler = {
  name: 'IDLE',
  states: ['auth', 'selected'],
  async run(s, a) {
    a.end();
    await s.send('+ idling\r\n');
    let done: Buffer | null | undefined;
    const line = s.reader.readLine().then((l) => { done = l; });
    while (done === undefined && !s.isClosed) {
      if (s.selected) {
        await flushUpdates(s, true);
        await s.flush();
      }
      if (s.isShuttingDown || s.state === 'logout') break;
      await Promise.race([line, new Promise<void>((r) => { s.idleWake = r; })]);
      s.idleWake = null;
    }
    s.idleWake = null;
    if (done === undefined) {
      // Server shutdown or the connection went away while idling.
      s.state = 'logout';
      return ok('IDLE terminated');
    }
    if (done === null) {
      s.state = 'logout';
      return bad('Connection closed during IDLE');
    }
    if (done.toString('latin1').toUpperCase() !== 'DONE') return bad('Expected DONE to end IDLE');
    return ok('IDLE terminated');
  },
};

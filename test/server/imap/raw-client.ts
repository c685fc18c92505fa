// A bare IMAP connection for tests that must send exactly the bytes they mean (bad input, limits, literals).
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect, type Socket } from 'node:net';

export class RawImap {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;
  readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => { /* shows as close */ });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static async tls(port: number, ca: string): Promise<RawImap> {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: [ca], servername: 'localhost' });
    await new Promise<void>((res, rej) => { s.once('secureConnect', () => res()); s.once('error', rej); });
    const c = new RawImap(s);
    await c.readUntil(/^\* (OK|BYE)[^\r\n]*\r\n/m);
    return c;
  }

  static async plain(port: number): Promise<RawImap> {
    const s = netConnect({ host: '127.0.0.1', port });
    await new Promise<void>((res, rej) => { s.once('connect', () => res()); s.once('error', rej); });
    const c = new RawImap(s);
    await c.readUntil(/^\* (OK|BYE)[^\r\n]*\r\n/m);
    return c;
  }

  /** Waits until the received text matches `re`; returns and consumes everything up to the end of the match. */
  async readUntil(re: RegExp, timeoutMs = 10000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.buf.toString('latin1');
      const m = re.exec(text);
      if (m) {
        const end = m.index + m[0].length;
        this.buf = this.buf.subarray(end);
        return text.slice(0, end);
      }
      if (this.closed) throw new Error(`connection closed; received: ${JSON.stringify(text.slice(-500))}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; received: ${JSON.stringify(text.slice(-500))}`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, 200);
        this.waiters.push(() => { clearTimeout(t); res(); });
      });
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends `tag rest` and returns everything up to and including the tagged response line. */
  async command(tag: string, rest: string | Buffer): Promise<string> {
    this.write(Buffer.concat([Buffer.from(`${tag} `), Buffer.isBuffer(rest) ? rest : Buffer.from(rest), Buffer.from('\r\n')]));
    return this.readUntil(new RegExp(`^${tag} (OK|NO|BAD)[^\\r\\n]*\\r\\n`, 'm'));
  }

  async waitClosed(timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The tagged status line of a command's response. */
export function taggedLine(response: string, tag: string): string {
  const line = response.split('\r\n').find((l) => l.startsWith(`${tag} `));
  if (!line) throw new Error(`no tagged line for ${tag} in ${response}`);
  return line;
}

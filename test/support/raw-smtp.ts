// A bare SMTP client for tests that must send exact bytes (smuggling, relay tricks): reads whole replies
// (multi-line), sends raw data, upgrades with STARTTLS.
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface Reply { code: number; text: string }

export class RawSmtp {
  #socket: Socket;
  #buffer = '';
  #waiters: ((r: Reply | null) => void)[] = [];
  #replies: (Reply | null)[] = [];
  closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    this.#attach(socket);
  }

  static connect(port: number, opts: { tls?: boolean } = {}): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const s: Socket = opts.tls
        ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(new RawSmtp(s)))
        : netConnect({ port, host: '127.0.0.1' }, () => resolve(new RawSmtp(s)));
      s.once('error', reject);
    });
  }

  #attach(s: Socket): void {
    s.setEncoding('utf8');
    s.on('data', (d: string) => { this.#buffer += d; this.#parse(); });
    s.on('end', () => { if (!this.closed) { this.closed = true; this.#push(null); } });
    s.on('close', () => { if (!this.closed) { this.closed = true; this.#push(null); } });
    s.on('error', () => {});
  }

  #push(r: Reply | null): void {
    const w = this.#waiters.shift();
    if (w) w(r); else this.#replies.push(r);
  }

  #parse(): void {
    for (;;) {
      const lines = this.#buffer.split('\r\n');
      let end = -1;
      for (let i = 0; i < lines.length - 1; i++) if (/^\d{3} /.test(lines[i]!) || /^\d{3}$/.test(lines[i]!)) { end = i; break; }
      if (end === -1) return;
      const block = lines.slice(0, end + 1);
      this.#buffer = lines.slice(end + 1).join('\r\n');
      this.#push({ code: Number(block[end]!.slice(0, 3)), text: block.map((l) => l.slice(4)).join('\n') });
    }
  }

  /** The next reply; null when the server closed the connection. */
  read(timeoutMs = 20_000): Promise<Reply | null> {
    if (this.#replies.length) return Promise.resolve(this.#replies.shift()!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error(`no SMTP reply within ${timeoutMs} ms (buffered: ${JSON.stringify(this.#buffer.slice(0, 200))})`));
      }, timeoutMs);
      const waiter = (r: Reply | null) => { clearTimeout(timer); resolve(r); };
      this.#waiters.push(waiter);
    });
  }

  write(data: string | Buffer): void { this.#socket.write(data); }

  async command(line: string): Promise<Reply> {
    this.write(`${line}\r\n`);
    const r = await this.read();
    if (!r) throw new Error(`connection closed after ${line}`);
    return r;
  }

  async starttls(): Promise<void> {
    const r = await this.command('STARTTLS');
    if (r.code !== 220) throw new Error(`STARTTLS: ${r.code} ${r.text}`);
    this.#socket.removeAllListeners('data');
    const secure = tlsConnect({ socket: this.#socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => { secure.once('secureConnect', () => resolve()); secure.once('error', reject); });
    this.#socket = secure;
    this.#attach(secure);
  }

  close(): void { this.#socket.destroy(); }
}

/** Connects, reads the greeting and says EHLO. */
export async function openSession(port: number, opts: { tls?: boolean } = {}): Promise<RawSmtp> {
  const c = await RawSmtp.connect(port, opts);
  const greeting = await c.read();
  if (!greeting || greeting.code !== 220) throw new Error(`greeting: ${JSON.stringify(greeting)}`);
  const ehlo = await c.command('EHLO client.example.net');
  if (ehlo.code !== 250) throw new Error(`EHLO: ${ehlo.code} ${ehlo.text}`);
  return c;
}

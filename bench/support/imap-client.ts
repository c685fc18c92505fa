// A minimal IMAP client for benchmarks: one TLS connection, one command at a time, and a response reader that
// skips literals, so the time measured is the server's (and the wire's), not a client library's parser.
import tls from 'node:tls';

export interface CommandResult {
  ms: number;
  bytes: number;
  /** Untagged lines (without literal contents), only when asked for. */
  lines: string[];
  status: string;
}

export class RawImap {
  private socket: tls.TLSSocket;
  private chunks: Buffer[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private literalLeft = 0;
  private waiter: (() => void) | null = null;
  private tagN = 0;
  private closed = false;

  private constructor(socket: tls.TLSSocket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      const w = this.waiter;
      this.waiter = null;
      w?.();
    });
    socket.on('close', () => {
      this.closed = true;
      const w = this.waiter;
      this.waiter = null;
      w?.();
    });
    socket.on('error', () => undefined);
  }

  static async connect(port: number): Promise<RawImap> {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => { socket.once('secureConnect', () => resolve()); socket.once('error', reject); });
    const c = new RawImap(socket);
    await c.readLine(); // greeting
    return c;
  }

  private async more(): Promise<void> {
    if (this.chunks.length === 0) {
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((resolve) => { this.waiter = resolve; });
      if (this.chunks.length === 0 && this.closed) {
        throw new Error(`connection closed; last bytes: ${JSON.stringify(this.buf.subarray(Math.max(0, this.buf.length - 300)).toString('latin1'))}`);
      }
    }
    this.buf = Buffer.concat([this.buf.subarray(this.pos), ...this.chunks]);
    this.chunks = [];
    this.pos = 0;
  }

  /**
   * Next protocol line (literal contents skipped and replaced by a marker). With `untaggedText` false an untagged
   * line is skipped without becoming a string (only `*` is returned): a 50,000-line FETCH answer then costs the
   * client little, so the time measured is the server's. Literal announcements (`{n}` before CRLF) are found by
   * looking at the last bytes, never by scanning the line.
   */
  private async readLine(untaggedText = true): Promise<{ line: string; bytes: number }> {
    let line = '';
    let bytes = 0;
    let untagged: boolean | null = null;
    for (;;) {
      if (this.literalLeft > 0) {
        const take = Math.min(this.literalLeft, this.buf.length - this.pos);
        this.pos += take;
        this.literalLeft -= take;
        bytes += take;
        if (this.literalLeft > 0) { await this.more(); continue; }
      }
      const lf = this.buf.indexOf(10, this.pos);
      if (lf === -1) { await this.more(); continue; }
      const start = this.pos;
      bytes += lf + 1 - start;
      this.pos = lf + 1;
      untagged ??= this.buf[start] === 0x2a;
      const keep = untaggedText || !untagged;
      const end = lf > start && this.buf[lf - 1] === 13 ? lf - 1 : lf;
      if (end > start && this.buf[end - 1] === 0x7d) {
        const open = this.buf.lastIndexOf(0x7b, end - 1);
        const lit = open >= start ? /^\{(\d+)\+?\}$/.exec(this.buf.toString('latin1', open, end)) : null;
        if (lit) {
          if (keep) line += this.buf.toString('latin1', start, open) + '<literal>';
          this.literalLeft = Number(lit[1]);
          continue;
        }
      }
      if (keep) line += this.buf.toString('latin1', start, end);
      return { line: keep ? line : '*', bytes };
    }
  }

  async command(text: string, keepLines = false): Promise<CommandResult> {
    const tag = `b${++this.tagN}`;
    const start = performance.now();
    this.socket.write(`${tag} ${text}\r\n`);
    return this.finish(tag, start, keepLines);
  }

  private async finish(tag: string, start: number, keepLines: boolean): Promise<CommandResult> {
    const lines: string[] = [];
    let bytes = 0;
    for (;;) {
      const { line, bytes: n } = await this.readLine(keepLines);
      bytes += n;
      if (line.startsWith(tag + ' ')) {
        const status = line.slice(tag.length + 1);
        if (!status.startsWith('OK')) throw new Error(`${tag} failed: ${line}`);
        return { ms: performance.now() - start, bytes, lines, status };
      }
      if (keepLines) lines.push(line);
    }
  }

  /** APPEND with a synchronizing literal (every server supports it). */
  async append(mailbox: string, message: Buffer, flags = ''): Promise<CommandResult> {
    const tag = `b${++this.tagN}`;
    const start = performance.now();
    this.socket.write(`${tag} APPEND ${mailbox} (${flags}) {${message.length}}\r\n`);
    const cont = await this.readLine();
    if (!cont.line.startsWith('+')) throw new Error(`APPEND not continued: ${cont.line}`);
    this.socket.write(Buffer.concat([message, Buffer.from('\r\n')]));
    return this.finish(tag, start, false);
  }

  async login(user: string, password: string): Promise<void> {
    await this.command(`LOGIN "${user}" "${password}"`);
  }

  async close(): Promise<void> {
    try {
      await this.command('LOGOUT');
    } catch { /* already closed */ }
    this.socket.destroy();
  }
}

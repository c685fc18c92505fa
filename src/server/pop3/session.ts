// One POP3 connection: RFC 1939 with CAPA (RFC 2449), STLS (RFC 2595), AUTH PLAIN (RFC 5034), UIDL and TOP.
// Credentials only over TLS; the INBOX is locked for the session and a snapshot of it is the maildrop;
// deletions (and \Seen for retrieved messages) are applied only at a clean QUIT.
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { TlsSource } from '../service.ts';
import type { AccountInfo, MailStore } from '../store/types.ts';

export interface Pop3Limits {
  /** Longest command line (RFC 2449 allows 255 octets; AUTH responses are longer). */
  maxLineBytes: number;
  /** Unknown or malformed commands before the connection is closed. */
  maxBadCommands: number;
  /** Commands accepted before authentication succeeds. */
  maxCommandsBeforeAuth: number;
  /** Failed authentications before the connection is closed. */
  maxAuthFailures: number;
  /** Delay before answering a failed authentication. */
  authFailureDelayMs: number;
  /** Idle time before the connection is closed (RFC 1939: at least 10 minutes). */
  idleTimeoutMs: number;
}

export const DEFAULT_POP3_LIMITS: Pop3Limits = {
  maxLineBytes: 2048,
  maxBadCommands: 10,
  maxCommandsBeforeAuth: 30,
  maxAuthFailures: 3,
  authFailureDelayMs: 2000,
  idleTimeoutMs: 10 * 60_000,
};

export interface Pop3SessionOptions {
  socket: Socket;
  /** Already TLS (port 995). */
  implicitTls: boolean;
  tls: TlsSource;
  store: MailStore;
  hostname: string;
  limits: Pop3Limits;
  logger: Logger;
  onClose: () => void;
}

interface DropEntry {
  uid: number;
  size: number;
  deleted: boolean;
  retrieved: boolean;
}

type State = 'authorization' | 'transaction' | 'closed';

/** Said to a session when the server stops; its deletions are not applied (only QUIT applies them). */
export const SHUTDOWN_REPLY = '-ERR [SYS/TEMP] server shutting down';

const PLAIN_MAX_DECODED = 1024;
/** How long a client may keep its side open after we ended the connection. */
const LINGER_MS = 5000;
/** Unprocessed input kept while a command runs (PIPELINING); beyond it the socket is paused. */
const MAX_PIPELINED_BYTES = 64 * 1024;

export class Pop3Session {
  private socket: Socket;
  private tlsActive: boolean;
  private readonly o: Pop3SessionOptions;
  private state: State = 'authorization';
  private buffer: Buffer = Buffer.alloc(0);
  private discarding = false;
  private busy = false;
  private pending: Buffer[] = [];
  private user: string | null = null;
  private account: AccountInfo | null = null;
  private mailboxId = 0;
  private uidValidity = 0;
  private release: (() => void) | null = null;
  private drop: DropEntry[] = [];
  private badCommands = 0;
  private commandsBeforeAuth = 0;
  private authFailures = 0;
  /** Set while waiting for the client's AUTH PLAIN response line. */
  private awaitingSasl = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private shuttingDown = false;
  private readonly log: Logger;

  constructor(o: Pop3SessionOptions) {
    this.o = o;
    this.socket = o.socket;
    this.tlsActive = o.implicitTls;
    this.log = o.logger.child({ remote: o.socket.remoteAddress });
    this.attach(this.socket);
    this.resetIdle();
    this.send(`+OK ${o.hostname} Postern POP3 ready`);
  }

  private attach(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'pop3 socket error'));
    socket.on('close', () => this.finish());
  }

  private resetIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.send('-ERR idle timeout, closing');
      this.socket.end();
    }, this.o.limits.idleTimeoutMs);
    this.idleTimer.unref();
  }

  private send(line: string): void {
    if (!this.socket.destroyed) this.socket.write(line + '\r\n');
  }

  /** Ends the session without applying deletions (connection drop, limits). */
  private finish(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.release?.();
    this.release = null;
    this.o.onClose();
  }

  close(): void {
    this.socket.destroy();
    this.finish();
  }

  /** Ends the session after the last reply; a client that never closes its side is cut after LINGER_MS. */
  private hangUp(): void {
    const socket = this.socket;
    socket.end();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
    this.finish();
  }

  /** Server stopping: `-ERR [SYS/TEMP]` and close now, or right after the command being answered. */
  shutDown(): void {
    this.shuttingDown = true;
    if (!this.busy) this.sayShutdown();
  }

  private sayShutdown(): void {
    if (this.state === 'closed') return;
    this.send(SHUTDOWN_REPLY);
    this.hangUp();
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.resetIdle();
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    // A client pipelining faster than we answer: stop reading until the backlog is worked off.
    if (this.buffer.length > MAX_PIPELINED_BYTES) this.socket.pause();
    this.pump();
  }

  /** Processes complete lines one at a time; commands run in order even when a client pipelines them. */
  private pump(): void {
    while (!this.busy && this.state !== 'closed') {
      if (this.buffer.length <= MAX_PIPELINED_BYTES && this.socket.isPaused()) this.socket.resume();
      const lf = this.buffer.indexOf(10);
      if (lf === -1) {
        if (this.buffer.length > this.o.limits.maxLineBytes) {
          this.buffer = Buffer.alloc(0);
          if (!this.discarding) {
            this.discarding = true;
            this.send('-ERR line too long');
            this.countBad();
          }
        }
        return;
      }
      const raw = this.buffer.subarray(0, lf);
      this.buffer = this.buffer.subarray(lf + 1);
      if (this.discarding) { this.discarding = false; continue; } // the rest of an over-long line
      if (raw.length > this.o.limits.maxLineBytes) { this.send('-ERR line too long'); this.countBad(); continue; }
      const line = raw.toString('utf8').replace(/\r$/, '');
      this.busy = true;
      this.handle(line).catch((err: unknown) => {
        this.log.error({ err: (err as Error).message }, 'pop3 command failed');
        this.send('-ERR [SYS/TEMP] internal error');
      }).finally(() => {
        this.busy = false;
        // Commands the client pipelined behind this one are not run once the server is stopping.
        if (this.shuttingDown) this.sayShutdown();
        else this.pump();
      });
    }
  }

  private countBad(): void {
    if (++this.badCommands >= this.o.limits.maxBadCommands) {
      this.send('-ERR too many bad commands, closing');
      this.hangUp();
    }
  }

  private async handle(line: string): Promise<void> {
    if (this.awaitingSasl) {
      this.awaitingSasl = false;
      if (line === '*') { this.send('-ERR authentication cancelled'); return; }
      await this.saslPlain(line);
      return;
    }
    if (/[\x00-\x08\x0a-\x1f\x7f\ufffd]/.test(line)) { this.send('-ERR invalid characters in command'); this.countBad(); return; }
    const sp = line.indexOf(' ');
    const cmd = (sp === -1 ? line : line.slice(0, sp)).toUpperCase();
    const arg = sp === -1 ? '' : line.slice(sp + 1);
    if (this.state === 'authorization') {
      if (++this.commandsBeforeAuth > this.o.limits.maxCommandsBeforeAuth) {
        this.send('-ERR too many commands without authentication, closing');
        this.hangUp();
        return;
      }
      switch (cmd) {
        case 'CAPA': return this.capa();
        case 'QUIT': return this.quitAuthorization();
        case 'NOOP': this.send('+OK'); return;
        case 'STLS': return this.stls(arg);
        case 'USER': return this.userCommand(arg);
        case 'PASS': return this.pass(arg);
        case 'AUTH': return this.auth(arg);
        case 'APOP': this.send('-ERR APOP not supported'); return;
        case 'STAT': case 'LIST': case 'RETR': case 'DELE': case 'RSET': case 'TOP': case 'UIDL':
          this.send('-ERR not authenticated'); this.countBad(); return;
        default: this.send('-ERR unknown command'); this.countBad(); return;
      }
    }
    switch (cmd) {
      case 'CAPA': return this.capa();
      case 'STAT': return this.stat(arg);
      case 'LIST': return this.list(arg);
      case 'UIDL': return this.uidl(arg);
      case 'RETR': return this.retr(arg);
      case 'TOP': return this.top(arg);
      case 'DELE': return this.dele(arg);
      case 'RSET': return this.rset(arg);
      case 'NOOP': this.send('+OK'); return;
      case 'QUIT': return this.quitTransaction();
      case 'USER': case 'PASS': case 'AUTH': case 'STLS': case 'APOP':
        this.send('-ERR already authenticated'); this.countBad(); return;
      default: this.send('-ERR unknown command'); this.countBad(); return;
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // AUTHORIZATION

  private capa(): void {
    const lines = ['+OK capability list follows', 'TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING', 'EXPIRE NEVER', 'IMPLEMENTATION Postern'];
    if (this.state === 'authorization') {
      if (this.tlsActive) lines.push('USER', 'SASL PLAIN');
      else lines.push('STLS');
    }
    lines.push('.');
    this.send(lines.join('\r\n'));
  }

  private stls(arg: string): void {
    if (arg) { this.send('-ERR STLS takes no argument'); this.countBad(); return; }
    if (this.tlsActive) { this.send('-ERR TLS already active'); this.countBad(); return; }
    this.send('+OK begin TLS negotiation');
    // Anything the client sent after STLS in the same packet came before TLS: drop it (RFC 2595 §3.1 injection).
    this.buffer = Buffer.alloc(0);
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = new TLSSocket(plain, { isServer: true, secureContext: this.o.tls.current(), SNICallback: this.o.tls.sniCallback });
    this.socket = secure;
    this.tlsActive = true;
    this.user = null;
    plain.on('close', () => this.finish());
    secure.on('data', (chunk: Buffer) => this.onData(chunk));
    secure.on('error', (err) => { this.log.debug({ err: err.message }, 'pop3 tls error'); secure.destroy(); plain.destroy(); });
    secure.on('close', () => this.finish());
  }

  private refuseCleartext(): boolean {
    if (this.tlsActive) return false;
    this.send('-ERR [AUTH] authentication requires TLS: use STLS first');
    return true;
  }

  private userCommand(arg: string): void {
    if (this.refuseCleartext()) return;
    if (!arg || arg.length > 320) { this.send('-ERR USER needs a mailbox name'); this.countBad(); return; }
    this.user = arg;
    this.send('+OK send PASS');
  }

  private async pass(arg: string): Promise<void> {
    if (this.refuseCleartext()) return;
    if (this.user === null) { this.send('-ERR USER first'); this.countBad(); return; }
    const user = this.user;
    this.user = null;
    await this.login(user, arg);
  }

  private async auth(arg: string): Promise<void> {
    if (arg === '') { this.send('+OK\r\nPLAIN\r\n.'); return; }
    if (this.refuseCleartext()) return;
    const [mech, initial, extra] = arg.split(' ');
    if (mech!.toUpperCase() !== 'PLAIN' || extra !== undefined) { this.send('-ERR unsupported SASL mechanism'); this.countBad(); return; }
    if (initial === undefined) { this.awaitingSasl = true; this.send('+ '); return; }
    await this.saslPlain(initial === '=' ? '' : initial);
  }

  private async saslPlain(b64: string): Promise<void> {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) { this.send('-ERR invalid base64'); await this.failAuth(); return; }
    const decoded = Buffer.from(b64, 'base64');
    if (decoded.length > PLAIN_MAX_DECODED) { this.send('-ERR credentials too long'); await this.failAuth(); return; }
    const parts = decoded.toString('utf8').split('\0');
    if (parts.length !== 3 || !parts[1]) { this.send('-ERR malformed PLAIN response'); await this.failAuth(); return; }
    const [authz, authc, password] = parts as [string, string, string];
    if (authz && authz.toLowerCase() !== authc.toLowerCase()) { await this.failAuth('-ERR [AUTH] authorization identity not allowed'); return; }
    await this.login(authc, password);
  }

  private async failAuth(message = '-ERR [AUTH] invalid credentials'): Promise<void> {
    this.authFailures++;
    await new Promise((r) => setTimeout(r, this.o.limits.authFailureDelayMs));
    if (this.state === 'closed') return;
    this.send(message);
    if (this.authFailures >= this.o.limits.maxAuthFailures) {
      this.send('-ERR too many failed authentications, closing');
      this.hangUp();
    }
  }

  private async login(user: string, password: string): Promise<void> {
    const account = await this.o.store.authenticate(user, password);
    if (this.state === 'closed') return;
    if (!account) {
      this.log.info({ user: user.slice(0, 100) }, 'pop3 authentication failed');
      await this.failAuth();
      return;
    }
    const inbox = this.o.store.getMailbox(account.address, 'INBOX');
    if (!inbox) { this.send('-ERR [SYS/PERM] no INBOX'); return; }
    const release = this.o.store.tryLock(inbox.id);
    if (!release) { this.send('-ERR [IN-USE] mailbox is locked by another POP3 session'); return; }
    this.release = release;
    this.account = account;
    this.mailboxId = inbox.id;
    this.uidValidity = inbox.uidValidity;
    this.drop = this.o.store.listMessages(inbox.id).map((m) => ({ uid: m.uid, size: m.size, deleted: false, retrieved: false }));
    this.state = 'transaction';
    this.log.info({ account: account.address, messages: this.drop.length }, 'pop3 login');
    this.send(`+OK ${account.address} has ${this.drop.length} messages`);
  }

  private quitAuthorization(): void {
    this.send('+OK bye');
    this.hangUp();
  }

  // -------------------------------------------------------------------------------------------------------------
  // TRANSACTION

  /** Parses a message number; answers -ERR and returns null when it is not a live message. */
  private entry(arg: string): { n: number; e: DropEntry } | null {
    if (!/^[1-9][0-9]{0,9}$/.test(arg)) { this.send('-ERR invalid message number'); this.countBad(); return null; }
    const n = Number(arg);
    const e = this.drop[n - 1];
    if (!e) { this.send('-ERR no such message'); return null; }
    if (e.deleted) { this.send('-ERR message is deleted'); return null; }
    return { n, e };
  }

  private stat(arg: string): void {
    if (arg) { this.send('-ERR STAT takes no argument'); this.countBad(); return; }
    const live = this.drop.filter((e) => !e.deleted);
    this.send(`+OK ${live.length} ${live.reduce((s, e) => s + e.size, 0)}`);
  }

  private list(arg: string): void {
    if (arg) {
      const x = this.entry(arg);
      if (x) this.send(`+OK ${x.n} ${x.e.size}`);
      return;
    }
    const lines = ['+OK scan listing follows'];
    this.drop.forEach((e, i) => { if (!e.deleted) lines.push(`${i + 1} ${e.size}`); });
    lines.push('.');
    this.send(lines.join('\r\n'));
  }

  private uniqueId(e: DropEntry): string {
    return `${this.uidValidity}.${e.uid}`;
  }

  private uidl(arg: string): void {
    if (arg) {
      const x = this.entry(arg);
      if (x) this.send(`+OK ${x.n} ${this.uniqueId(x.e)}`);
      return;
    }
    const lines = ['+OK unique-id listing follows'];
    this.drop.forEach((e, i) => { if (!e.deleted) lines.push(`${i + 1} ${this.uniqueId(e)}`); });
    lines.push('.');
    this.send(lines.join('\r\n'));
  }

  /** Sends message bytes as a multi-line response: dot-stuffed, CRLF-terminated, then `.`. */
  private async sendMessage(bytes: Buffer, bodyLines: number | null): Promise<void> {
    let end = bytes.length;
    if (bodyLines !== null) {
      const headerEnd = bytes.indexOf('\r\n\r\n');
      if (headerEnd === -1) end = bytes.length;
      else {
        end = headerEnd + 4;
        for (let i = 0; i < bodyLines && end < bytes.length; i++) {
          const lf = bytes.indexOf(10, end);
          end = lf === -1 ? bytes.length : lf + 1;
        }
      }
    }
    const chunks: Buffer[] = [];
    let start = 0;
    // Dot-stuff: every line that starts with '.' gets another '.'.
    if (bytes[0] === 46 && end > 0) { chunks.push(Buffer.from('.')); }
    for (let i = bytes.indexOf('\n.', 0); i !== -1 && i < end; i = bytes.indexOf('\n.', i + 1)) {
      if (i + 1 >= end) break;
      chunks.push(bytes.subarray(start, i + 1), Buffer.from('.'));
      start = i + 1;
    }
    chunks.push(bytes.subarray(start, end));
    const last = end > 0 ? bytes[end - 1] : 10;
    chunks.push(Buffer.from(last === 10 ? '.\r\n' : '\r\n.\r\n'));
    for (const c of chunks) {
      if (!this.socket.write(c)) await new Promise<void>((resolve) => {
        const done = () => { this.socket.off('drain', done); this.socket.off('close', done); resolve(); };
        this.socket.on('drain', done);
        this.socket.on('close', done);
      });
      if (this.socket.destroyed) return;
    }
  }

  private async retr(arg: string): Promise<void> {
    const x = this.entry(arg);
    if (!x) return;
    const bytes = await this.o.store.readMessage(this.mailboxId, x.e.uid);
    if (!bytes) { this.send('-ERR message was removed by another session'); return; }
    this.send(`+OK ${bytes.length} octets`);
    await this.sendMessage(bytes, null);
    x.e.retrieved = true;
  }

  private async top(arg: string): Promise<void> {
    const m = /^(\S+) ([0-9]{1,9})$/.exec(arg);
    if (!m) { this.send('-ERR usage: TOP msg n'); this.countBad(); return; }
    const x = this.entry(m[1]!);
    if (!x) return;
    const bytes = await this.o.store.readMessage(this.mailboxId, x.e.uid);
    if (!bytes) { this.send('-ERR message was removed by another session'); return; }
    this.send('+OK top of message follows');
    await this.sendMessage(bytes, Number(m[2]));
  }

  private dele(arg: string): void {
    const x = this.entry(arg);
    if (!x) return;
    x.e.deleted = true;
    this.send(`+OK message ${x.n} deleted`);
  }

  private rset(arg: string): void {
    if (arg) { this.send('-ERR RSET takes no argument'); this.countBad(); return; }
    for (const e of this.drop) e.deleted = false;
    this.send(`+OK maildrop has ${this.drop.length} messages`);
  }

  /** UPDATE state: \Seen for retrieved messages, then the deletions, then the lock goes. */
  private async quitTransaction(): Promise<void> {
    const store = this.o.store;
    const deleted = this.drop.filter((e) => e.deleted).map((e) => [e.uid, e.uid] as const);
    const seen = this.drop.filter((e) => e.retrieved && !e.deleted).map((e) => [e.uid, e.uid] as const);
    try {
      if (seen.length) store.storeFlags(this.mailboxId, seen, { mode: 'add', flags: ['\\Seen'] }, this);
      if (deleted.length) {
        store.storeFlags(this.mailboxId, deleted, { mode: 'add', flags: ['\\Deleted'] }, this);
        const r = await store.expunge(this.mailboxId, deleted, this);
        if (r.uids.length !== deleted.length) {
          this.send(`-ERR [SYS/TEMP] ${deleted.length - r.uids.length} deleted messages were already gone`);
          this.hangUp();
          return;
        }
      }
      this.send(`+OK ${this.account?.address ?? ''} bye (${deleted.length} messages deleted)`);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'pop3 update failed');
      this.send('-ERR [SYS/TEMP] some deleted messages not removed');
    }
    this.hangUp();
  }
}

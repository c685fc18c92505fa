// One IMAP connection: reads commands one at a time (pipelined commands wait their turn, so literals are only
// asked for when the session can take them), dispatches to commands/, writes tagged answers, and enforces the
// per-connection limits. States follow RFC 9051 3: not authenticated → authenticated ⇄ selected → logout.
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { AccountInfo, MailStore } from '../store/types.ts';
import { StoreError } from '../store/types.ts';
import type { TlsSource } from '../service.ts';
import { Args } from './args.ts';
import { COMMANDS } from './commands/index.ts';
import type { ImapLimits } from './limits.ts';
import { decodeMutf7, encodeMutf7 } from './mutf7.ts';
import { CommandReader } from './reader.ts';
import type { SelectedMailbox } from './selected.ts';
import { ImapSyntaxError, tokenize } from './tokens.ts';
import { flushUpdates } from './updates.ts';
import { ResponseBuilder } from './writer.ts';

export type SessionState = 'notauth' | 'auth' | 'selected' | 'logout';

export interface SessionDeps {
  store: MailStore;
  tls: TlsSource;
  limits: ImapLimits;
  logger: Logger;
  hostname: string;
}

export interface CommandResult {
  status: 'OK' | 'NO' | 'BAD';
  /** Response code without brackets, e.g. "READ-WRITE" or "COPYUID 3 1:2 5:6". */
  code?: string;
  text: string;
  /** The command wrote its own tagged answer (STARTTLS must, before switching to TLS). */
  answered?: boolean;
}

export interface CommandContext {
  tag: string;
  /** The command came as `UID <name>`. */
  uid: boolean;
}

export interface CommandHandler {
  readonly name: string;
  readonly states: readonly SessionState[];
  /** May come after `UID` (COPY, FETCH, MOVE, SEARCH, STORE, EXPUNGE). */
  readonly uidForm?: boolean;
  /** Untagged EXPUNGE may not follow this command (FETCH, STORE, SEARCH without UID: RFC 3501 7.4.1). */
  readonly holdsExpunges?: boolean | ((ctx: CommandContext) => boolean);
  run(s: Session, a: Args, ctx: CommandContext): Promise<CommandResult>;
}

export function ok(text: string, code?: string): CommandResult {
  return code === undefined ? { status: 'OK', text } : { status: 'OK', code, text };
}
export function no(text: string, code?: string): CommandResult {
  return code === undefined ? { status: 'NO', text } : { status: 'NO', code, text };
}
export function bad(text: string, code?: string): CommandResult {
  return code === undefined ? { status: 'BAD', text } : { status: 'BAD', code, text };
}

const MAX_MAILBOX_NAME_BYTES = 1024;
/** Held output past this many characters or bytes goes out at once rather than with the tagged answer. */
const HOLD_MAX = 64 * 1024;
/** Store events queued for a client that is not idling, before it is asked to reconnect. */
const MAX_PENDING_EVENTS = 20000;

export class Session {
  readonly deps: SessionDeps;
  readonly store: MailStore;
  readonly limits: ImapLimits;
  log: Logger;
  readonly remoteAddress: string;
  socket: Socket;
  secure: boolean;
  state: SessionState = 'notauth';
  account: AccountInfo | null = null;
  selected: SelectedMailbox | null = null;
  /** ENABLEd extensions (CONDSTORE, QRESYNC, IMAP4rev2). */
  readonly enabled = new Set<string>();
  /** CONDSTORE is on once the client used any of its features (RFC 7162 3.1). */
  condstore = false;
  readonly reader: CommandReader;
  private unsubscribe: (() => void) | null = null;
  private preAuthCommands = 0;
  authFailures = 0;
  private badCommands = 0;
  private shuttingDown = false;
  /** True while waiting for the client's next command (or in IDLE): a shutdown may say BYE at once. */
  private waiting = false;
  /** Wakes IDLE when store events arrive. */
  idleWake: (() => void) | null = null;
  private closed = false;
  /** Untagged output waiting to go out with the next write (see hold()). */
  private held: Array<string | Buffer> = [];
  private heldSize = 0;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(socket: Socket, secure: boolean, deps: SessionDeps) {
    this.deps = deps;
    this.store = deps.store;
    this.limits = deps.limits;
    this.socket = socket;
    this.secure = secure;
    this.remoteAddress = socket.remoteAddress ?? '?';
    this.log = deps.logger.child({ imap: `${this.remoteAddress}:${socket.remotePort ?? 0}` });
    this.reader = new CommandReader(deps.limits, () => this.write('+ Ready for literal data\r\n'));
    this.closedPromise = new Promise((r) => { this.resolveClosed = r; });
    this.watchSocket(socket);
  }

  get rev2(): boolean {
    return this.enabled.has('IMAP4rev2');
  }

  get qresync(): boolean {
    return this.enabled.has('QRESYNC');
  }

  /** The origin value store calls carry, so this session can tell its own changes from others'. */
  get origin(): unknown {
    return this;
  }

  private watchSocket(socket: Socket): void {
    socket.on('error', (err) => {
      this.log.debug({ err: err.message }, 'imap socket error');
    });
    socket.on('close', () => this.onClosed());
    socket.setTimeout(this.limits.preAuthTimeoutMs, () => {
      this.write('* BYE Autologout; idle for too long\r\n');
      this.destroy();
    });
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.state = 'logout';
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.idleWake?.();
    this.resolveClosed();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  whenClosed(): Promise<void> {
    return this.closedPromise;
  }

  write(data: string | Buffer): boolean {
    if (this.closed || this.socket.destroyed || this.socket.writableEnded) {
      this.held = [];
      this.heldSize = 0;
      return false;
    }
    if (this.held.length === 0) return data.length > 0 ? this.socket.write(data) : true;
    const held = this.held;
    this.held = [];
    this.heldSize = 0;
    if (typeof data === 'string' && held.every((h) => typeof h === 'string')) return this.socket.write(held.join('') + data);
    // One writev, so one TLS record and one system call for the lot.
    this.socket.cork();
    let ok = true;
    for (const h of held) ok = this.socket.write(h) && ok;
    if (data.length > 0) ok = this.socket.write(data) && ok;
    this.socket.uncork();
    return ok;
  }

  /**
   * Queues untagged responses to go out with the next write, normally the command's tagged answer: a command's
   * output then leaves in one TLS record and one system call instead of one per response. Only for output a
   * tagged answer follows (never a continuation request, nor IDLE's updates: flush() those).
   */
  hold(data: string | Buffer): void {
    if (data.length === 0) return;
    this.held.push(data);
    this.heldSize += data.length;
    if (this.heldSize >= HOLD_MAX) this.write('');
  }

  /** Sends held output now (waiting for the socket to drain when its buffer is full). */
  async flush(): Promise<void> {
    if (this.held.length > 0) await this.send('');
  }

  /** Writes and waits for the socket to drain when its buffer is full (large FETCH responses). */
  async send(data: string | Buffer): Promise<void> {
    if (this.write(data)) return;
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  builder(): ResponseBuilder {
    return new ResponseBuilder(this.rev2);
  }

  destroy(): void {
    this.socket.destroy();
    this.onClosed();
  }

  /** Ends the connection after the pending output is written. */
  end(): void {
    this.state = 'logout';
    this.write('');
    this.socket.end();
  }

  capabilities(): string[] {
    const c = ['IMAP4rev1', 'IMAP4rev2'];
    if (this.state === 'notauth') {
      if (!this.secure) c.push('STARTTLS', 'LOGINDISABLED');
      else c.push('AUTH=PLAIN');
      c.push('SASL-IR', 'LITERAL+', 'ID', 'ENABLE');
      return c;
    }
    c.push('LITERAL+', 'SASL-IR', 'ID', 'ENABLE', 'IDLE', 'NAMESPACE', 'UNSELECT', 'UIDPLUS', 'MOVE', 'CHILDREN',
      'LIST-EXTENDED', 'LIST-STATUS', 'SPECIAL-USE', 'ESEARCH', 'SEARCHRES', 'CONDSTORE', 'QRESYNC', 'QUOTA', 'QUOTA=RES-STORAGE',
      'STATUS=SIZE', `APPENDLIMIT=${this.limits.maxAppendBytes}`);
    return c;
  }

  /** Starts reading from the TLS socket that replaces the plaintext one (STARTTLS). */
  async upgradeToTls(): Promise<boolean> {
    const raw = this.socket;
    const tls = new TLSSocket(raw, {
      isServer: true,
      secureContext: this.deps.tls.current(),
      SNICallback: this.deps.tls.sniCallback,
    });
    this.socket = tls;
    this.secure = true;
    tls.on('error', (err) => {
      this.log.debug({ err: err.message }, 'imap tls error');
      this.destroy();
    });
    tls.on('close', () => this.onClosed());
    const secured = await new Promise<boolean>((resolve) => {
      tls.once('secure', () => resolve(true));
      tls.once('close', () => resolve(false));
    });
    if (secured) this.reader.attach(tls);
    return secured;
  }

  /** Sets up the session on a fresh connection (after the TLS handshake for implicit TLS) and serves it. */
  async run(greeting: string): Promise<void> {
    this.reader.attach(this.socket);
    await this.send(greeting);
    try {
      await this.loop();
    } catch (err) {
      this.log.error({ err }, 'imap session failed');
      this.write('* BYE Internal server error\r\n');
    } finally {
      this.leaveSelected();
      this.destroySoon();
    }
  }

  private destroySoon(): void {
    if (this.closed) return;
    this.write('');
    this.socket.end();
    // A client that never reads its last bytes must not keep the socket open.
    setTimeout(() => this.destroy(), 5000).unref();
  }

  private async loop(): Promise<void> {
    for (;;) {
      if (this.shuttingDown) {
        await this.send('* BYE Server shutting down\r\n');
        return;
      }
      this.waiting = true;
      const r = await this.reader.next();
      this.waiting = false;
      if (this.closed || r.kind === 'end') return;
      if (this.state === 'notauth' && ++this.preAuthCommands > this.limits.maxCommandsBeforeAuth) {
        await this.send('* BYE [LIMIT] Too many commands before authentication\r\n');
        return;
      }
      if (r.kind === 'error') {
        await this.tagged(r.tag ?? '*', r.append ? no(r.text, r.code) : bad(r.text, r.code));
        if (r.fatal) {
          await this.send('* BYE Too much data\r\n');
          return;
        }
        if (++this.badCommands > this.limits.maxBadCommands) {
          await this.send('* BYE [LIMIT] Too many bad commands\r\n');
          return;
        }
        continue;
      }
      if (this.state === 'auth' || this.state === 'selected') this.socket.setTimeout(this.limits.idleTimeoutMs);
      await this.execute(r.tag, r.segments);
      if (this.state === 'logout') return;
      if (this.badCommands > this.limits.maxBadCommands) {
        await this.send('* BYE [LIMIT] Too many bad commands\r\n');
        return;
      }
    }
  }

  private async execute(tag: string, segments: Parameters<typeof tokenize>[0]): Promise<void> {
    let result: CommandResult;
    let holdExpunges = true;
    try {
      const values = tokenize(segments, this.limits.maxNestingDepth);
      const a = new Args(values);
      a.atom('tag');
      let name = a.keyword('command name');
      let uid = false;
      if (name === 'UID') {
        uid = true;
        name = a.keyword('command name after UID');
      }
      const handler = COMMANDS.get(name);
      if (!handler || (uid && !handler.uidForm)) {
        result = bad(`Unknown command ${uid ? 'UID ' : ''}${name.slice(0, 30)}`);
      } else if (!handler.states.includes(this.state)) {
        result = bad(`${name} is not allowed ${stateText(this.state)}`);
      } else {
        const ctx: CommandContext = { tag, uid };
        const h = handler.holdsExpunges;
        holdExpunges = typeof h === 'function' ? h(ctx) : h === true;
        result = await handler.run(this, a, ctx);
      }
    } catch (err) {
      result = errorResult(err, this.log);
    }
    if (this.closed || result.answered) return;
    if (result.status === 'BAD') this.badCommands++;
    else this.badCommands = 0;
    if (this.selected && this.state === 'selected') await flushUpdates(this, !holdExpunges);
    await this.tagged(tag, result);
  }

  async tagged(tag: string, r: CommandResult): Promise<void> {
    const code = r.code ? `[${r.code}] ` : '';
    await this.send(`${tag} ${r.status} ${code}${r.text}\r\n`);
  }

  /** Decodes a mailbox name argument (modified UTF-7 unless UTF-8 is enabled) and checks it. */
  mailboxName(a: Args, what = 'mailbox name'): string {
    const raw = a.astring(what);
    return normaliseMailboxName(this.rev2 ? raw : decodeMutf7(raw));
  }

  /** A mailbox name as this client expects to read it. */
  encodeName(name: string): string {
    return this.rev2 ? name : encodeMutf7(name);
  }

  select(view: SelectedMailbox): void {
    this.leaveSelected();
    this.selected = view;
    this.state = 'selected';
    this.unsubscribe = this.store.notifier.subscribe(view.id, (e) => {
      if (view.pending.length >= MAX_PENDING_EVENTS) {
        // A client that sends nothing while a mailbox churns would make this queue grow without end; it can
        // resynchronise by UID (or QRESYNC) after reconnecting.
        this.unsubscribe?.();
        this.unsubscribe = null;
        this.write('* BYE [LIMIT] Too many changes since your last command; reconnect to resynchronise\r\n');
        this.destroySoon();
        return;
      }
      view.onEvent(e);
      this.idleWake?.();
    });
  }

  leaveSelected(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.selected = null;
    if (this.state === 'selected') this.state = 'auth';
  }

  authenticated(account: AccountInfo): void {
    this.account = account;
    this.state = 'auth';
    this.reader.appendAllowed = true;
    this.socket.setTimeout(this.limits.idleTimeoutMs);
    this.log = this.log.child({ user: account.address });
  }

  /** Drains: BYE now when waiting for a command, else after the current one. */
  shutdown(): void {
    this.shuttingDown = true;
    if (this.waiting || this.idleWake) {
      this.write('* BYE Server shutting down\r\n');
      this.socket.end();
    }
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }
}

function stateText(s: SessionState): string {
  return s === 'notauth' ? 'before authentication' : s === 'auth' ? 'without a selected mailbox' : s === 'selected' ? 'with a mailbox selected' : 'now';
}

export function errorResult(err: unknown, log: Logger): CommandResult {
  if (err instanceof ImapSyntaxError) return bad(err.message, err.code ?? undefined);
  // The store's codes are IMAP response codes already ([NONEXISTENT], [OVERQUOTA], [INUSE], ...).
  if (err instanceof StoreError) return no(err.message, err.code);
  log.error({ err }, 'imap command failed');
  return no('Internal error; try again later', 'SERVERBUG');
}

/** INBOX in any case is INBOX; names must be usable as hierarchy paths (RFC 9051 5.1). */
export function normaliseMailboxName(name: string): string {
  if (Buffer.byteLength(name) > MAX_MAILBOX_NAME_BYTES) throw new StoreError('CANNOT', 'Mailbox name too long');
  if (/^inbox$/i.test(name)) return 'INBOX';
  if (/^inbox\//i.test(name)) return `INBOX${name.slice(5)}`;
  return name;
}

/** Extra checks for names that are about to exist (CREATE, RENAME target): the store checks again. */
export function checkNewMailboxName(name: string): void {
  if (name === '') throw new StoreError('CANNOT', 'Mailbox name is empty');
  if (/[%*]/.test(name)) throw new StoreError('CANNOT', 'Mailbox names cannot contain % or *');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) throw new StoreError('CANNOT', 'Mailbox names cannot contain control characters');
  for (const part of name.split('/')) {
    if (part === '') throw new StoreError('CANNOT', 'Mailbox name has an empty level (leading, trailing or double "/")');
    if (part === '.' || part === '..') throw new StoreError('CANNOT', 'Mailbox name levels cannot be "." or ".."');
    if (Buffer.byteLength(part) > 255) throw new StoreError('CANNOT', 'A mailbox name level is longer than 255 bytes');
  }
}

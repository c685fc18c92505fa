// POP3 listener lifecycle: a renewed certificate reaches clients that send no SNI (openssl s_client on 995 and
// with STLS on 110), and stop() sends sessions away with -ERR [SYS/TEMP] at once — after the answer to a command
// still running — without applying their deletions (raw sockets, so the exact lines and their order show).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { createPop3Service } from '../../../src/server/pop3/service.ts';
import type { Service } from '../../../src/server/service.ts';
import { createTlsSource } from '../../../src/server/tls.ts';
import type { ReloadableTls } from '../../../src/server/tls.ts';
import type { MailStore } from '../../../src/server/store/types.ts';
import { ensureDebianPackages } from '../../support/debian.ts';
import { noSniSerial, writeCertFiles } from '../../support/tls-probe.ts';
import { message, PASSWORD, storeFixture, user, type StoreFixture } from '../store/fixture.ts';

ensureDebianPackages(['openssl']);

const ALICE = 'alice@example.com';
const BOB = 'bob@example.com';

let f: StoreFixture;
let certDir = '';
let source: ReloadableTls;
let service: Service;
let plainPort = 0;
let tlsPort = 0;
/** Called after each password check, so a test knows a session is inside its failed-login delay. */
let afterAuthenticate: (() => void) | null = null;

/** Reads POP3 lines one at a time; null once the server has closed the connection. */
class LineClient {
  #buffer = '';
  #lines: (string | null)[] = [];
  #waiters: ((l: string | null) => void)[] = [];
  readonly socket: net.Socket;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.#buffer += d;
      for (let i = this.#buffer.indexOf('\r\n'); i !== -1; i = this.#buffer.indexOf('\r\n')) {
        this.#push(this.#buffer.slice(0, i));
        this.#buffer = this.#buffer.slice(i + 2);
      }
    });
    socket.on('close', () => this.#push(null));
    socket.on('error', () => undefined);
  }

  static open(port: number, secure: boolean): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s: net.Socket = secure
        ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(new LineClient(s)))
        : net.connect({ host: '127.0.0.1', port }, () => resolve(new LineClient(s)));
      s.once('error', reject);
    });
  }

  #push(l: string | null): void {
    const w = this.#waiters.shift();
    if (w) w(l); else this.#lines.push(l);
  }

  read(): Promise<string | null> {
    if (this.#lines.length) return Promise.resolve(this.#lines.shift()!);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async command(line: string): Promise<string | null> {
    this.socket.write(`${line}\r\n`);
    return this.read();
  }
}

function inboxId(): number {
  return f.store.getMailbox(ALICE, 'INBOX')!.id;
}

before(async () => {
  f = await storeFixture([user(ALICE), user(BOB)]);
  for (const s of ['one', 'two']) await f.store.append(inboxId(), message(s, `body ${s}\r\n`));
  certDir = await mkdtemp(path.join(tmpdir(), 'postern-pop3-cert-'));
  await writeCertFiles(certDir);
  source = createTlsSource({ certFile: path.join(certDir, 'cert.pem'), keyFile: path.join(certDir, 'key.pem') }, f.logger);
  const store = new Proxy(f.store, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      if (key === 'authenticate') {
        return async (...args: Parameters<MailStore['authenticate']>) => {
          const account = await target.authenticate(...args);
          afterAuthenticate?.();
          return account;
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  service = createPop3Service({
    store, tls: source, logger: f.logger, hostname: 'mail.example.com', listenAddress: '127.0.0.1',
    ports: { pop3: 0, pop3s: 0 }, maxConnectionsPerIp: 20, limits: { authFailureDelayMs: 1500 },
  });
  const listening = await service.start();
  plainPort = Number(new URL(listening.find((l) => l.scheme === 'pop3')!.url).port);
  tlsPort = Number(new URL(listening.find((l) => l.scheme === 'pop3s')!.url).port);
});

after(async () => {
  // The graceful-stop test stopped the service; stopping again only makes sure nothing is left listening.
  await service.stop(Date.now());
  source.close();
  await f.cleanup();
  await rm(certDir, { recursive: true, force: true });
});

test('after a certificate renewal, clients without SNI get the new certificate on 995 and after STLS on 110', async () => {
  const first = source.info().serialNumber;
  assert.equal(await noSniSerial(tlsPort), first);
  assert.equal(await noSniSerial(plainPort, 'pop3'), first);
  const renewed = await writeCertFiles(certDir);
  assert.notEqual(renewed.serial, first);
  assert.equal(source.reload(), true);
  assert.equal(await noSniSerial(tlsPort), renewed.serial, 'pop3s default context');
  assert.equal(await noSniSerial(plainPort, 'pop3'), renewed.serial, 'STLS');
});

test('stop(): sessions get -ERR [SYS/TEMP] at once, a running command is answered first, DELE is not applied', { timeout: 20_000 }, async () => {
  // Connected to 995 but never starting TLS: there is no session to wait for, stop() cuts it.
  const stalled = await LineClient.open(tlsPort, false);
  const reader = await LineClient.open(tlsPort, true);
  assert.match(String(await reader.read()), /^\+OK /);
  assert.match(String(await reader.command(`USER ${ALICE}`)), /^\+OK/);
  assert.match(String(await reader.command(`PASS ${PASSWORD}`)), /^\+OK .* has 2 messages/);
  assert.match(String(await reader.command('DELE 1')), /^\+OK/);

  const waiting = await LineClient.open(plainPort, false);
  assert.match(String(await waiting.read()), /^\+OK /);

  // A failed login is held for authFailureDelayMs: stop() arrives while that command is still running.
  const failing = await LineClient.open(tlsPort, true);
  assert.match(String(await failing.read()), /^\+OK /);
  assert.match(String(await failing.command(`USER ${BOB}`)), /^\+OK/);
  const checked = new Promise<void>((resolve) => { afterAuthenticate = resolve; });
  failing.socket.write('PASS wrong-password\r\n');
  await checked;

  let stopped = false;
  const stopping = service.stop(Date.now() + 60_000).then(() => { stopped = true; });

  for (const idle of [reader, waiting]) {
    assert.equal(await idle.read(), '-ERR [SYS/TEMP] server shutting down');
    assert.equal(await idle.read(), null, 'the server closes the connection');
  }
  assert.equal(stopped, false, 'stop() waits for the command still running');
  assert.equal(await failing.read(), '-ERR [AUTH] invalid credentials');
  assert.equal(await failing.read(), '-ERR [SYS/TEMP] server shutting down');
  assert.equal(await failing.read(), null);
  assert.equal(await stalled.read(), null, 'a connection without a TLS handshake is cut');
  await stopping;

  assert.equal(f.store.listMessages(inboxId()).length, 2, 'DELE without QUIT deletes nothing');
  await assert.rejects(LineClient.open(tlsPort, true), /ECONNREFUSED/);
});

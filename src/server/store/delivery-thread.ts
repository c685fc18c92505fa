// Local delivery on a thread of its own. The main thread runs every session (SMTP, IMAP, POP3, web) on one event
// loop; local delivery (parsing a message, writing and fsyncing its file, committing its index rows, indexing
// its text for FTS) was a fifth of that loop's work under SMTP load and held sessions up in between. deliver()
// now posts the message to a worker thread (delivery-worker.ts) with a second connection to the same SQLite index
// (WAL: one writer at a time, each waits for the other through busy_timeout). Every change it commits comes back
// as a message and is applied to the main store in order, before the delivery's result: sessions are told and
// the UID cache follows. The thread indexes the body text itself, behind its deliveries; SEARCH on the main
// thread first waits for it to index what it has (flushFts), as it flushes its own queue.
// A thread that dies fails its deliveries in flight (the pipeline retries them; delivery ids keep it to one
// copy) and the next delivery starts a new one. The thread starts with the first delivery and ends after
// IDLE_MS without one: a server that mostly serves IMAP does not keep a second JavaScript heap and index
// connection (about 20 MiB) for mail that arrives a few times an hour.
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { DeliveryOptions, DeliveryResult } from './api.ts';
import type { StoreEvent } from './types.ts';

export interface DeliveryThreadData {
  stateDir: string;
  maxMessageBytes: number;
  /** How long the thread waits for the next delivery before it ends (default IDLE_MS). */
  idleMs?: number;
  /** [flushes asked for, flushes done]: flushFts() waits on the second (Atomics) without a message back. */
  ftsFlush: SharedArrayBuffer;
}

const IDLE_MS = 5 * 60_000;

/**
 * The thread's nice value. When the CPU is full, the main thread (an SMTP 250, an IMAP reply) wins over local
 * delivery of mail already safe in the spool, which catches up once the burst is over; an idle CPU runs both at
 * once as before. The bench's MX against itself without the change, side by side (smtp-source, 10 sessions, on 2
 * cores): +22 to +35 % accepted messages/s (nice 5: half that, nice 19: the same as 10). Like Postfix's queue,
 * delivery waits a little under load; the mail is never at risk.
 */
export const DELIVERY_NICE = 10;

/** How long SEARCH waits for the thread's FTS flush before it searches what is indexed. */
const FTS_FLUSH_WAIT_MS = 10_000;

export type ToDeliveryThread =
  | { type: 'deliver'; id: number; account: string; message: Uint8Array; options: DeliveryOptions }
  /** Index the queued FTS text now, then set flushes-done to `seq`. */
  | { type: 'flush-fts'; seq: number }
  | { type: 'close' };

/** Sent in batches (an array per message), in order. */
export type FromDeliveryThread =
  | { type: 'delivered'; id: number; result: DeliveryResult }
  | { type: 'failed'; id: number; message: string; code: string | undefined }
  | { type: 'event'; event: StoreEvent }
  | { type: 'log'; level: 'error' | 'warn' | 'info' | 'debug'; obj: Record<string, unknown>; msg: string }
  | { type: 'closed'; message?: string };

/** What the main thread's store does with what the thread commits. */
export interface DeliveryThreadHost {
  event(event: StoreEvent): void;
  logger: Logger;
}

/**
 * The worker's script: next to this module in the source tree, or an entry point of a bundle (scripts/build.ts
 * writes .js, with this module in the entry or in chunks/; bench/imap.ts writes .mjs).
 */
function workerScript(): URL {
  for (const name of ['./delivery-worker.ts', './delivery-worker.js', '../delivery-worker.js', './delivery-worker.mjs']) {
    const url = new URL(name, import.meta.url);
    if (existsSync(url)) return url;
  }
  throw new Error(`delivery-worker script not found near ${import.meta.url}`);
}

interface Waiting { resolve(r: DeliveryResult): void; reject(err: Error): void }

export class DeliveryThread {
  readonly #data: DeliveryThreadData;
  readonly #flush: Int32Array;
  readonly #host: DeliveryThreadHost;
  readonly #waiting = new Map<number, Waiting>();
  #worker: Worker | null = null;
  #closed: (() => void) | null = null;
  /** The thread's store closing and the thread ending (idle, or close()); a delivery meanwhile waits for it. */
  #stopping: Promise<void> | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  #next = 1;

  constructor(data: Omit<DeliveryThreadData, 'ftsFlush'>, host: DeliveryThreadHost) {
    this.#data = { ...data, ftsFlush: new SharedArrayBuffer(8) };
    this.#flush = new Int32Array(this.#data.ftsFlush);
    this.#host = host;
  }

  async deliver(account: string, message: Buffer, options: DeliveryOptions): Promise<DeliveryResult> {
    if (this.#idleTimer) { clearTimeout(this.#idleTimer); this.#idleTimer = null; }
    // A copy of exactly these bytes, moved (not copied again) to the thread: a Buffer may view a larger pool.
    const bytes = new Uint8Array(message.byteLength);
    bytes.set(message);
    while (this.#stopping) await this.#stopping;
    const worker = this.#start();
    const id = this.#next++;
    return new Promise<DeliveryResult>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      worker.postMessage({ type: 'deliver', id, account, message: bytes, options } satisfies ToDeliveryThread, [bytes.buffer]);
    });
  }

  /**
   * Blocks until the thread has indexed the FTS text of everything it committed so far (SEARCH semantics: all
   * messages a session has been told of are searchable). Gives up after FTS_FLUSH_WAIT_MS (a thread that is
   * gone or stuck), logged: the search then runs on what is indexed.
   */
  flushFts(): void {
    const worker = this.#worker;
    if (!worker) return;
    const seq = Atomics.add(this.#flush, 0, 1) + 1;
    worker.postMessage({ type: 'flush-fts', seq } satisfies ToDeliveryThread);
    const deadline = Date.now() + FTS_FLUSH_WAIT_MS;
    for (let done = Atomics.load(this.#flush, 1); done < seq; done = Atomics.load(this.#flush, 1)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.#host.logger.error({ seq, done }, 'the delivery thread did not index its FTS queue in time; searching what is indexed');
        return;
      }
      Atomics.wait(this.#flush, 1, done, left);
    }
  }

  /** Lets deliveries in flight finish, closes the thread's store and ends the thread. */
  close(): Promise<void> {
    if (this.#idleTimer) { clearTimeout(this.#idleTimer); this.#idleTimer = null; }
    return this.#stop();
  }

  #stop(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return this.#stopping ?? Promise.resolve();
    this.#stopping ??= (async () => {
      await new Promise<void>((resolve) => {
        this.#closed = resolve;
        worker.postMessage({ type: 'close' } satisfies ToDeliveryThread);
      });
      if (this.#worker === worker) this.#worker = null;
      await worker.terminate();
    })().finally(() => { this.#stopping = null; });
    return this.#stopping;
  }

  #armIdle(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      if (this.#waiting.size === 0) void this.#stop();
    }, this.#data.idleMs ?? IDLE_MS);
    this.#idleTimer.unref();
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(workerScript(), { workerData: this.#data });
    // Sessions and listeners keep the process alive; a store opened by a tool must not be kept open by this.
    worker.unref();
    worker.on('message', (batch: FromDeliveryThread[]) => { for (const m of batch) this.#receive(m); });
    worker.on('error', (err) => this.#host.logger.error({ err: err.message }, 'delivery thread failed'));
    worker.on('exit', (code) => {
      if (this.#worker === worker) this.#worker = null;
      const waiting = [...this.#waiting.values()];
      this.#waiting.clear();
      for (const w of waiting) w.reject(new Error(`delivery thread exited (code ${code}) before finishing this delivery`));
      this.#closed?.();
      this.#closed = null;
    });
    this.#worker = worker;
    return worker;
  }

  #receive(m: FromDeliveryThread): void {
    switch (m.type) {
      case 'event': this.#host.event(m.event); break;
      case 'log': this.#host.logger[m.level](m.obj, m.msg); break;
      case 'delivered':
      case 'failed': {
        const w = this.#waiting.get(m.id);
        if (!w) break;
        this.#waiting.delete(m.id);
        if (this.#waiting.size === 0) this.#armIdle();
        if (m.type === 'delivered') w.resolve(m.result);
        else w.reject(Object.assign(new Error(m.message), m.code !== undefined ? { code: m.code } : {}));
        break;
      }
      case 'closed':
        if (m.message) this.#host.logger.error({ err: m.message }, 'closing the delivery thread\'s store failed');
        this.#closed?.();
        this.#closed = null;
        break;
    }
  }
}

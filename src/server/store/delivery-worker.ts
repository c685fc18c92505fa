// The delivery thread (see delivery-thread.ts): a second SqliteStore on the same index and Maildir tree that only
// delivers. Parsing, the message file and its fsyncs, the index rows and the FTS text of local delivery run here,
// off the thread that serves the SMTP, IMAP and POP3 sessions. The changes it commits go back to the main
// thread's store as messages (events for the sessions), and so do its log lines.
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { Logger } from 'pino';
import { SqliteStore } from './sqlite-store.ts';
import { DELIVERY_NICE } from './delivery-thread.ts';
import type { DeliveryThreadData, FromDeliveryThread, ToDeliveryThread } from './delivery-thread.ts';

const port = parentPort;
if (!port) throw new Error('delivery-worker.ts runs as a worker thread only');
const data = workerData as DeliveryThreadData;
// What one turn of this thread's loop has to say goes as one message (a group commit's events and results
// together): each message wakes the main thread, and a wake-up costs more than the copying.
let outbox: FromDeliveryThread[] = [];
const post = (m: FromDeliveryThread) => {
  if (outbox.push(m) === 1) setImmediate(() => {
    const batch = outbox;
    outbox = [];
    port.postMessage(batch);
  });
};

function forwardingLogger(bindings: Record<string, unknown>): Logger {
  const at = (level: 'error' | 'warn' | 'info' | 'debug') => (obj: object | string, msg?: string) => {
    if (typeof obj === 'string') post({ type: 'log', level, obj: { ...bindings }, msg: obj });
    else post({ type: 'log', level, obj: { ...bindings, ...obj }, msg: msg ?? '' });
  };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), child: (b: Record<string, unknown>) => forwardingLogger({ ...bindings, ...b }) } as unknown as Logger;
}

// Sessions before filing (see DELIVERY_NICE): on Linux setpriority on the calling thread's own id sets that
// thread's nice value only.
try {
  setPriority(DELIVERY_NICE);
} catch (err) {
  post({ type: 'log', level: 'warn', obj: { thread: 'delivery', err: (err as Error).message }, msg: 'could not lower the delivery thread\'s priority' });
}

const store = new SqliteStore({
  stateDir: data.stateDir, maxMessageBytes: data.maxMessageBytes, logger: forwardingLogger({ thread: 'delivery' }),
  forward: { event: (event) => post({ type: 'event', event }) },
});
const flushes = new Int32Array(data.ftsFlush);

port.on('message', (m: ToDeliveryThread) => {
  if (m.type === 'deliver') {
    const message = Buffer.from(m.message.buffer, m.message.byteOffset, m.message.byteLength);
    store.deliver(m.account, message, m.options).then(
      (result) => post({ type: 'delivered', id: m.id, result }),
      (err: unknown) => post({ type: 'failed', id: m.id, message: (err as Error)?.message ?? String(err), code: (err as { code?: unknown })?.code as string | undefined }),
    );
  } else if (m.type === 'flush-fts') {
    try {
      store.flushFtsQueue();
    } finally {
      // Done even when indexing failed (logged by the store): the search must not wait for a retry.
      Atomics.store(flushes, 1, Math.max(Atomics.load(flushes, 1), m.seq));
      Atomics.notify(flushes, 1);
    }
  } else if (m.type === 'close') {
    // Indexed now, before anything asynchronous: a flush asked for after this finds nothing left to wait for.
    store.flushFtsQueue();
    store.close().then(() => post({ type: 'closed' }), (err: unknown) => post({ type: 'closed', message: String(err) }));
  }
});

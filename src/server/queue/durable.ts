// Atomic, durable file writes: write a temp file in the same folder, fsync it, rename it into place, fsync the
// folder. After a crash a reader sees the old file or the new one, never a partial one.
// Page-cache operations (write, close) run synchronously on the main thread: they take microseconds, and each
// would otherwise cost a thread-pool round trip (futex, epoll, a promise). What may wait for the disk goes to
// libuv's pool, through the callback API (cheaper than FileHandle): fsyncs, the unlink of a synced file (see
// unlinkAsync), and creating or renaming a file — both need an ext4 journal handle, which waits while another
// fsync commits the journal (strace under 10 sessions: ~1.3 ms per create, the event loop stalled meanwhile).
// The spool's commit rename is the exception when no other accept is in flight (spool.ts, commitEntryFile).
import { closeSync, fdatasync, fsync, open, openSync, rename, unlink, unlinkSync, write, writevSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomHex6 } from './random-hex.ts';

/** Above this many bytes a write goes to the thread pool, so a large memcpy does not stall every session. */
export const SYNC_IO_MAX = 1024 * 1024;

/** fdatasync on libuv's pool: data and size of a new file (all a reader needs), without the timestamps. */
export function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/** Creates a new file (O_EXCL) on libuv's pool. */
export function createAsync(path: string, mode = 0o600): Promise<number> {
  return new Promise((resolve, reject) => open(path, 'wx', mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** rename on libuv's pool. */
export function renameAsync(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => rename(from, to, (err) => (err ? reject(err) : resolve())));
}

/** fsync on libuv's pool (folders: their entries are metadata, which fdatasync may skip). */
export function fsyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * unlink on libuv's pool; a missing file is not an error. The exception to "page-cache operations run
 * synchronously": removing a file whose blocks reached the disk frees them, about 175 µs on this machine (more
 * while fsyncs are committing), against about 10 µs of main-thread time for the pool round trip.
 */
export function unlinkAsync(path: string): Promise<void> {
  return new Promise((resolve, reject) => unlink(path, (err) => (err && err.code !== 'ENOENT' ? reject(err) : resolve())));
}

function writeAsync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => write(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/**
 * Writes `chunks` at `position` (looping over short writes): synchronously when small, on the thread pool when
 * larger than SYNC_IO_MAX.
 */
export async function writeChunks(fd: number, chunks: readonly Uint8Array[], position: number): Promise<void> {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  if (total <= SYNC_IO_MAX) {
    writeChunksSync(fd, chunks, position);
    return;
  }
  for (const c of chunks) {
    let done = 0;
    while (done < c.length) done += await writeAsync(fd, c, done, c.length - done, position + done);
    position += c.length;
  }
}

/** writev at `position`, looping over short writes. */
export function writeChunksSync(fd: number, chunks: readonly Uint8Array[], position: number): void {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  let done = writevSync(fd, chunks as Uint8Array[], position);
  if (done < total) {
    const rest = Buffer.concat(chunks as Uint8Array[]);
    while (done < total) done += writevSync(fd, [rest.subarray(done)], position + done);
  }
}

/** fsync a folder once (start-up, tools); the hot path uses FolderSync. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, 'r');
  try {
    await fsyncAsync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Name of a temp file next to `path`; dot-prefixed so folder listings can ignore it. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.tmp-${basename(path)}-${randomHex6()}`);
}

function unlinkQuiet(path: string): void {
  try { unlinkSync(path); } catch { /* already gone */ }
}

/**
 * Group commit for one folder, on a folder fd kept open: callers that ask while an fsync is running share the
 * next one, which starts after it (so it covers every rename they made before asking). Under concurrent accepts
 * this turns N folder fsyncs into about two, instead of N queued on the thread pool.
 */
export class FolderSync {
  readonly dir: string;
  private fd: number | null = null;
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;

  constructor(dir: string) {
    this.dir = dir;
  }

  sync(): Promise<void> {
    if (!this.running) return this.start();
    this.next ??= this.running.catch(() => {}).then(() => {
      this.next = null;
      return this.start();
    });
    return this.next;
  }

  /**
   * Closes the folder fd once no fsync is in flight (closing under a running fsync could let the fd number be
   * reused by another file). A later sync() opens it again.
   */
  async close(): Promise<void> {
    while (this.running || this.next) await (this.next ?? this.running)!.catch(() => {});
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      closeSync(fd);
    }
  }

  private start(): Promise<void> {
    let run: Promise<void>;
    try {
      this.fd ??= openSync(this.dir, 'r');
      run = fsyncAsync(this.fd);
    } catch (err) {
      run = Promise.reject(err);
    }
    run = run.finally(() => {
      if (this.running === run) this.running = null;
    });
    this.running = run;
    return run;
  }
}

/**
 * Replaces `path` with `data` atomically and durably: temp file written and fdatasynced, renamed into place, then
 * the folder fsynced through `folder` (shared with concurrent writers).
 */
export async function writeFileDurable(path: string, data: string | Uint8Array, folder: FolderSync): Promise<void> {
  const tmp = tempPathFor(path);
  const fd = await createAsync(tmp);
  try {
    try {
      await writeChunks(fd, [typeof data === 'string' ? Buffer.from(data) : data], 0);
      await fdatasyncAsync(fd);
    } finally {
      closeSync(fd);
    }
    await renameAsync(tmp, path);
  } catch (err) {
    unlinkQuiet(tmp);
    throw err;
  }
  await folder.sync();
}

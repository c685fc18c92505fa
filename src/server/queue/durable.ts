// Atomic, durable file writes: write a temp file in the same folder, fsync it, rename it into place, fsync the
// folder. After a crash a reader sees the old file or the new one, never a partial one.
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/** fsync a folder so that renames and unlinks inside it survive a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * fsyncDir for the hot path: resolves once the fsync is done and closes the folder behind it (one thread-pool
 * round trip less before a `250`; a failed close of a read-only folder handle loses nothing).
 */
async function fsyncDirQuick(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    fh.close().catch(() => {});
  }
}

/** Name of a temp file next to `path`; dot-prefixed so folder listings can ignore it. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.tmp-${basename(path)}-${randomBytes(6).toString('hex')}`);
}

/**
 * Group commit for one folder: callers that ask while an fsync is running share the next one, which starts after
 * it (so it covers every rename they made before asking). Under concurrent accepts this turns N folder fsyncs
 * into about two, instead of N queued on the thread pool.
 */
export class FolderSync {
  readonly dir: string;
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

  private start(): Promise<void> {
    const run: Promise<void> = fsyncDirQuick(this.dir).finally(() => {
      if (this.running === run) this.running = null;
    });
    this.running = run;
    return run;
  }
}

/** Writes `data` to a new temp file next to `path` and fsyncs it; returns the temp path (not yet renamed). */
export async function writeTempDurable(path: string, data: string | Uint8Array): Promise<string> {
  const tmp = tempPathFor(path);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  return tmp;
}

/** Replaces `path` with `data` atomically and durably; `syncFolder` defaults to a plain fsync of its folder. */
export async function writeFileDurable(path: string, data: string | Uint8Array, syncFolder?: () => Promise<void>): Promise<void> {
  const tmp = await writeTempDurable(path, data);
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await (syncFolder ? syncFolder() : fsyncDir(dirname(path)));
}

/** Removes a file if present, then fsyncs its folder. */
export async function unlinkDurable(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fsyncDir(dirname(path));
}

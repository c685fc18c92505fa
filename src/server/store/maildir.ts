// Message files: written once to tmp/, fsynced, renamed into cur/, the folder fsynced — only then may the index
// row commit. Paths are built from validated addresses and encoded folder names only (see names.ts).
import { closeSync, constants, fdatasync, fsync, open, openSync, promises as fsp, rmSync, write, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { hostname } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { splitAddress } from './names.ts';

// What may wait for the disk runs on libuv's pool: fsyncs, and creating and renaming a file (both need an ext4
// journal handle, which waits while the journal commits another fsync: up to a millisecond of a stalled event
// loop when run synchronously). Writing into the page cache and closing run synchronously: microseconds each,
// where a pool round trip costs more main-thread time than the call. Writes above SYNC_WRITE_LIMIT go to the
// pool so a large message never stalls the event loop.
const fsyncAsync = promisify(fsync);
const fdatasyncAsync = promisify(fdatasync);
const writeAsync = promisify(write);
const openAsync = promisify(open);
const SYNC_WRITE_LIMIT = 1024 * 1024;

/** Writes all of `bytes` at the file's current position. */
async function writeAll(fd: number, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    done += bytes.length - done <= SYNC_WRITE_LIMIT
      ? writeSync(fd, bytes, done, bytes.length - done)
      : (await writeAsync(fd, bytes, done, bytes.length - done, null)).bytesWritten;
  }
}

/** fsync (or fdatasync) of a file or folder by path, on libuv's pool. */
export async function syncPath(target: string, dataOnly = false): Promise<void> {
  const fd = openSync(target, constants.O_RDONLY);
  try {
    await (dataOnly ? fdatasyncAsync(fd) : fsyncAsync(fd));
  } finally {
    closeSync(fd);
  }
}

const HOST = hostname().replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 64) || 'postern';
let counter = 0;

export function accountDir(mailRoot: string, account: string): string {
  const { local, domain } = splitAddress(account);
  return path.join(mailRoot, domain, local);
}

export function folderDir(mailRoot: string, account: string, folder: string): string {
  return path.join(accountDir(mailRoot, account), folder);
}

/**
 * A unique Maildir file name: time, pid, counter, random, host, size, the delivery key of a delivered message
 * (`,D=<hex>`: start-up reconciliation of a file whose row never committed restores its deliveries row, so a
 * pipeline re-run does not store it a second time), and the `:2,` flag letters.
 */
export function newFileName(size: number, info: string, deliveryKey?: string): string {
  counter = (counter + 1) % 1e9;
  const d = deliveryKey ? `,D=${deliveryKey}` : '';
  return `${Date.now()}.P${process.pid}Q${counter}R${randomBytes(6).toString('hex')}.${HOST},S=${size}${d}:2,${info}`;
}

const DELIVERY_KEY_IN_NAME = /,D=([0-9a-f]{32})(?:,|:2,|$)/;

/** The delivery key newFileName put in a file name, or null. */
export function deliveryKeyFromFileName(name: string): string | null {
  const colon = name.indexOf(':2,');
  return DELIVERY_KEY_IN_NAME.exec(colon >= 0 ? name.slice(0, colon + 3) : name)?.[1] ?? null;
}

export function fsyncDir(dir: string): Promise<void> {
  return syncPath(dir);
}

export async function ensureMaildir(dir: string): Promise<void> {
  for (const sub of ['cur', 'new', 'tmp']) await fsp.mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
}

/**
 * Writes bytes into `<dir>/cur/<name>` (file fsynced, renamed) and returns the name. With `syncDir` false the
 * caller must fsync `<dir>/cur` itself before relying on the name (group commit does it once per batch).
 */
export async function writeMessageFile(dir: string, bytes: Buffer, info: string, syncDir = true, deliveryKey?: string): Promise<string> {
  const name = newFileName(bytes.length, info, deliveryKey);
  const tmp = path.join(dir, 'tmp', name);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
  let fd;
  try {
    fd = await openAsync(tmp, flags, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    await ensureMaildir(dir); // first message in this folder
    fd = await openAsync(tmp, flags, 0o600);
  }
  try {
    await writeAll(fd, bytes);
    await fsyncAsync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  await fsp.rename(tmp, path.join(dir, 'cur', name));
  if (syncDir) await fsyncDir(path.join(dir, 'cur'));
  return name;
}

/** Hard-links an immutable message file into another folder (COPY/MOVE) durably; returns the new name. */
export async function linkMessageFile(fromDir: string, file: string, toDir: string, size: number, info: string): Promise<string> {
  const name = newFileName(size, info);
  const target = path.join(toDir, 'cur', name);
  try {
    await fsp.link(path.join(fromDir, 'cur', file), target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    await ensureMaildir(toDir);
    await fsp.link(path.join(fromDir, 'cur', file), target);
  }
  return name;
}

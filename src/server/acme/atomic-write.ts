// Replaces files so a reader (the TLS source, the HTTP-01 responder, the doctor) sees the old content or the new,
// never a half-written file: write a temp file in the same folder, fsync it, rename it over, fsync the folder.
import { open, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/** Writes `data` to a fsynced temp file next to `file`; returns its path (rename it with commitFiles). */
async function writeTemp(file: string, data: string | Buffer, mode: number): Promise<string> {
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await fh.close().catch(() => undefined);
  }
  return tmp;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes several files, then renames them into place in the given order: every temp file is durable before the
 * first rename, so a failure while writing leaves all targets untouched.
 */
export async function writeFilesAtomically(files: { path: string; data: string | Buffer; mode: number }[]): Promise<void> {
  const temps: string[] = [];
  try {
    for (const f of files) temps.push(await writeTemp(f.path, f.data, f.mode));
  } catch (err) {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
    throw err;
  }
  for (const [i, f] of files.entries()) await rename(temps[i]!, f.path);
  for (const dir of new Set(files.map((f) => dirname(f.path)))) await syncDir(dir);
}

export function writeFileAtomically(path: string, data: string | Buffer, mode: number): Promise<void> {
  return writeFilesAtomically([{ path, data, mode }]);
}

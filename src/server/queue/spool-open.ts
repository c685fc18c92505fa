// What the server does with its spool folder at start, before any listener: remove what a crash left
// half-written, set aside entry files that cannot be read (reported, never dropped), and convert entries of the
// previous layout (`<id>.eml` raw message + `<id>.json` state) into entry files, durably.
import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeChunksSync, tempPathFor } from './durable.ts';
import { CorruptEntryError, encodePreamble, readPreamble } from './spool-format.ts';
import { isSpoolId } from './spool-id.ts';
import type { StoredEntry } from './spool.ts';

/** Suffix given to files set aside: no listing matches it, and an operator can inspect or repair them. */
export const CORRUPT_SUFFIX = '.corrupt';

function unlinkQuiet(path: string): void {
  try { unlinkSync(path); } catch { /* already gone */ }
}

function setAside(dir: string, names: Set<string>, id: string, why: string, warn: (m: string) => void): void {
  const moved: string[] = [];
  for (const ext of ['.msg', '.json', '.eml']) {
    const name = `${id}${ext}`;
    if (!names.has(name)) continue;
    try {
      renameSync(join(dir, name), join(dir, name + CORRUPT_SUFFIX));
      moved.push(name + CORRUPT_SUFFIX);
    } catch (err) {
      warn(`spool: cannot set ${name} aside: ${(err as Error).message}`);
    }
    names.delete(name);
  }
  warn(`spool: entry ${id} cannot be read (${why}); kept aside as ${moved.join(', ')}`);
}

/** Writes `<id>.msg` from a previous-layout pair; the state file stays as the entry's side file. */
function convertLegacy(dir: string, id: string): void {
  const state = JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8')) as StoredEntry;
  const message = readFileSync(join(dir, `${id}.eml`));
  if (state?.id !== id || !Array.isArray(state.recipients)) throw new CorruptEntryError('state file is not a spool entry');
  // The preamble must agree with the bytes, whatever the old state file said.
  const entry: StoredEntry = { ...state, size: message.length };
  const path = join(dir, `${id}.msg`);
  const tmp = tempPathFor(path);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeChunksSync(fd, [encodePreamble(entry), message], 0);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkQuiet(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/**
 * Cleans up and upgrades the spool folder. Synchronous: it runs once at start-up, and the composition root hands
 * the spool to services synchronously.
 */
export function prepareSpoolDir(dir: string, warn: (message: string) => void): void {
  const names = new Set(readdirSync(dir));
  const legacyDone: string[] = [];
  for (const name of [...names].sort()) {
    if (!names.has(name)) continue; // set aside with its entry
    const dot = name.indexOf('.');
    if (dot < 0) continue;
    const id = name.slice(0, dot);
    const ext = name.slice(dot);
    if (name.startsWith('.tmp-')) {
      // A write that never finished: its sender was never told `250`, or its state change never happened.
      unlinkQuiet(join(dir, name));
      names.delete(name);
    } else if (!isSpoolId(id)) {
      continue;
    } else if (ext === '.eml') {
      if (names.has(`${id}.msg`)) {
        legacyDone.push(name); // converted before a crash; the entry file is durable
      } else if (names.has(`${id}.json`)) {
        try {
          convertLegacy(dir, id);
          names.add(`${id}.msg`);
          legacyDone.push(name);
        } catch (err) {
          setAside(dir, names, id, `previous-layout entry: ${(err as Error).message}`, warn);
        }
      } else {
        // Previous layout, state file never renamed into place: never acknowledged.
        unlinkQuiet(join(dir, name));
        names.delete(name);
      }
    }
  }
  if (legacyDone.length) {
    // The new entry files must be durable before the old message files go.
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
    for (const name of legacyDone) {
      unlinkQuiet(join(dir, name));
      names.delete(name);
    }
    warn(`spool: converted ${legacyDone.length} entr${legacyDone.length === 1 ? 'y' : 'ies'} from the previous spool layout`);
  }
  for (const name of [...names]) {
    if (!names.has(name)) continue;
    const id = name.slice(0, name.indexOf('.'));
    if (!isSpoolId(id)) continue;
    if (name === `${id}.json` && !names.has(`${id}.msg`)) {
      // The entry file is the commit marker and is removed first: this is an interrupted removal.
      warn(`spool: removing ${name}: state without an entry file`);
      unlinkQuiet(join(dir, name));
      names.delete(name);
    } else if (name === `${id}.msg`) {
      let fd: number | null = null;
      try {
        fd = openSync(join(dir, name), 'r');
        readPreamble(fd, id);
      } catch (err) {
        setAside(dir, names, id, (err as Error).message, warn);
      } finally {
        if (fd !== null) closeSync(fd);
      }
    }
  }
}

// Start-up reconciliation of the Maildir files with the index: interrupted deletions are finished, files in
// new/ move to cur/, files without rows are indexed (a crash between the file's rename and the row's commit, or
// mail put there by another program), rows without files are reported — never dropped — and unknown folders
// that decode to a mailbox name become mailboxes. tmp/ holds only writes that were never acknowledged.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { bitsFromMaildirInfo } from './flags.ts';
import { accountDir } from './maildir.ts';
import { mailboxNameFromFolder } from './names.ts';
import type { SqliteStore } from './sqlite-store.ts';
import type { ReconcileReport } from './types.ts';

const MAX_FILE_BYTES = 1024 * 1024 * 1024; // never read a giant stray file into memory
const READ_PARALLEL = 8;
/** Files per index transaction: large enough to amortise the commit, small enough to bound memory. */
const BATCH_FILES = 200;
const BATCH_BYTES = 16 * 1024 * 1024;

async function listDir(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function reconcile(store: SqliteStore, logger: Logger): Promise<ReconcileReport> {
  const report: ReconcileReport = { indexed: [], missing: [] };
  const mailRoot = store.stateMailRoot;
  const stateDir = path.dirname(mailRoot);
  await store.processPendingUnlinks();
  const accounts = (store.db.prepare('SELECT address FROM accounts').all() as Array<{ address: string }>).map((r) => r.address);
  for (const account of accounts) {
    const base = accountDir(mailRoot, account);
    // Folders on disk that no mailbox row names: adopt them when their name decodes.
    const known = new Set((store.db.prepare('SELECT folder FROM mailboxes WHERE account = ?').all(account) as Array<{ folder: string }>).map((r) => r.folder));
    for (const entry of await listDir(base)) {
      if (!entry.startsWith('.') || known.has(entry)) continue;
      const st = await fsp.stat(path.join(base, entry)).catch(() => null);
      if (!st?.isDirectory()) continue;
      const name = mailboxNameFromFolder(entry);
      if (!name) { logger.warn({ account, folder: entry }, 'folder on disk is not a mailbox name Postern writes; left alone'); continue; }
      try {
        store.adoptFolder(account, name);
        logger.warn({ account, mailbox: name }, 'mailbox folder found on disk without an index row: mailbox created');
      } catch (err) {
        logger.error({ account, folder: entry, err: (err as Error).message }, 'could not adopt mailbox folder');
      }
    }
    const mailboxes = store.db.prepare('SELECT id, name, folder FROM mailboxes WHERE account = ?').all(account) as Array<{ id: number; name: string; folder: string }>;
    for (const mb of mailboxes) {
      const dir = path.join(base, mb.folder);
      for (const t of await listDir(path.join(dir, 'tmp'))) {
        await fsp.rm(path.join(dir, 'tmp', t), { force: true, recursive: true });
        logger.info({ account, mailbox: mb.name, file: t }, 'removed unacknowledged partial write from tmp/');
      }
      for (const n of await listDir(path.join(dir, 'new'))) {
        const target = n.includes(':2,') ? n : `${n}:2,`;
        await fsp.rename(path.join(dir, 'new', n), path.join(dir, 'cur', target)).catch(async (err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
          await fsp.mkdir(path.join(dir, 'cur'), { recursive: true });
          await fsp.rename(path.join(dir, 'new', n), path.join(dir, 'cur', target));
        });
      }
      const onDisk = new Set(await listDir(path.join(dir, 'cur')));
      const rows = store.db.prepare('SELECT uid, file FROM messages WHERE mailbox_id = ?').all(mb.id) as Array<{ uid: number; file: string }>;
      for (const r of rows) {
        if (onDisk.delete(r.file)) continue;
        const rel = path.relative(stateDir, path.join(dir, 'cur', r.file));
        report.missing.push({ account, mailbox: mb.name, uid: r.uid, file: rel });
        logger.error({ account, mailbox: mb.name, uid: r.uid, file: rel }, 'message file missing for an index row');
      }
      let batch: Array<{ file: string; raw: Buffer; bits: number; date: number }> = [];
      let batchBytes = 0;
      const flush = () => {
        if (!batch.length) return;
        store.adoptFiles(mb.id, batch);
        for (const b of batch) {
          const rel = path.relative(stateDir, path.join(dir, 'cur', b.file));
          report.indexed.push(rel);
          logger.warn({ account, mailbox: mb.name, file: rel }, 'message file without an index row: indexed');
        }
        batch = [];
        batchBytes = 0;
      };
      const pending = [...onDisk].sort();
      // Read a few files at a time (the disk works while the index inserts), in name order so UIDs follow it.
      for (let i = 0; i < pending.length; i += READ_PARALLEL) {
        const group = await Promise.all(pending.slice(i, i + READ_PARALLEL).map(async (file) => {
          const full = path.join(dir, 'cur', file);
          const st = await fsp.stat(full);
          if (!st.isFile()) return null;
          if (st.size > MAX_FILE_BYTES || st.size === 0) {
            logger.error({ file: path.relative(stateDir, full), size: st.size }, 'message file without an index row is empty or too large; left alone');
            return null;
          }
          return { file, raw: await fsp.readFile(full), bits: bitsFromMaildirInfo(file), date: st.mtimeMs };
        }));
        for (const g of group) {
          if (!g) continue;
          batch.push(g);
          batchBytes += g.raw.length;
          if (batch.length >= BATCH_FILES || batchBytes >= BATCH_BYTES) flush();
        }
      }
      flush();
    }
  }
  return report;
}

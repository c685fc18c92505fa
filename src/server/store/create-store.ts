// What the runtime calls: opens (or creates) <stateDir>/store/index.sqlite and <stateDir>/mail, loads accounts and
// aliases from the config, and reconciles files with the index before any session can see the store. Local
// delivery then runs on a thread of its own (delivery-thread.ts).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ServerConfig } from '../../plan/server-config.ts';
import { reconcile } from './reconcile.ts';
import { SqliteStore } from './sqlite-store.ts';
import type { MailStore } from './types.ts';

export async function createStore(config: Pick<ServerConfig, 'stateDir' | 'users' | 'aliases' | 'limits'>, logger: Logger): Promise<MailStore> {
  const stateDir = path.resolve(config.stateDir);
  mkdirSync(path.join(stateDir, 'store'), { recursive: true, mode: 0o700 });
  mkdirSync(path.join(stateDir, 'mail'), { recursive: true, mode: 0o700 });
  const log = logger.child({ module: 'store' });
  const store = new SqliteStore({ stateDir, logger: log, maxMessageBytes: config.limits.maxMessageBytes });
  try {
    store.syncAccounts(config.users, config.aliases);
    store.reconcileReport = await reconcile(store, log);
    const reindexed = await store.indexMissingFts();
    if (reindexed) log.warn({ messages: reindexed }, 'body search index rebuilt for messages a crash left unindexed');
    store.deliverOnThread();
  } catch (err) {
    await store.close();
    throw err;
  }
  const r = store.reconcileReport;
  if (r.indexed.length || r.missing.length) log.warn({ indexed: r.indexed.length, missing: r.missing.length }, 'store reconciled with files on disk');
  return store;
}

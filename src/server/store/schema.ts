// The index schema. One database per server (<stateDir>/store/index.sqlite), WAL mode, synchronous=FULL: a
// committed row (an APPEND that got OK, a delivery that got 250) survives power loss, not just a crash.
import type { DatabaseSync } from 'node:sqlite';
import { envelopeWireText } from './imap-envelope.ts';

const SCHEMA_VERSION = 6;

const DDL = `
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts(
  address TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  quota_bytes INTEGER NOT NULL,
  used_bytes INTEGER NOT NULL DEFAULT 0,
  message_count INTEGER NOT NULL DEFAULT 0,
  active INTEGER NOT NULL DEFAULT 1,
  initialized INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aliases(source TEXT PRIMARY KEY, targets TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mailboxes(
  id INTEGER PRIMARY KEY,
  account TEXT NOT NULL,
  name TEXT NOT NULL,
  folder TEXT NOT NULL,
  special_use TEXT,
  uid_validity INTEGER NOT NULL,
  uid_next INTEGER NOT NULL DEFAULT 1,
  highest_modseq INTEGER NOT NULL DEFAULT 1,
  -- Kept by the triggers below so SELECT and STATUS never scan the messages.
  n_messages INTEGER NOT NULL DEFAULT 0,
  n_unseen INTEGER NOT NULL DEFAULT 0,
  n_deleted INTEGER NOT NULL DEFAULT 0,
  n_recent INTEGER NOT NULL DEFAULT 0,
  total_size INTEGER NOT NULL DEFAULT 0,
  UNIQUE(account, name)
);
CREATE TABLE IF NOT EXISTS subscriptions(account TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY(account, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contents(
  id INTEGER PRIMARY KEY,
  size INTEGER NOT NULL,
  sent_day TEXT,
  header BLOB NOT NULL,
  envelope TEXT NOT NULL,
  body_structure TEXT NOT NULL,
  -- ENVELOPE as IMAP text for any client, literals included where needed (see imap-envelope.ts); NULL only
  -- while a version-3 index migrates.
  envelope_imap TEXT
);
-- Lower-cased text; trigram index with detail=none (8x smaller than detail=full): GLOB '*needle*' uses it.
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(headers, body, tokenize = 'trigram', detail = none);
CREATE TABLE IF NOT EXISTS messages(
  id INTEGER PRIMARY KEY,
  mailbox_id INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  content_id INTEGER NOT NULL,
  file TEXT NOT NULL,
  flags INTEGER NOT NULL,
  keywords TEXT NOT NULL,
  modseq INTEGER NOT NULL,
  size INTEGER NOT NULL,
  internal_date INTEGER NOT NULL,
  internal_zone INTEGER NOT NULL,
  recent INTEGER NOT NULL DEFAULT 1,
  UNIQUE(mailbox_id, uid)
);
CREATE INDEX IF NOT EXISTS messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX IF NOT EXISTS messages_content ON messages(content_id);
CREATE INDEX IF NOT EXISTS messages_unseen ON messages(mailbox_id, uid) WHERE (flags & 1) = 0;
CREATE INDEX IF NOT EXISTS messages_recent ON messages(mailbox_id, uid) WHERE recent = 1;
CREATE INDEX IF NOT EXISTS messages_keywords ON messages(mailbox_id, keywords) WHERE keywords != '';
CREATE TRIGGER IF NOT EXISTS messages_counts_insert AFTER INSERT ON messages BEGIN
  UPDATE mailboxes SET n_messages = n_messages + 1, n_unseen = n_unseen + ((NEW.flags & 1) = 0),
    n_deleted = n_deleted + ((NEW.flags & 8) != 0), n_recent = n_recent + NEW.recent, total_size = total_size + NEW.size
  WHERE id = NEW.mailbox_id;
END;
CREATE TRIGGER IF NOT EXISTS messages_counts_delete AFTER DELETE ON messages BEGIN
  UPDATE mailboxes SET n_messages = n_messages - 1, n_unseen = n_unseen - ((OLD.flags & 1) = 0),
    n_deleted = n_deleted - ((OLD.flags & 8) != 0), n_recent = n_recent - OLD.recent, total_size = total_size - OLD.size
  WHERE id = OLD.mailbox_id;
END;
-- recent only ever goes from 1 to 0, in claimRecent(), which adjusts n_recent itself in one statement.
CREATE TRIGGER IF NOT EXISTS messages_counts_update AFTER UPDATE OF flags ON messages BEGIN
  UPDATE mailboxes SET n_unseen = n_unseen - ((OLD.flags & 1) = 0) + ((NEW.flags & 1) = 0),
    n_deleted = n_deleted - ((OLD.flags & 8) != 0) + ((NEW.flags & 8) != 0)
  WHERE id = NEW.mailbox_id;
END;
CREATE TABLE IF NOT EXISTS vanished(mailbox_id INTEGER NOT NULL, uid INTEGER NOT NULL, modseq INTEGER NOT NULL, PRIMARY KEY(mailbox_id, uid)) WITHOUT ROWID;
-- Oldest expunge records are pruned per mailbox (sqlite-store.ts pruneVanished); this finds them.
CREATE INDEX IF NOT EXISTS vanished_modseq ON vanished(mailbox_id, modseq);
-- Files (or whole folders) whose index rows are gone: removed after the commit, and again at start after a crash,
-- so an expunged message can never come back as an "orphan file".
CREATE TABLE IF NOT EXISTS pending_unlink(path TEXT PRIMARY KEY, recursive INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
`;

// Idempotent delivery (version 3): one row per delivered (account, delivery id), written in the transaction that
// inserts the message row, so a pipeline re-run after a crash finds it and stores nothing twice. delivery_id is
// the hex SHA-256 prefix of the caller's id (it also names the message file, see maildir.ts); mailbox is the name
// at delivery time. Rows older than the queue lifetime are pruned (SqliteStore.pruneDeliveries).
const DELIVERIES_DDL = `
CREATE TABLE IF NOT EXISTS deliveries(
  account TEXT NOT NULL,
  delivery_id TEXT NOT NULL,
  mailbox TEXT NOT NULL,
  uid INTEGER NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY(account, delivery_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_created ON deliveries(created);
`;

/**
 * Steps from an older schema version to the next, each run in one transaction with the version bump. A state
 * dir written by an older Postern opens after its missing steps ran; a newer one is refused.
 */
// FETCH ENVELOPE reads this narrow covering index instead of the wide contents rows (header blob, JSON): about
// half the SQLite time of a 10,000-message FETCH. Not in DDL: before version 4 the column does not exist yet.
const ENVELOPE_INDEX_DDL = 'CREATE INDEX IF NOT EXISTS contents_envelope_imap ON contents(id, envelope_imap)';

const MIGRATIONS: Record<number, (db: DatabaseSync) => void> = {
  2: (db) => db.exec(DELIVERIES_DDL), // 2 → 3: the deliveries table; existing mail needs no change
  // 3 → 4: ENVELOPE cached as IMAP text. Older rows keep NULL and FETCH builds theirs from the JSON envelope.
  3: (db) => {
    const cols = db.prepare("SELECT name FROM pragma_table_info('contents')").all() as Array<{ name: string }>;
    if (!cols.some((c) => c.name === 'envelope_imap')) db.exec('ALTER TABLE contents ADD COLUMN envelope_imap TEXT');
  },
  4: (db) => db.exec(ENVELOPE_INDEX_DDL), // 4 → 5: the covering index FETCH ENVELOPE reads
  5: fillEnvelopeText, // 5 → 6: every row gets its text, with literals where needed (before: NULL for those)
};

const FILL_BATCH = 500;

/** Envelope text for the rows that have none (8-bit headers, or indexed before version 4), from the JSON. */
function fillEnvelopeText(db: DatabaseSync): void {
  const next = db.prepare('SELECT id, envelope FROM contents WHERE envelope_imap IS NULL AND id > ? ORDER BY id LIMIT ?');
  const update = db.prepare('UPDATE contents SET envelope_imap = ? WHERE id = ?');
  for (let after = 0; ;) {
    const rows = next.all(after, FILL_BATCH) as Array<{ id: number; envelope: string }>;
    for (const r of rows) update.run(envelopeWireText(JSON.parse(r.envelope)), r.id);
    if (rows.length < FILL_BATCH) return;
    after = rows[rows.length - 1]!.id;
  }
}

export function openSchema(db: DatabaseSync): void {
  // temp_store: statement journals (the group commit's savepoints) stay in memory instead of a temporary file per
  // transaction, which costs a file creation each time.
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF; PRAGMA busy_timeout = 5000; PRAGMA temp_store = MEMORY;');
  db.exec(DDL);
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
  if (!row) {
    db.exec(DELIVERIES_DDL);
    db.exec(ENVELOPE_INDEX_DDL);
    db.prepare("INSERT INTO meta(key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION));
    return;
  }
  let version = Number(row.value);
  if (!Number.isInteger(version) || version > SCHEMA_VERSION || (version < SCHEMA_VERSION && !MIGRATIONS[version])) {
    throw new Error(`store index schema version ${row.value}, this Postern reads ${SCHEMA_VERSION} (and migrates from ${Object.keys(MIGRATIONS).join(', ')})`);
  }
  while (version < SCHEMA_VERSION) {
    const step = MIGRATIONS[version]!;
    db.exec('BEGIN IMMEDIATE');
    try {
      step(db);
      db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(String(version + 1));
      db.exec('COMMIT');
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
    version++;
  }
}

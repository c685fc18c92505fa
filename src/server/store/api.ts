// What the SMTP side (delivery, submission auth) needs from the mailbox store. The store module implements it;
// protocol folders call it and never touch files or the database themselves.

export interface AccountInfo {
  /** Canonical account address, lower-case A-label domain. */
  address: string;
  name: string;
  /** 0 = unlimited. */
  quotaBytes: number;
}

export type RecipientResolution =
  /** Canonical account addresses the mail goes to (aliases, plus-addressing, catch-all expanded). */
  | { kind: 'local'; accounts: string[] }
  | { kind: 'unknown' };

export type DeliveryResult =
  | { ok: true; mailbox: string; uid: number }
  /** Permanent for this recipient at this time; SMTP answers 452/552 per RFC. */
  | { ok: false; reason: 'overquota'; message: string };

export interface DeliveryOptions {
  /** Special-use mailbox to file into: INBOX, Junk, or Sent (copy of submitted mail). */
  mailbox: 'INBOX' | 'Junk' | 'Sent';
  flags?: string[];
  internalDate?: Date;
  /**
   * Unique per (spool entry, account). When a message with this id was already delivered to this account,
   * deliver() stores nothing and returns the earlier result ({ ok: true, mailbox, uid }), even if that message
   * was expunged since. Remembered for 7 days (longer than a spool entry lives).
   */
  deliveryId?: string;
}

export interface DeliveryStore {
  resolveRecipient(address: string): RecipientResolution;
  /** Verifies a password against the argon2id hash; null when the account or password is wrong. */
  verifyPassword(address: string, password: string): Promise<AccountInfo | null>;
  /** The addresses an account may send as: its own and the aliases that point only at it. */
  sendableAddresses(account: string): string[];
  /**
   * Stores a complete RFC 5322 message durably (file fsynced, renamed, folder fsynced, index committed) before
   * resolving. Throws on internal errors (disk full, database busy): the caller answers 4xx and retries.
   */
  deliver(account: string, message: Buffer, options: DeliveryOptions): Promise<DeliveryResult>;
}

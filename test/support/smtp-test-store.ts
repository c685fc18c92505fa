// A file-backed DeliveryStore for the SMTP tests: accounts, aliases, plus-addressing and catch-all as the store
// contract describes, one file per delivered message. Delivery is durable and idempotent per deliveryId (the
// file name is derived from it and published with link(), which refuses to overwrite), so crash tests can
// count Message-IDs across restarts and see duplicates only if the pipeline really delivered twice.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { link, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { AccountInfo, DeliveryOptions, DeliveryResult, DeliveryStore, RecipientResolution } from '../../src/server/store/api.ts';

export interface TestUser { address: string; password: string; quotaBytes?: number }
export interface TestAlias { from: string; to: string[] }

export class FileTestStore implements DeliveryStore {
  readonly dir: string;
  readonly #users: Map<string, TestUser>;
  readonly #aliases: Map<string, string[]>;
  /** When set, deliver() throws this (simulates disk full / database busy). */
  failWith: Error | null = null;

  constructor(dir: string, users: TestUser[], aliases: TestAlias[] = []) {
    this.dir = dir;
    this.#users = new Map(users.map((u) => [u.address.toLowerCase(), u]));
    this.#aliases = new Map(aliases.map((a) => [a.from.toLowerCase(), a.to.map((t) => t.toLowerCase())]));
    mkdirSync(dir, { recursive: true });
  }

  #expand(address: string, depth: number, out: Set<string>): boolean {
    if (depth > 5) return false;
    if (this.#users.has(address)) { out.add(address); return true; }
    const targets = this.#aliases.get(address);
    if (!targets) return false;
    let any = false;
    for (const t of targets) any = this.#expand(t, depth + 1, out) || any;
    return any;
  }

  resolveRecipient(address: string): RecipientResolution {
    const a = address.toLowerCase();
    const at = a.lastIndexOf('@');
    const local = a.slice(0, at);
    const domain = a.slice(at + 1);
    const out = new Set<string>();
    const plus = local.indexOf('+');
    for (const c of plus > 0 ? [a, `${local.slice(0, plus)}@${domain}`] : [a]) {
      if (this.#expand(c, 0, out)) return { kind: 'local', accounts: [...out] };
    }
    for (const t of this.#aliases.get(`@${domain}`) ?? []) this.#expand(t, 1, out);
    return out.size ? { kind: 'local', accounts: [...out] } : { kind: 'unknown' };
  }

  async verifyPassword(address: string, password: string): Promise<AccountInfo | null> {
    const u = this.#users.get(address.toLowerCase());
    const a = Buffer.from(password);
    const b = Buffer.from(u?.password ?? randomBytes(16).toString('hex'));
    const same = a.length === b.length && timingSafeEqual(a, b);
    return u && same ? { address: u.address.toLowerCase(), name: '', quotaBytes: u.quotaBytes ?? 0 } : null;
  }

  sendableAddresses(account: string): string[] {
    const a = account.toLowerCase();
    const out = [a];
    for (const [from] of this.#aliases) {
      if (from.startsWith('@')) continue;
      const r = this.resolveRecipient(from);
      if (r.kind === 'local' && r.accounts.length === 1 && r.accounts[0] === a) out.push(from);
    }
    return out;
  }

  async deliver(account: string, message: Buffer, options: DeliveryOptions): Promise<DeliveryResult> {
    if (this.failWith) throw this.failWith;
    const u = this.#users.get(account);
    if (!u) throw new Error(`no such account ${account}`);
    const box = join(this.dir, account, options.mailbox);
    mkdirSync(box, { recursive: true });
    if (u.quotaBytes && this.#used(account) + message.length > u.quotaBytes) return { ok: false, reason: 'overquota', message: 'mailbox full' };
    const id = (options as DeliveryOptions & { deliveryId?: string }).deliveryId ?? randomBytes(16).toString('hex');
    const name = `${createHash('sha256').update(id).digest('hex').slice(0, 32)}.eml`;
    const tmp = join(box, `.tmp-${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, 'wx');
    try { await fh.writeFile(message); await fh.sync(); } finally { await fh.close(); }
    try {
      await link(tmp, join(box, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await unlink(tmp);
    }
    const dh = await open(box, 'r');
    try { await dh.sync(); } finally { await dh.close(); }
    return { ok: true, mailbox: options.mailbox, uid: this.messages(account, options.mailbox).length };
  }

  #used(account: string): number {
    let n = 0;
    for (const m of ['INBOX', 'Junk', 'Sent']) for (const b of this.messages(account, m)) n += b.length;
    return n;
  }

  /** Messages stored for an account in one mailbox. */
  messages(account: string, mailbox = 'INBOX'): Buffer[] {
    const box = join(this.dir, account.toLowerCase(), mailbox);
    if (!existsSync(box)) return [];
    return readdirSync(box).filter((f) => f.endsWith('.eml')).map((f) => readFileSync(join(box, f)));
  }
}

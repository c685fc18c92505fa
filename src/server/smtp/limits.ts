// Per-IP bookkeeping shared by all SMTP listeners: open connections, and back-off after failed AUTH attempts.
// Bounded: entries for idle addresses are dropped, and the tables never hold more than MAX_TRACKED_IPS.

const MAX_TRACKED_IPS = 100_000;

export interface AuthBackoffPolicy {
  /** Failures allowed before the back-off starts. */
  freeFailures: number;
  /** First block duration; doubles with every further failure. */
  baseMs: number;
  maxMs: number;
  /** Failures are forgotten after this much quiet time. */
  forgetMs: number;
}

export const DEFAULT_AUTH_BACKOFF: AuthBackoffPolicy = { freeFailures: 3, baseMs: 2000, maxMs: 15 * 60_000, forgetMs: 60 * 60_000 };

export class ConnectionCounter {
  readonly #open = new Map<string, number>();
  readonly #max: number;
  constructor(maxPerIp: number) { this.#max = maxPerIp; }
  /** Counts a new connection; false (and nothing counted) when the address already has the maximum open. */
  tryOpen(ip: string): boolean {
    const n = this.#open.get(ip) ?? 0;
    if (n >= this.#max || (n === 0 && this.#open.size >= MAX_TRACKED_IPS)) return false;
    this.#open.set(ip, n + 1);
    return true;
  }
  close(ip: string): void {
    const n = this.#open.get(ip) ?? 0;
    if (n <= 1) this.#open.delete(ip);
    else this.#open.set(ip, n - 1);
  }
  openFor(ip: string): number { return this.#open.get(ip) ?? 0; }
}

interface FailureState { failures: number; lastAt: number; blockedUntil: number }

export class AuthBackoff {
  readonly #state = new Map<string, FailureState>();
  readonly #policy: AuthBackoffPolicy;
  readonly #now: () => number;
  constructor(policy: AuthBackoffPolicy = DEFAULT_AUTH_BACKOFF, now: () => number = Date.now) {
    this.#policy = policy;
    this.#now = now;
  }
  /** Milliseconds the address must still wait before it may try AUTH again; 0 when it may. */
  blockedFor(ip: string): number {
    const s = this.#state.get(ip);
    if (!s) return 0;
    const now = this.#now();
    if (now - s.lastAt > this.#policy.forgetMs) { this.#state.delete(ip); return 0; }
    return Math.max(0, s.blockedUntil - now);
  }
  failed(ip: string): void {
    const now = this.#now();
    if (!this.#state.has(ip) && this.#state.size >= MAX_TRACKED_IPS) this.#evict(now);
    const s = this.#state.get(ip) ?? { failures: 0, lastAt: now, blockedUntil: 0 };
    s.failures++;
    s.lastAt = now;
    const over = s.failures - this.#policy.freeFailures;
    if (over > 0) s.blockedUntil = now + Math.min(this.#policy.maxMs, this.#policy.baseMs * 2 ** Math.min(over - 1, 30));
    this.#state.set(ip, s);
  }
  succeeded(ip: string): void { this.#state.delete(ip); }
  #evict(now: number): void {
    for (const [ip, s] of this.#state) if (now - s.lastAt > this.#policy.forgetMs || s.blockedUntil < now) this.#state.delete(ip);
    // Still full of active offenders: forget the oldest half rather than grow without bound.
    if (this.#state.size >= MAX_TRACKED_IPS) {
      let drop = this.#state.size / 2;
      for (const ip of this.#state.keys()) { if (drop-- <= 0) break; this.#state.delete(ip); }
    }
  }
}

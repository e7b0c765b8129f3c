/**
 * Per-process snapshot cache, at most `ttlMs` (≤ 1 s) old, in front of first_signal_snapshots.
 * Invalidated by NOTIFY hints for the job and dropped entirely on every listener (re)connect.
 * A generation counter per key stops a read that raced with an invalidation from storing the
 * older value it fetched.
 */
export interface CacheEntry<T> {
  value: T;
  at: number;
}

export class SnapshotCache<T> {
  private readonly entries = new Map<string, CacheEntry<T>>();
  private readonly gens = new Map<string, number>();
  private epoch = 0;
  private lastSweep = -Infinity;
  hits = 0;
  misses = 0;

  constructor(
    private readonly ttlMs = 1000,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (ttlMs > 1000) throw new RangeError('the signal cache holds entries for at most 1 s');
  }

  private static key(tenant: string, jobId: string): string {
    return `${tenant}/${jobId}`;
  }

  get(tenant: string, jobId: string): T | undefined {
    const k = SnapshotCache.key(tenant, jobId);
    const e = this.entries.get(k);
    if (e && this.now() - e.at <= this.ttlMs) {
      this.hits++;
      return e.value;
    }
    if (e) this.entries.delete(k);
    this.misses++;
    return undefined;
  }

  /** A ticket taken before reading the database; `set` ignores a stale ticket. */
  ticket(tenant: string, jobId: string): string {
    const k = SnapshotCache.key(tenant, jobId);
    return `${this.epoch}:${this.gens.get(k) ?? 0}`;
  }

  set(tenant: string, jobId: string, value: T, ticket: string): void {
    const k = SnapshotCache.key(tenant, jobId);
    if (ticket !== `${this.epoch}:${this.gens.get(k) ?? 0}`) return;
    this.entries.set(k, { value, at: this.now() });
    this.sweep();
  }

  invalidate(tenant: string, jobId: string): void {
    const k = SnapshotCache.key(tenant, jobId);
    this.entries.delete(k);
    // Only keys someone might be reading need a generation; bounded by the sweep below.
    this.gens.set(k, (this.gens.get(k) ?? 0) + 1);
    this.sweep();
  }

  invalidateTenant(tenant: string): void {
    const prefix = `${tenant}/`;
    for (const k of [...this.entries.keys()]) if (k.startsWith(prefix)) this.entries.delete(k);
    this.epoch++;
  }

  clear(): void {
    this.entries.clear();
    this.gens.clear();
    this.epoch++;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Keeps both maps bounded: generations are reset wholesale (a new epoch makes every
   * outstanding ticket stale, which only costs a cache miss); expired entries are walked at
   * most once per TTL, so a large cache of fresh entries is not rescanned on every set.
   */
  private sweep(): void {
    if (this.gens.size >= 10_000) {
      this.gens.clear();
      this.epoch++;
    }
    if (this.entries.size < 10_000) return;
    const t = this.now();
    if (t - this.lastSweep < this.ttlMs) return;
    this.lastSweep = t;
    for (const [k, e] of this.entries) if (t - e.at > this.ttlMs) this.entries.delete(k);
  }
}

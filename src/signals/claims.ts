/**
 * Claim waiters: `POST /workers/claim` with `wait` parks here until a job of one of its types
 * may be claimable, then claims again. NOTIFY is the hint, the table the truth: a wake is only a
 * reason to run the claim once more, and every wait ends by its own bound.
 *
 * What wakes a waiter, per tenant and job type:
 * - a batch's claim hint `+type=n` (n jobs left claimable now: an enqueue, a lease expiry, a
 *   retry or throttle that is due at once, a resumed type): the n oldest waiters of that type
 *   (by capacity, a waiter claiming up to k jobs counts k) are woken, not the whole fleet;
 * - the earliest later moment a job of the type becomes claimable (a retry's backoff, a
 *   throttle's refill wait, a future `not_before`: no event marks these): one timer per type,
 *   fed by `@type=µs` hints and, when unknown, by one indexed query per type shared by every
 *   waiter of the process. When it fires one waiter is woken; if it claims something, it hands
 *   the wake on to the next waiter (several jobs may be due at once), until a claim comes back empty;
 * - a (re)connect of the LISTEN connection: everyone looks again (anything may have been missed);
 * - `wakeTypes(tenant, types)`: the hook for changes outside job transitions.
 * A wake a waiter got but did not use (it left with jobs claimed before the wake, or its client
 * went away) is handed on to the next waiter of the type, so no hint is lost to a waiter that left.
 * While LISTEN is down, or the due moment of a type could not be read, waits are cut to
 * `fallbackPollMs`, so nothing depends on a notification arriving.
 */
import type { Pool } from '../db/pool.js';
import type { Clock } from '../util/clock.js';
import { formatMicros, parseMicros, type Micros } from '../util/time.js';
import type { ClaimHint } from './listener.js';

export interface ClaimWaitOptions {
  pool: Pool;
  clock: Clock;
  listenerReady(): boolean;
  /** Longest wait while LISTEN is down or a due moment is unknown, ms (default 1000). */
  fallbackPollMs?: number;
  log?: (line: string) => void;
}

interface Wake {
  type: string;
  /** A due-timer wake: hand it on after a claim that found something. */
  chain: boolean;
}

interface Waiter {
  tenant: string;
  types: readonly string[];
  capacity: number;
  /** Wakes received since the last claim began. */
  wakes: Wake[];
  /** Set while the waiter is parked in wait(). */
  fire: (() => void) | null;
}

/** Per tenant and type: the earliest later due moment (µs), null for none, absent when unknown. */
type DueMap = Map<string, Micros | null>;

/** The due moments of several types: the first queued or throttled job of each that is not claimable yet. */
const DUE_SQL = `SELECT t.type, (SELECT j.not_before FROM okit.jobs j
    WHERE j.tenant = $1 AND j.type = t.type AND j.state IN ('queued', 'throttled') AND j.not_before > $3::timestamptz
    ORDER BY j.not_before LIMIT 1) AS due
  FROM unnest($2::text[]) AS t(type)`;

export interface ClaimWaitStats {
  /** Waits that parked (a claim found nothing and `wait` > 0). */
  parked: number;
  /** Wakes handed to waiters: by a hint, a due timer, a reconnect or wakeTypes. */
  wakes: number;
  /** Due-moment queries run (one per tenant per round, covering every unknown type). */
  dueQueries: number;
  /** Due timers that fired. */
  dueFired: number;
}

export class ClaimWaiters {
  private readonly byTenant = new Map<string, Set<Waiter>>();
  private readonly due = new Map<string, DueMap>();
  /** Types whose due moment is being read, per tenant, with the earliest hint heard meanwhile. */
  private readonly loading = new Map<string, Map<string, Micros | null>>();
  private readonly loadFailed = new Set<string>();
  private readonly timers = new Map<string, { at: Micros; timer: NodeJS.Timeout }>();
  private readonly pendingLoads = new Set<string>();
  private loadScheduled = false;
  private readonly fallbackMs: number;
  readonly stats: ClaimWaitStats = { parked: 0, wakes: 0, dueQueries: 0, dueFired: 0 };

  constructor(private readonly o: ClaimWaitOptions) {
    this.fallbackMs = o.fallbackPollMs ?? 1000;
  }

  /** Waiters parked or claiming now. */
  get size(): number {
    let n = 0;
    for (const s of this.byTenant.values()) n += s.size;
    return n;
  }

  /**
   * Registers a waiter BEFORE its first claim query (a hint that arrives while that query runs
   * is then kept, not lost). The caller claims, and if nothing came back, waits; then claims again.
   */
  arm(tenant: string, types: readonly string[], capacity: number): ArmedClaim {
    const w: Waiter = { tenant, types: [...new Set(types)], capacity: Math.max(1, capacity), wakes: [], fire: null };
    let set = this.byTenant.get(tenant);
    if (!set) this.byTenant.set(tenant, (set = new Set()));
    set.add(w);
    return new ArmedClaim(this, w);
  }

  // ---------------------------------------------------------------- hints in

  /** A NOTIFY's claim hints for a tenant. */
  notify(tenant: string, claims: ClaimHint): void {
    if (claims.ready === '*') {
      this.due.delete(tenant);
      this.wakeEvery(tenant);
    } else for (const [type, n] of claims.ready) this.wakeType(tenant, type, n, false);
    for (const [type, at] of claims.due) this.heardDue(tenant, type, at);
  }

  /**
   * The hook for anything that makes jobs of these types claimable without a job transition
   * (a resumed type, say): every waiter of the types in this process looks again. Other
   * processes hear of it through a NOTIFY carrying `+type` (UnitView.wakeClaims in a ledger unit).
   */
  wakeTypes(tenant: string, types: readonly string[] | '*'): void {
    if (types === '*') {
      this.due.delete(tenant);
      return this.wakeEvery(tenant);
    }
    for (const t of types) {
      this.due.get(tenant)?.delete(t);
      this.wakeType(tenant, t, Number.MAX_SAFE_INTEGER, false);
    }
  }

  /** LISTEN (re)connected or was lost: anything may have been missed. Forget due moments; everyone looks again. */
  wakeAll(): void {
    this.due.clear();
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    for (const tenant of this.byTenant.keys()) this.wakeEvery(tenant);
  }

  private wakeEvery(tenant: string): void {
    for (const w of this.byTenant.get(tenant) ?? []) this.give(w, { type: w.types[0]!, chain: false });
  }

  /** Hands up to `n` wakes of the type to its oldest waiters (a waiter takes as many as it may claim). */
  wakeType(tenant: string, type: string, n: number, chain: boolean, except?: Waiter): void {
    let left = n;
    for (const w of this.byTenant.get(tenant) ?? []) {
      if (left <= 0) break;
      if (w === except || !w.types.includes(type)) continue;
      const room = w.capacity - w.wakes.length;
      if (room <= 0) continue;
      const k = Math.min(room, left);
      for (let i = 0; i < k; i++) this.give(w, { type, chain });
      left -= k;
    }
  }

  private give(w: Waiter, wake: Wake): void {
    w.wakes.push(wake);
    this.stats.wakes++;
    w.fire?.();
  }

  // ---------------------------------------------------------------- due moments

  private heardDue(tenant: string, type: string, at: Micros): void {
    const loading = this.loading.get(tenant);
    if (loading?.has(type)) {
      const cur = loading.get(type);
      if (cur === null || cur === undefined || at < cur) loading.set(type, at);
    }
    const map = this.due.get(tenant);
    if (!map || !map.has(type)) return; // unknown: read when a waiter needs it
    const cur = map.get(type)!;
    if (cur === null || at < cur) {
      map.set(type, at);
      this.schedule(tenant, type);
    }
  }

  /** Makes sure each of the waiter's types has a known due moment (reading unknown ones) and a timer. */
  need(w: Waiter): void {
    const map = this.due.get(w.tenant);
    for (const type of w.types) {
      if (map?.has(type)) this.schedule(w.tenant, type);
      else if (!this.loading.get(w.tenant)?.has(type)) this.pendingLoads.add(`${w.tenant}\u0000${type}`);
    }
    if (this.pendingLoads.size > 0 && !this.loadScheduled) {
      this.loadScheduled = true;
      setImmediate(() => void this.loadDue());
    }
  }

  /** Whether any of the waiter's types has an unknown due moment that could not be read. */
  unsure(w: Waiter): boolean {
    return w.types.some((t) => this.loadFailed.has(`${w.tenant}\u0000${t}`));
  }

  private async loadDue(): Promise<void> {
    this.loadScheduled = false;
    const byTenant = new Map<string, string[]>();
    for (const k of this.pendingLoads) {
      const [tenant, type] = k.split('\u0000') as [string, string];
      if (!byTenant.has(tenant)) byTenant.set(tenant, []);
      byTenant.get(tenant)!.push(type);
    }
    this.pendingLoads.clear();
    await Promise.all(
      [...byTenant].map(async ([tenant, types]) => {
        let loading = this.loading.get(tenant);
        if (!loading) this.loading.set(tenant, (loading = new Map()));
        for (const t of types) loading.set(t, null);
        this.stats.dueQueries++;
        try {
          const { rows } = await this.o.pool.query(DUE_SQL, [tenant, types, formatMicros(this.o.clock.now())]);
          let map = this.due.get(tenant);
          if (!map) this.due.set(tenant, (map = new Map()));
          for (const r of rows) {
            const type = String(r.type);
            const read = r.due === null ? null : parseMicros(String(r.due));
            const heard = loading.get(type) ?? null;
            map.set(type, read === null ? heard : heard === null || read < heard ? read : heard);
            this.loadFailed.delete(`${tenant}\u0000${type}`);
            this.schedule(tenant, type);
          }
        } catch (e) {
          // Unknown for now: the waiters of these types fall back to polling.
          for (const t of types) this.loadFailed.add(`${tenant}\u0000${t}`);
          this.o.log?.(`claim due moments could not be read: ${(e as Error).message}`);
        } finally {
          for (const t of types) loading.delete(t);
          if (loading.size === 0) this.loading.delete(tenant);
        }
      }),
    );
  }

  /** One timer per tenant and type, at its due moment, while any waiter of the type is parked or claiming. */
  private schedule(tenant: string, type: string): void {
    const key = `${tenant}\u0000${type}`;
    const at = this.due.get(tenant)?.get(type);
    const cur = this.timers.get(key);
    if (at === undefined || at === null || !this.hasWaiter(tenant, type)) {
      if (cur) {
        clearTimeout(cur.timer);
        this.timers.delete(key);
      }
      return;
    }
    if (cur && cur.at === at) return;
    if (cur) clearTimeout(cur.timer);
    // Micros to ms, rounded up, plus one: the claim's `not_before <= now` must hold when it fires.
    const delay = Math.max(0, Number((at - this.o.clock.now() + 999n) / 1000n) + 1);
    const timer = setTimeout(() => this.fireDue(tenant, type, at), Math.min(delay, 2 ** 31 - 1));
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  private fireDue(tenant: string, type: string, at: Micros): void {
    const key = `${tenant}\u0000${type}`;
    if (this.timers.get(key)?.at !== at) return;
    this.timers.delete(key);
    this.stats.dueFired++;
    // The moment has come: what is due next is unknown until read again.
    const map = this.due.get(tenant);
    if (map?.get(type) === at) map.delete(type);
    this.wakeType(tenant, type, 1, true);
    for (const w of this.byTenant.get(tenant) ?? []) if (w.types.includes(type)) this.need(w);
  }

  private hasWaiter(tenant: string, type: string): boolean {
    for (const w of this.byTenant.get(tenant) ?? []) if (w.types.includes(type)) return true;
    return false;
  }

  /** The waiter leaves: wakes it did not use go on to the next waiter of their type. */
  leave(w: Waiter): void {
    const set = this.byTenant.get(w.tenant);
    set?.delete(w);
    if (set && set.size === 0) this.byTenant.delete(w.tenant);
    const unused = w.wakes;
    w.wakes = [];
    for (const wake of unused) this.wakeType(w.tenant, wake.type, 1, wake.chain, w);
    for (const type of w.types) if (!this.hasWaiter(w.tenant, type)) this.schedule(w.tenant, type);
  }

  get fallbackPollMs(): number {
    return this.fallbackMs;
  }

  listenerReady(): boolean {
    return this.o.listenerReady();
  }
}

/** One `POST /workers/claim` with `wait`, between its claims. */
export class ArmedClaim {
  private consumed: Wake[] = [];
  private left = false;

  constructor(
    private readonly hub: ClaimWaiters,
    private readonly w: Waiter,
  ) {}

  /** Call just before each claim query: the wakes received so far are answered by it. */
  claiming(): void {
    this.consumed = this.w.wakes;
    this.w.wakes = [];
  }

  /** After each claim query: a due-timer wake answered by a claim that found jobs goes on (more may be due). */
  claimed(found: number): void {
    if (found > 0) for (const wake of this.consumed) if (wake.chain) this.hub.wakeType(this.w.tenant, wake.type, 1, true, this.w);
    this.consumed = [];
  }

  /** Parks until woken, `ms` pass, or `abort` fires. */
  wait(ms: number, abort: AbortSignal): Promise<'woken' | 'timeout' | 'aborted'> {
    const w = this.w;
    if (w.wakes.length > 0) return Promise.resolve('woken');
    if (abort.aborted) return Promise.resolve('aborted');
    this.hub.stats.parked++;
    this.hub.need(w);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let poll: NodeJS.Timeout | undefined;
      const done = (why: 'woken' | 'timeout' | 'aborted') => {
        clearTimeout(timer);
        clearTimeout(poll);
        abort.removeEventListener('abort', onAbort);
        w.fire = null;
        resolve(why);
      };
      const onAbort = () => done('aborted');
      w.fire = () => done('woken');
      abort.addEventListener('abort', onAbort, { once: true });
      timer = setTimeout(() => done('timeout'), Math.max(0, ms));
      // Without LISTEN, or without a due moment, nothing would wake us: look again regularly.
      const fallback = () => !this.hub.listenerReady() || this.hub.unsure(w);
      const check = () => {
        if (fallback()) done('woken');
        else poll = setTimeout(check, this.hub.fallbackPollMs);
      };
      poll = setTimeout(check, this.hub.fallbackPollMs);
    });
  }

  /** The request is over (answered, failed or abandoned). */
  leave(): void {
    if (this.left) return;
    this.left = true;
    this.hub.leave(this.w);
  }
}

/**
 * Reading a job's current first signal: the per-process cache (≤ 1 s), then the
 * first_signal_snapshots row, then, if that row is missing but history exists, a projection
 * of the history on the fly (`cold_start`).
 */
import { OkitError } from '../errors.js';
import * as v from '../ledger/validate.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Snapshot } from '../ledger/types.js';
import { SnapshotCache } from './cache.js';
import { project } from '../ledger/projection.js';
import { etagOf, TERMINAL_KINDS } from './signal.js';
import { LiveQueue, type Live } from './live.js';

export type SignalSource = 'snapshot' | 'cold_start' | 'failure_index';

/** What this server last read of a job, and when (performance.now()). */
export interface LastKnown {
  etag: string;
  source: SignalSource;
  at: number;
}

export interface Current {
  snapshot: Snapshot;
  etag: string;
  source: SignalSource;
  /** The read-time queue overlay (live.ts): not part of the snapshot, never replayed. */
  live?: Live;
}

/**
 * A queued job's ETag also names its live values (position, ETA), so a client holding the old
 * one sees the queue move, and one ETag is still one representation.
 */
export function liveEtag(etag: string, live: Live): string {
  return `${etag.slice(0, -1)}-q${live.queue_position ?? `>${live.queue_ahead_at_least}`}-e${live.eta_seconds ?? 'x'}"`;
}

export function isTerminal(c: Current): boolean {
  return TERMINAL_KINDS.has(c.snapshot.kind);
}

export class SignalStore {
  readonly cache: SnapshotCache<Current>;
  /**
   * Loads in flight, by key, with the cache ticket they started under. One NOTIFY wakes every
   * watcher of a job at once; they share one database read instead of each issuing their own.
   * A reader joins only a load begun under its own ticket (no invalidation since), so what it
   * gets is exactly what it would have read itself.
   */
  private readonly inflight = new Map<string, { ticket: string; promise: Promise<Current> }>();
  /**
   * The ETag this server last read for each job (at most LAST_KNOWN entries, oldest dropped),
   * forgotten when a NOTIFY says the job changed. When the database does not answer, a
   * long-poll whose client holds that ETag is answered 304 from it at its deadline.
   */
  private readonly last = new Map<string, LastKnown>();
  static readonly LAST_KNOWN = 10_000;
  constructor(
    private readonly ledger: Ledger,
    cacheTtlMs = 1000,
    /** Is the database answering? When not, a cache miss is DB_UNAVAILABLE at once instead of a query that waits. */
    private readonly dbUp: () => boolean = () => true,
    /** The live queue overlay; absent: snapshots are served as they are. */
    private readonly live: LiveQueue | null = null,
  ) {
    this.cache = new SnapshotCache<Current>(cacheTtlMs);
  }

  lastKnown(tenant: string, jobId: string): LastKnown | undefined {
    return this.last.get(`${tenant}/${jobId}`);
  }

  /** A job changed (NOTIFY): its cached value and its last-known ETag no longer hold. */
  invalidate(tenant: string, jobId: string): void {
    this.cache.invalidate(tenant, jobId);
    this.last.delete(`${tenant}/${jobId}`);
  }

  invalidateTenant(tenant: string): void {
    this.cache.invalidateTenant(tenant);
    const prefix = `${tenant}/`;
    for (const k of [...this.last.keys()]) if (k.startsWith(prefix)) this.last.delete(k);
  }

  private remember(k: string, cur: Current): void {
    this.last.delete(k);
    this.last.set(k, { etag: cur.etag, source: cur.source, at: performance.now() });
    if (this.last.size > SignalStore.LAST_KNOWN) this.last.delete(this.last.keys().next().value!);
  }

  /** The job's current signal; `info.hit` tells whether the in-process cache answered. */
  async read(tenant: string, jobId: string, info?: { hit: boolean }): Promise<Current> {
    const hit = this.cache.get(tenant, jobId);
    if (info) info.hit = hit !== undefined;
    if (hit) return hit;
    if (!this.dbUp()) throw new OkitError('DB_UNAVAILABLE', 'the database is unavailable; retry shortly');
    const ticket = this.cache.ticket(tenant, jobId);
    const k = `${tenant}/${jobId}`;
    const f = this.inflight.get(k);
    if (f && f.ticket === ticket) return f.promise;
    const promise = this.load(tenant, jobId).then((cur) => {
      this.cache.set(tenant, jobId, cur, ticket);
      if (ticket === this.cache.ticket(tenant, jobId)) this.remember(k, cur);
      return cur;
    });
    const entry = { ticket, promise };
    this.inflight.set(k, entry);
    const done = () => {
      if (this.inflight.get(k) === entry) this.inflight.delete(k);
    };
    promise.then(done, done);
    return promise;
  }

  /**
   * Snapshot reads wanted in this turn of the event loop, by tenant, then job: flushed together
   * as one query per tenant (≤ BATCH ids). When thousands of long-polls time out or wake at
   * once, one read per job through a small pool queued for seconds (bench/fanout).
   */
  private pending = new Map<string, Map<string, Array<{ resolve: (s: Snapshot | null) => void; reject: (e: unknown) => void }>>>();
  private static readonly BATCH = 500;

  private snapshotOf(tenant: string, jobId: string): Promise<Snapshot | null> {
    return new Promise((resolve, reject) => {
      // Validated here so that one bad id fails alone, not the batch it would have joined.
      v.tenant(tenant);
      v.uuid(jobId, 'job_id');
      if (this.pending.size === 0) setImmediate(() => this.flush());
      let byJob = this.pending.get(tenant);
      if (!byJob) this.pending.set(tenant, (byJob = new Map()));
      let list = byJob.get(jobId);
      if (!list) byJob.set(jobId, (list = []));
      list.push({ resolve, reject });
    });
  }

  private flush(): void {
    const pending = this.pending;
    this.pending = new Map();
    for (const [tenant, byJob] of pending) {
      const ids = [...byJob.keys()];
      for (let i = 0; i < ids.length; i += SignalStore.BATCH) {
        const chunk = ids.slice(i, i + SignalStore.BATCH);
        this.ledger.getSnapshots(tenant, chunk).then(
          (found) => {
            for (const id of chunk) for (const w of byJob.get(id)!) w.resolve(found.get(id) ?? null);
          },
          (e) => {
            for (const id of chunk) for (const w of byJob.get(id)!) w.reject(e);
          },
        );
      }
    }
  }

  private async load(tenant: string, jobId: string): Promise<Current> {
    const cur = await this.loadSnapshot(tenant, jobId);
    return { ...cur, ...(await this.overlay(cur.snapshot, cur.etag)) };
  }

  /**
   * The served representation of a snapshot read elsewhere (the multiplexed stream): its live
   * overlay and ETag, the same as a GET of the job answers, so a client may mix the two.
   */
  async overlay(snapshot: Snapshot, etag = etagOf(snapshot)): Promise<{ etag: string; live?: Live }> {
    if (!this.live || !LiveQueue.wants(snapshot)) return { etag };
    const live = await this.live.overlay(snapshot);
    return live ? { live, etag: liveEtag(etag, live) } : { etag };
  }

  private async loadSnapshot(tenant: string, jobId: string): Promise<Current> {
    const stored = await this.snapshotOf(tenant, jobId);
    if (stored) return { snapshot: stored, etag: etagOf(stored), source: stored.source === 'failure_index' ? 'failure_index' : 'snapshot' };
    // No snapshot row: the job may still exist (say, restored from history). history() is
    // tenant-scoped and throws JOB_NOT_FOUND for a missing or foreign job.
    const rows = await this.ledger.history(tenant, jobId);
    if (rows.length === 0) throw new OkitError('JOB_NOT_FOUND', `job ${jobId} not found`, { job_id: jobId });
    const snapshot = project(rows);
    return { snapshot, etag: etagOf(snapshot), source: 'cold_start' };
  }
}

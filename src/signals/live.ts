/**
 * The live queue overlay (docs/eta.md): a queued job's position as the queue stands now, and
 * the ETA it gives, computed when the signal is read. Never stored in first_signal_snapshots,
 * never exported, never compared by replay: the snapshot stays the pure fold of the history;
 * `live` is beside it in the served body. It holds no read time, so one ETag (which names the
 * live values, store.ts) is always one representation.
 */
import type { Pool } from '../db/pool.js';
import { p50Micros } from '../ledger/durations.js';
import { MAX_ETA_SECONDS } from '../ledger/projection.js';
import { ts } from '../ledger/rows.js';
import type { Snapshot } from '../ledger/types.js';
import { parseMicros } from '../util/time.js';

export interface Live {
  /** 1 = next to be claimed; null when more than `queue_ahead_at_least` are ahead. */
  queue_position: number | null;
  queue_ahead_at_least?: number;
  /**
   * The queued rule with the live position and the type's current p50 and workers; like every
   * `eta_seconds`, seconds from the snapshot's `updated_at`. Null: no success of the type yet, or capped.
   */
  eta_seconds: number | null;
}

interface TypeStats {
  p50Seconds: number | null;
  workers: number;
  at: number;
}

export interface LiveQueueOptions {
  /** Counting stops here (the ledger's queue-position cap): a bounded index range count. */
  cap: number;
  /** How long a type's p50 and worker count are reused (ms). */
  typeTtlMs?: number;
  /** Bound on cached {tenant, type} entries. */
  maxTypes?: number;
}

/** The job's place in claim order (jobs_claim_idx: priority DESC, not_before, created_at, id) among its type's waiting jobs. */
const AHEAD = `SELECT me.type, me.not_before,
    (SELECT count(*)::int FROM (SELECT 1 FROM okit.jobs j
       WHERE j.tenant = $1 AND j.type = me.type AND j.state IN ('queued', 'throttled')
         AND (j.priority > me.priority OR (j.priority = me.priority AND (j.not_before, j.created_at, j.id) < (me.not_before, me.created_at, me.id)))
       LIMIT $3::int8) q) AS ahead
  FROM okit.jobs me WHERE me.tenant = $1 AND me.id = $2 AND me.state IN ('queued', 'throttled')`;

const STATS = `SELECT d.durations_us::text[] AS d,
    (SELECT count(DISTINCT lease_owner)::int FROM okit.jobs WHERE tenant = $1 AND type = $2 AND state = 'running') AS w
  FROM (SELECT 1) one LEFT JOIN okit.type_durations d ON d.tenant = $1 AND d.type = $2`;

export class LiveQueue {
  private readonly types = new Map<string, TypeStats>();
  constructor(
    private readonly pool: Pool,
    private readonly opts: LiveQueueOptions,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** Whether a snapshot gets an overlay: a job waiting in its queue (not paused, not running, not done). */
  static wants(s: Snapshot): boolean {
    return s.kind === 'queued' && s.diagnostics.state === 'queued';
  }

  /** The overlay for a queued job, or null when it is no longer waiting (it moved since the snapshot was read). */
  async overlay(s: Snapshot): Promise<Live | null> {
    if (!LiveQueue.wants(s)) return null;
    const { rows } = await this.pool.query(AHEAD, [s.tenant, s.job_id, this.opts.cap]);
    const r = rows[0];
    if (!r) return null;
    const type = String(r.type);
    const ahead = Number(r.ahead);
    const stats = await this.stats(s.tenant, type);
    const capped = ahead >= this.opts.cap;
    const wait = Math.max(0, Number(parseMicros(ts(r.not_before)) - parseMicros(s.updated_at)) / 1e6);
    const p50 = stats.p50Seconds;
    const seconds = p50 === null || capped ? null : wait + (ahead / Math.max(1, stats.workers)) * p50 + p50;
    const eta = seconds === null ? null : Math.ceil(seconds - 1e-9);
    return {
      queue_position: capped ? null : ahead + 1,
      ...(capped ? { queue_ahead_at_least: this.opts.cap } : {}),
      eta_seconds: eta === null || eta > MAX_ETA_SECONDS ? null : Math.max(0, eta),
    };
  }

  private async stats(tenant: string, type: string): Promise<TypeStats> {
    const k = `${tenant}/${type}`;
    const hit = this.types.get(k);
    const t = this.nowMs();
    if (hit && t - hit.at <= (this.opts.typeTtlMs ?? 2000)) return hit;
    const { rows } = await this.pool.query(STATS, [tenant, type]);
    const d = ((rows[0]?.d as string[] | null) ?? []).map((x) => BigInt(x));
    const p50 = p50Micros(d);
    const got = { p50Seconds: p50 === null ? null : Number(p50) / 1e6, workers: Number(rows[0]?.w ?? 0), at: t };
    this.types.delete(k);
    this.types.set(k, got);
    if (this.types.size > (this.opts.maxTypes ?? 10_000)) this.types.delete(this.types.keys().next().value!);
    return got;
  }
}

/**
 * Sources (what a job fetches from, per tenant, with a host) and their token buckets: creating
 * and reading sources, configuring a host's bucket, and the upstream throttle reports that
 * halve its refill. Bucket changes and their throttle events take ledger positions, so they go
 * through the batching writer like job transitions; the arithmetic is in throttle.ts.
 */
import { OkitError } from '../errors.js';
import type { Json } from '../util/canonical.js';
import { formatMicros, secondsToMicros } from '../util/time.js';
import type { LedgerCore } from './jobs.js';
import { ts } from './rows.js';
import { bucketView, fromMicroUnits, numericMicroUnits, penalise, refill, toBucket, type Bucket, type BucketView } from './throttle.js';
import type { UnitView } from './batch.js';
import type { Micros } from '../util/time.js';
import { json, tsOrNull } from './rows.js';
import * as v from './validate.js';

export interface Source {
  id: string;
  tenant: string;
  name: string;
  host: string;
  created_at: string;
}

/** A bucket as `okit throttle list` shows it; numbers are exact decimal strings. */
export interface ThrottleState {
  host: string;
  capacity: string;
  tokens: string;
  refill_per_sec: string;
  base_refill_per_sec: string;
  penalty_until: string | null;
  updated_at: string;
  /** The instant `tokens` is computed for. */
  as_of: string;
  last_upstream_throttle: { at: string; status: number | null; retry_after_seconds: string | null; worker_id: string | null } | null;
}

export interface SourceOptions {
  /** Bucket used when a throttle is reported for a host that has none configured. */
  defaultBucket: { capacity: number; refillPerSec: number };
}

export class SourceOps {
  constructor(
    private readonly l: LedgerCore,
    private readonly o: SourceOptions,
  ) {}

  async createSource(tenant: string, input: { name: string; host: string; id?: string }): Promise<Source> {
    return (await this.addSource(tenant, input)).source;
  }

  /** Creates a source; the same name and host again answers the existing one (created: false); another host is INVALID_INPUT. */
  async addSource(tenant: string, input: { name: string; host: string; id?: string }): Promise<{ source: Source; created: boolean }> {
    v.tenant(tenant);
    const name = v.text(input?.name, 'name', 200)!;
    const host = v.host(input.host);
    const id = input.id != null ? v.uuid(input.id) : this.l.ids();
    const at = formatMicros(this.l.clock.now());
    const { rows } = await this.l.pool
      .query(
        `INSERT INTO okit.sources (id, tenant, name, host, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant, name) DO UPDATE SET name = EXCLUDED.name
         RETURNING id, tenant, name, host, created_at, (xmax = 0) AS created`,
        [id, tenant, name, host, at],
      )
      .catch((e) => rethrowIdTaken(e, id));
    const r = rows[0];
    if (r.host !== host) throw new OkitError('INVALID_INPUT', `source ${name} already exists with host ${r.host}`);
    return { source: { id: r.id, tenant: r.tenant, name: r.name, host: r.host, created_at: ts(r.created_at) }, created: r.created === true };
  }

  async getSource(tenant: string, id: string): Promise<Source> {
    v.tenant(tenant);
    v.uuid(id, 'source_id');
    const { rows } = await this.l.pool.query('SELECT id, tenant, name, host, created_at FROM okit.sources WHERE id = $1 AND tenant = $2', [id, tenant]);
    if (!rows[0]) throw new OkitError('SOURCE_NOT_FOUND', `source ${id} not found`);
    return { ...rows[0], created_at: ts(rows[0].created_at) };
  }

  /** The tenant's sources, by name. */
  async listSources(tenant: string): Promise<Source[]> {
    v.tenant(tenant);
    const { rows } = await this.l.pool.query('SELECT id, tenant, name, host, created_at FROM okit.sources WHERE tenant = $1 ORDER BY name, id', [tenant]);
    return rows.map((r) => ({ id: String(r.id), tenant: String(r.tenant), name: String(r.name), host: String(r.host), created_at: ts(r.created_at) }));
  }

  /** Every bucket of the tenant (or one host's) with its state now: tokens refilled to the clock's now (not written). */
  async listThrottles(tenant: string, hostName?: string): Promise<ThrottleState[]> {
    v.tenant(tenant);
    const host = hostName === undefined ? null : v.host(hostName);
    const { rows } = await this.l.pool.query(
      `SELECT t.host, t.capacity, t.base_refill_per_sec, t.refill_per_sec, t.tokens, t.updated_at, t.penalty_until, e.at AS last_at, e.data AS last_data
       FROM okit.throttles t LEFT JOIN LATERAL (
         SELECT at, data FROM okit.throttle_events x WHERE x.tenant = t.tenant AND x.host = t.host AND x.event = 'upstream_throttled' ORDER BY x.pos DESC LIMIT 1) e ON true
       WHERE t.tenant = $1 AND ($2::text IS NULL OR t.host = $2) ORDER BY t.host`,
      [tenant, host],
    );
    const now = this.l.clock.now();
    return rows.map((r) => {
      const b = refill(toBucket(r), now);
      const last = json<{ [k: string]: Json } | null>(r.last_data);
      return {
        host: String(r.host),
        capacity: fromMicroUnits(b.capacity),
        tokens: fromMicroUnits(b.tokens),
        refill_per_sec: fromMicroUnits(b.refill),
        base_refill_per_sec: fromMicroUnits(b.baseRefill),
        penalty_until: b.penaltyUntil === null ? null : formatMicros(b.penaltyUntil),
        updated_at: tsOrNull(r.updated_at)!,
        as_of: formatMicros(now),
        last_upstream_throttle: last
          ? {
              at: tsOrNull(r.last_at)!,
              status: (last.status ?? null) as number | null,
              retry_after_seconds: (last.retry_after_seconds ?? null) as string | null,
              worker_id: (last.worker_id ?? null) as string | null,
            }
          : null,
      };
    });
  }

  /** Sets a host's token bucket (capacity, refill per second); a full bucket to start. */
  async configureThrottle(tenant: string, hostName: string, cfg: { capacity: number; refillPerSec: number }): Promise<void> {
    v.tenant(tenant);
    const host = v.host(hostName);
    // Bounds of the columns: tokens and refill are numeric(12,6), so below 10^6.
    const capacity = v.num(cfg.capacity, 'capacity', 1, 999999);
    const refill = v.num(cfg.refillPerSec, 'refill_per_sec', 0.000001, 999999);
    const now = this.l.clock.now();
    await this.l.writer.submit(tenant, {
      weight: 1,
      async run(b) {
        await b.bucket(host, { capacity, refillPerSec: refill, now });
        const cur = b.bucketNow(host)!;
        // As numeric(12,3) / numeric(12,6) store them; tokens are kept, but never above the new capacity.
        const cap6 = numericMicroUnits(capacity, 6);
        const rate = numericMicroUnits(refill, 6);
        b.setBucket(host, {
          capacity: numericMicroUnits(capacity, 3),
          baseRefill: rate,
          refill: rate,
          tokens: cur.tokens < cap6 ? cur.tokens : cap6,
          updatedAt: now,
          penaltyUntil: null,
        });
        b.throttleEvent(host, 'configured', { capacity: String(capacity), refill_per_sec: String(refill) }, now);
        return () => undefined;
      },
    });
  }

  /**
   * A worker saw the upstream throttle us (an HTTP 429 with Retry-After, say): empty the bucket,
   * pause refill for retryAfter (none when absent), halve the refill rate (it recovers additively
   * on later claims). With `jobId`, the job (of this tenant: JOB_NOT_FOUND otherwise) is named in
   * the throttle event. Answers the bucket as it is now.
   */
  async reportThrottle(
    tenant: string,
    hostName: string | null | undefined,
    input: { retryAfterSeconds?: number | null; status?: number; workerId?: string; jobId?: string | null },
  ): Promise<BucketView> {
    v.tenant(tenant);
    // Without a host, the job's source's host (as for a fail with upstream).
    const given = hostName == null && input.jobId != null ? null : v.host(hostName);
    const up = upstreamInput({ status: input.status ?? 429, retryAfterSeconds: input.retryAfterSeconds });
    const worker = input.workerId ? v.workerId(input.workerId) : undefined;
    const jobId = input.jobId != null ? v.uuid(input.jobId, 'job_id') : null;
    const now = this.l.clock.now();
    const d = this.o.defaultBucket;
    return this.l.writer.submit(tenant, {
      weight: 1,
      async run(b) {
        const seed = { capacity: d.capacity, refillPerSec: d.refillPerSec, now };
        const [job] = await Promise.all([jobId ? b.job(jobId) : null, given ? b.bucket(given, seed) : null]);
        if (jobId && !job) throw new OkitError('JOB_NOT_FOUND', `job ${jobId} not found`, { job_id: jobId });
        let host = given;
        if (!host) {
          host = job!.job.source_id ? ((await b.source(job!.job.source_id))?.host ?? null) : null;
          if (!host) throw new OkitError('INVALID_INPUT', 'host: is required when the job has no source', { field: 'host' });
          await b.bucket(host, seed);
        }
        const after = recordPenalty(b, host, up, now, { worker, jobId });
        return () => bucketView(host, after);
      },
    });
  }
}

/** A caller-chosen id that is already a primary key (any tenant's) is bad input, not a crash. */
function rethrowIdTaken(e: unknown, id: string): never {
  const err = e as { code?: string; constraint?: string };
  if (err.code === '23505' && err.constraint?.endsWith('_pkey')) throw new OkitError('INVALID_INPUT', `id ${id} is already taken`, { field: 'id' });
  throw e;
}

/** An upstream throttle as reported: the status the upstream answered and its Retry-After, if any. */
export interface Upstream {
  status: number;
  retryAfterSeconds: number | null;
}

/** Validates a reported upstream status (100..599) and Retry-After (0..86400 s, optional). */
export function upstreamInput(input: { status?: unknown; retryAfterSeconds?: unknown }, prefix = ''): Upstream {
  const named = (f: string) => (prefix ? `${prefix}.${f}` : f);
  const status = v.int(input.status, named('status'), 100, 599);
  const retryAfterSeconds = input.retryAfterSeconds == null ? null : v.num(input.retryAfterSeconds, named('retry_after_seconds'), 0, 86400);
  return { status, retryAfterSeconds };
}

/**
 * Records an upstream throttle in a unit whose bucket for `host` is loaded (b.bucket with a
 * seed): the penalised bucket and its `upstream_throttled` event. Synchronous: call it in the
 * unit's last step, after its reads. Answers the bucket after.
 */
export function recordPenalty(b: UnitView, host: string, up: Upstream, now: Micros, who: { worker?: string; jobId?: string | null }): Bucket {
  const cur = b.bucketNow(host)!;
  const after = penalise(cur, now, secondsToMicros(up.retryAfterSeconds ?? 0));
  b.setBucket(host, after);
  const data: { [k: string]: Json } = {
    status: up.status,
    retry_after_seconds: up.retryAfterSeconds === null ? null : String(up.retryAfterSeconds),
    refill_before: fromMicroUnits(cur.refill),
    refill_after: fromMicroUnits(after.refill),
    penalty_until: formatMicros(after.penaltyUntil!),
    ...(who.worker ? { worker_id: who.worker } : {}),
    ...(who.jobId ? { job_id: who.jobId } : {}),
  };
  b.throttleEvent(host, 'upstream_throttled', data, now);
  return after;
}

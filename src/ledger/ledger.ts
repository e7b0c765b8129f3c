/**
 * The job ledger. Every state change is one transaction holding: the job row update, one
 * appended hash-chained history row, the re-projected first-signal snapshot, and one NOTIFY.
 * Time comes from the injected clock only; ids from the injected generator.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { OkitError } from '../errors.js';
import { withTx, type Pool, type PoolClient } from '../db/pool.js';
import { canonicalize, type Json } from '../util/canonical.js';
import { systemClock, type Clock } from '../util/clock.js';
import { constantTimeEqual, sha256Hex } from '../util/hash.js';
import { formatMicros, parseMicros, SECOND, microsToSeconds, secondsToMicros, type Micros } from '../util/time.js';
import { project } from '../signals/projection.js';
import { rowHash } from './chain.js';
import { HISTORY_COLUMNS, historyParams, INSERT_HISTORY, JOB_COLUMNS, SNAPSHOT_COLUMNS, toHistory, toJob, toSnapshot, ts } from './rows.js';
import { isAllowed, TERMINAL_STATES, type JobEvent, type JobState } from './states.js';
import { consumeToken, fromMicroUnits, penalise, type Bucket, toBucket } from './throttle.js';
import type { HistoryRow, Job, Phase, Snapshot } from './types.js';
import * as v from './validate.js';

export const NOTIFY_CHANNEL = 'okit_signal';

export interface LedgerOptions {
  clock?: Clock;
  /** Id generator (uuid). Seeded in simulations. */
  ids?: () => string;
  defaultMaxAttempts?: number;
  defaultLeaseSeconds?: number;
  backoffBaseSeconds?: number;
  backoffCapSeconds?: number;
  /** Enqueue counts the jobs ahead up to this many; beyond, history records only "at least" (default 1000). */
  queuePositionCap?: number;
  /** Bucket used when a throttle is reported for a host that has none configured. */
  defaultBucket?: { capacity: number; refillPerSec: number };
  /** Called once per committed transaction (metrics); its errors are ignored. More via `commitObservers`. */
  onCommit?: CommitObserver;
}

/** One committed ledger transaction, for observers (metrics): never part of what is stored. */
export interface CommitInfo {
  tenant: string;
  /** Operations committed together (1 until transactions are grouped). */
  batchSize: number;
  /** BEGIN to COMMIT acknowledged. */
  ms: number;
  transitions: ReadonlyArray<{ jobId: string; type: string; createdAt: string; event: JobEvent; to: JobState; at: string; data: { [k: string]: Json } }>;
  throttles: ReadonlyArray<{ host: string; event: string }>;
}
export type CommitObserver = (info: CommitInfo) => void;

export interface EnqueueInput {
  type: string;
  payload?: unknown;
  sourceId?: string | null;
  runId?: string | null;
  priority?: number;
  maxAttempts?: number;
  idempotencyKey?: string | null;
  notBefore?: string | null;
  id?: string;
}

export interface ClaimInput {
  workerId: string;
  types: string[];
  leaseSeconds?: number;
}

export interface ClaimedJob {
  job: Job;
  leaseExpiresAt: string;
  attempt: number;
  /** The lease's fencing token: heartbeat, progress, complete and fail present it (over HTTP they must). */
  leaseToken: string;
}

/**
 * Who reports on a lease: the worker id alone (in-process callers that trust themselves), or
 * with the claim's lease token, which fences off a stale process sharing the worker id.
 */
export type LeaseHolder = string | { workerId: string; leaseToken: string };

export interface ProgressInput {
  phase: Phase | string;
  summary?: string | null;
  itemsDone?: number | null;
  itemsTotal?: number | null;
}

export interface FailInput {
  code: string;
  message: string;
  retryable?: boolean;
}

export interface Source {
  id: string;
  tenant: string;
  name: string;
  host: string;
  created_at: string;
}

/** Per-transaction context: the ids whose signal changed, for the one NOTIFY at commit. */
interface Tx {
  c: PoolClient;
  tenant: string;
  changed: Set<string>;
  transitions: Array<CommitInfo['transitions'][number]>;
  throttles: Array<CommitInfo['throttles'][number]>;
}

const MAX_NOTIFY_BYTES = 7000;

export class Ledger {
  readonly pool: Pool;
  readonly clock: Clock;
  private readonly ids: () => string;
  readonly opts: Required<Omit<LedgerOptions, 'clock' | 'ids' | 'onCommit'>>;
  /** Told of every committed transaction; a server adds its metrics here. */
  readonly commitObservers = new Set<CommitObserver>();

  constructor(pool: Pool, opts: LedgerOptions = {}) {
    this.pool = pool;
    this.clock = opts.clock ?? systemClock;
    this.ids = opts.ids ?? randomUUID;
    this.opts = {
      defaultMaxAttempts: opts.defaultMaxAttempts ?? 5,
      defaultLeaseSeconds: opts.defaultLeaseSeconds ?? 30,
      backoffBaseSeconds: opts.backoffBaseSeconds ?? 2,
      backoffCapSeconds: opts.backoffCapSeconds ?? 300,
      defaultBucket: opts.defaultBucket ?? { capacity: 10, refillPerSec: 5 },
      queuePositionCap: opts.queuePositionCap ?? 1000,
    };
    if (opts.onCommit) this.commitObservers.add(opts.onCommit);
  }

  // ---------------------------------------------------------------- plumbing

  /**
   * One ledger transaction. The NOTIFY and the COMMIT travel in one round trip: the tenant's
   * ledger head is locked from nextPos() to commit, so every round trip inside that window
   * costs throughput for the whole tenant.
   */
  private async tx<T>(tenant: string, fn: (t: Tx) => Promise<T>): Promise<T> {
    let t: Tx | undefined;
    const t0 = performance.now();
    const out = await withTx(
      this.pool,
      (c) => fn((t = { c, tenant, changed: new Set(), transitions: [], throttles: [] })),
      (c) => {
        if (!t || t.changed.size === 0) return undefined;
        let payload = `${tenant} ${[...t.changed].join(' ')}`;
        // Ids only; if ever too many for one NOTIFY, "*" tells listeners to recheck the tenant.
        if (payload.length > MAX_NOTIFY_BYTES) payload = `${tenant} *`;
        return `SELECT pg_notify('${NOTIFY_CHANNEL}', ${c.escapeLiteral(payload)})`;
      },
    );
    if (this.commitObservers.size > 0 && t) {
      const info: CommitInfo = { tenant, batchSize: 1, ms: performance.now() - t0, transitions: t.transitions, throttles: t.throttles };
      for (const o of this.commitObservers) {
        try {
          o(info);
        } catch {
          // An observer never fails a committed transaction.
        }
      }
    }
    return out;
  }

  /** Takes the tenant's next ledger position. Holds the head row lock to commit: positions are in commit order. */
  private async nextPos(t: Tx): Promise<string> {
    const { rows } = await t.c.query(NEXT_POS, [t.tenant]);
    return String(rows[0].pos);
  }

  private async lockJob(t: Tx, jobId: string): Promise<Job> {
    v.uuid(jobId, 'job_id');
    const { rows } = await t.c.query(`SELECT ${JOB_COLUMNS} FROM okit.jobs WHERE id = $1 AND tenant = $2 FOR UPDATE`, [jobId, t.tenant]);
    if (rows.length === 0) throw new OkitError('JOB_NOT_FOUND', `job ${jobId} not found`, { job_id: jobId });
    return toJob(rows[0]);
  }

  /**
   * Appends one history row for `job`, rewrites its snapshot and updates the job row.
   * `set` carries the other job columns this transition changes; `history` is the job's
   * history when the caller has already read it.
   */
  private async transition(
    t: Tx,
    job: Job,
    event: JobEvent,
    to: JobState,
    data: { [k: string]: Json },
    now: Micros,
    set: Record<string, unknown> = {},
    history?: HistoryRow[],
  ): Promise<{ row: HistoryRow; snapshot: Snapshot }> {
    if (!isAllowed(event, job.state, to))
      throw new OkitError('ILLEGAL_TRANSITION', `job ${job.id}: ${event} is not allowed from ${job.state} to ${to}`, {
        job_id: job.id,
        event,
        from: job.state,
        to,
      });
    // Everything that needs no ledger position happens before the head is locked.
    const hist = history ?? (await this.readHistory(t.c, job.id));
    const row = chainRow(t.tenant, await this.nextPos(t), job.id, job, event, to, data, now);
    const snapshot = project([...hist, row]);
    const cols = { ...set, state: to, updated_at: row.at, history_n: row.n, last_hash: row.hash };
    const keys = Object.keys(cols);
    const params: unknown[] = [...historyParams(row), ...snapshotParams(snapshot), ...keys.map((k) => (cols as Record<string, unknown>)[k])];
    // History row, job row and snapshot in one statement: one round trip while the head is locked.
    await t.c.query(`${WITH_ROW_AND_SNAPSHOT} UPDATE okit.jobs SET ${keys.map((k, i) => `${k} = $${i + 27}`).join(', ')} WHERE id = $3`, params);
    t.changed.add(job.id);
    t.transitions.push({ jobId: job.id, type: job.type, createdAt: job.created_at, event, to, at: row.at, data: row.data });
    return { row, snapshot };
  }

  private async readHistory(c: pg.PoolClient | Pool, jobId: string): Promise<HistoryRow[]> {
    const { rows } = await c.query(`SELECT ${HISTORY_COLUMNS} FROM okit.job_history WHERE job_id = $1 ORDER BY n`, [jobId]);
    return rows.map(toHistory);
  }

  // ---------------------------------------------------------------- sources and throttles

  async createSource(tenant: string, input: { name: string; host: string; id?: string }): Promise<Source> {
    v.tenant(tenant);
    const name = v.text(input.name, 'name', 200)!;
    const host = v.host(input.host);
    const id = input.id ? v.uuid(input.id) : this.ids();
    const at = formatMicros(this.clock.now());
    const { rows } = await this.pool
      .query(
        `INSERT INTO okit.sources (id, tenant, name, host, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant, name) DO UPDATE SET name = EXCLUDED.name
         RETURNING id, tenant, name, host, created_at`,
        [id, tenant, name, host, at],
      )
      .catch((e) => rethrowIdTaken(e, id));
    const r = rows[0];
    if (r.host !== host) throw new OkitError('INVALID_INPUT', `source ${name} already exists with host ${r.host}`);
    return { id: r.id, tenant: r.tenant, name: r.name, host: r.host, created_at: ts(r.created_at) };
  }

  async getSource(tenant: string, id: string): Promise<Source> {
    v.tenant(tenant);
    v.uuid(id, 'source_id');
    const { rows } = await this.pool.query('SELECT id, tenant, name, host, created_at FROM okit.sources WHERE id = $1 AND tenant = $2', [id, tenant]);
    if (!rows[0]) throw new OkitError('SOURCE_NOT_FOUND', `source ${id} not found`);
    return { ...rows[0], created_at: ts(rows[0].created_at) };
  }

  /** Sets a host's token bucket (capacity, refill per second); a full bucket to start. */
  async configureThrottle(tenant: string, hostName: string, cfg: { capacity: number; refillPerSec: number }): Promise<void> {
    v.tenant(tenant);
    const host = v.host(hostName);
    // Bounds of the columns: tokens and refill are numeric(12,6), so below 10^6.
    const capacity = v.num(cfg.capacity, 'capacity', 1, 999999);
    const refill = v.num(cfg.refillPerSec, 'refill_per_sec', 0.000001, 999999);
    const now = this.clock.now();
    await this.tx(tenant, async (t) => {
      await t.c.query(
        `INSERT INTO okit.throttles (tenant, host, capacity, base_refill_per_sec, refill_per_sec, tokens, updated_at, penalty_until)
         VALUES ($1, $2, $3, $4, $4, $3, $5, NULL)
         ON CONFLICT (tenant, host) DO UPDATE SET capacity = $3, base_refill_per_sec = $4, refill_per_sec = $4,
           tokens = LEAST(okit.throttles.tokens, $3), updated_at = $5, penalty_until = NULL`,
        [tenant, host, capacity, refill, formatMicros(now)],
      );
      await this.throttleEvent(t, host, 'configured', { capacity: String(capacity), refill_per_sec: String(refill) }, now);
    });
  }

  private async throttleEvent(t: Tx, host: string, event: string, data: { [k: string]: Json }, now: Micros): Promise<void> {
    // No hash depends on a throttle event's position: take it and insert in one round trip.
    await t.c.query(
      `WITH p AS (${NEXT_POS})
       INSERT INTO okit.throttle_events (tenant, pos, host, at, event, data) VALUES ($1, (SELECT pos FROM p), $2, $3, $4, $5)`,
      [t.tenant, host, formatMicros(now), event, canonicalize(data)],
    );
    t.throttles.push({ host, event });
  }

  private async lockBucket(t: Tx, host: string): Promise<Bucket | null> {
    const { rows } = await t.c.query(
      `SELECT capacity, base_refill_per_sec, refill_per_sec, tokens, updated_at, penalty_until
       FROM okit.throttles WHERE tenant = $1 AND host = $2 FOR UPDATE`,
      [t.tenant, host],
    );
    return rows[0] ? toBucket(rows[0]) : null;
  }

  private async saveBucket(t: Tx, host: string, b: Bucket): Promise<void> {
    await t.c.query(
      `UPDATE okit.throttles SET tokens = $3, refill_per_sec = $4, updated_at = $5, penalty_until = $6 WHERE tenant = $1 AND host = $2`,
      [t.tenant, host, fromMicroUnits(b.tokens), fromMicroUnits(b.refill), formatMicros(b.updatedAt), b.penaltyUntil === null ? null : formatMicros(b.penaltyUntil)],
    );
  }

  /**
   * A worker saw the upstream throttle us (an HTTP 429 with Retry-After, say): empty the bucket,
   * pause refill for retryAfter, halve the refill rate (it recovers additively on later claims).
   */
  async reportThrottle(tenant: string, hostName: string, input: { retryAfterSeconds: number; status?: number; workerId?: string }): Promise<void> {
    v.tenant(tenant);
    const host = v.host(hostName);
    const retryAfter = v.num(input.retryAfterSeconds, 'retry_after_seconds', 0, 86400);
    const status = v.int(input.status, 'status', 100, 599, 429);
    const worker = input.workerId ? v.workerId(input.workerId) : undefined;
    const now = this.clock.now();
    await this.tx(tenant, async (t) => {
      let b = await this.lockBucket(t, host);
      if (!b) {
        const d = this.opts.defaultBucket;
        await t.c.query(
          // Two first reports for a new host may race: the loser locks the winner's row.
          `INSERT INTO okit.throttles (tenant, host, capacity, base_refill_per_sec, refill_per_sec, tokens, updated_at)
           VALUES ($1, $2, $3, $4, $4, $3, $5) ON CONFLICT (tenant, host) DO NOTHING`,
          [tenant, host, d.capacity, d.refillPerSec, formatMicros(now)],
        );
        b = (await this.lockBucket(t, host))!;
      }
      const before = b.refill;
      const after = penalise(b, now, secondsToMicros(retryAfter));
      await this.saveBucket(t, host, after);
      await this.throttleEvent(
        t,
        host,
        'upstream_throttled',
        {
          status,
          retry_after_seconds: String(retryAfter),
          refill_before: fromMicroUnits(before),
          refill_after: fromMicroUnits(after.refill),
          penalty_until: formatMicros(after.penaltyUntil!),
          ...(worker ? { worker_id: worker } : {}),
        },
        now,
      );
    });
  }

  // ---------------------------------------------------------------- jobs

  async enqueue(tenant: string, input: EnqueueInput): Promise<{ job: Job; created: boolean }> {
    v.tenant(tenant);
    const type = v.jobType(input.type);
    const { value: payload, canonical } = v.payload(input.payload);
    const payloadSha = sha256Hex(canonical);
    const priority = v.int(input.priority, 'priority', -1000, 1000, 0);
    const maxAttempts = v.int(input.maxAttempts, 'max_attempts', 1, 100, this.opts.defaultMaxAttempts);
    const key = v.text(input.idempotencyKey, 'idempotency_key', v.MAX_IDEMPOTENCY_KEY_CHARS, true);
    // Only absence (undefined or null) means "none": 0, false or "" are wrong types, refused.
    const sourceId = input.sourceId != null ? v.uuid(input.sourceId, 'source_id') : null;
    const runId = input.runId != null ? v.uuid(input.runId, 'run_id') : null;
    const id = input.id != null ? v.uuid(input.id) : this.ids();
    const notBefore = input.notBefore != null ? parseMicros(v.timestamp(input.notBefore, 'not_before')) : null;

    if (key) {
      const existing = await this.byIdempotencyKey(tenant, key, payloadSha);
      if (existing) return { job: existing, created: false };
    }
    const now = this.clock.now();
    try {
      const job = await this.tx(tenant, async (t) => {
        let source: Source | null = null;
        if (sourceId) {
          const { rows } = await t.c.query('SELECT id, tenant, name, host, created_at FROM okit.sources WHERE id = $1 AND tenant = $2', [sourceId, tenant]);
          if (!rows[0]) throw new OkitError('SOURCE_NOT_FOUND', `source ${sourceId} not found`);
          source = rows[0];
        }
        // A run is (tenant, id): another tenant's run of the same id is another run, so a run
        // id tells nothing about other tenants and cannot be squatted (migration 005).
        if (runId)
          await t.c.query('INSERT INTO okit.runs (id, tenant, source_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, id) DO NOTHING', [
            runId,
            tenant,
            sourceId,
            formatMicros(now),
          ]);
        // Counting is O(queue length), so it stops at queuePositionCap: past that the signal
        // says "more than N ahead" rather than every enqueue paying for a long queue.
        const ahead = await t.c.query(
          `SELECT count(*)::int AS n FROM (SELECT 1 FROM okit.jobs WHERE tenant = $1 AND type = $2 AND state IN ('queued', 'throttled') LIMIT $3) q`,
          [tenant, type, this.opts.queuePositionCap],
        );
        const nAhead = Number(ahead.rows[0].n);
        const last = await t.c.query(
          `SELECT id, state, updated_at FROM okit.jobs
           WHERE tenant = $1 AND type = $2 AND state IN ('succeeded', 'failed', 'dead_letter', 'canceled')
           ORDER BY updated_at DESC, id DESC LIMIT 1`,
          [tenant, type],
        );
        const lko = last.rows[0] ? { job_id: last.rows[0].id, status: last.rows[0].state, finished_at: ts(last.rows[0].updated_at) } : null;
        const nb = formatMicros(notBefore ?? now);
        const data: { [k: string]: Json } = {
          type,
          priority,
          max_attempts: maxAttempts,
          run_id: runId,
          source: source ? { id: source.id, name: source.name, host: source.host } : null,
          payload_sha256: payloadSha,
          idempotency_key: key,
          not_before: nb,
          queue_position: nAhead < this.opts.queuePositionCap ? nAhead + 1 : null,
          last_known_outcome: lko,
        };
        if (nAhead >= this.opts.queuePositionCap) data.queue_ahead_at_least = this.opts.queuePositionCap;
        // The job row needs its first hash, so the history row is computed first.
        const row = chainRow(tenant, await this.nextPos(t), id, null, 'enqueued', 'queued', data, now);
        const { rows } = await t.c.query(
          `${WITH_ROW_AND_SNAPSHOT}
           INSERT INTO okit.jobs (id, tenant, run_id, source_id, type, payload, payload_sha256, idempotency_key, priority,
             max_attempts, attempt, state, not_before, created_at, updated_at, history_n, last_hash)
           VALUES ($3, $1, $27, $28, $29, $30, $31, $32, $33, $34, 0, 'queued', $35, $5, $5, 1, $11) RETURNING ${JOB_COLUMNS}`,
          [...historyParams(row), ...snapshotParams(project([row])), runId, sourceId, type, canonical, payloadSha, key, priority, maxAttempts, nb],
        );
        t.changed.add(id);
        t.transitions.push({ jobId: id, type, createdAt: row.at, event: 'enqueued', to: 'queued', at: row.at, data: row.data });
        return toJob(rows[0]);
      });
      return { job, created: true };
    } catch (e) {
      // Lost a race on the same idempotency key: the winner's job is the answer.
      if (key && (e as { code?: string }).code === '23505') {
        const existing = await this.byIdempotencyKey(tenant, key, payloadSha);
        if (existing) return { job: existing, created: false };
      }
      if ((e as { code?: string }).code === '23505' && input.id)
        throw new OkitError('INVALID_INPUT', `job id ${id} already exists`, { job_id: id });
      throw e;
    }
  }

  private async byIdempotencyKey(tenant: string, key: string, payloadSha: string): Promise<Job | null> {
    const { rows } = await this.pool.query(`SELECT ${JOB_COLUMNS} FROM okit.jobs WHERE tenant = $1 AND idempotency_key = $2`, [tenant, key]);
    if (!rows[0]) return null;
    const job = toJob(rows[0]);
    if (job.payload_sha256 !== payloadSha)
      throw new OkitError('IDEMPOTENCY_CONFLICT', `idempotency key ${JSON.stringify(key)} was used for job ${job.id} with a different payload`, {
        job_id: job.id,
      });
    return job;
  }

  /**
   * Claims the best ready job of the given types (priority, then not_before, then age) with
   * FOR UPDATE SKIP LOCKED. A job whose source host has an empty token bucket is moved to
   * throttled (with the expected wait) and the next candidate is tried.
   */
  async claim(tenant: string, input: ClaimInput): Promise<ClaimedJob | null> {
    v.tenant(tenant);
    const worker = v.workerId(input.workerId);
    if (!Array.isArray(input.types) || input.types.length === 0 || input.types.length > 50)
      throw new OkitError('INVALID_INPUT', 'types: must list 1 to 50 job types', { field: 'types' });
    const types = input.types.map((x) => v.jobType(x, 'types'));
    const leaseSeconds = v.int(input.leaseSeconds, 'lease_seconds', 1, 3600, this.opts.defaultLeaseSeconds);
    for (let tries = 0; tries < 25; tries++) {
      const now = this.clock.now();
      const out = await this.tx(tenant, async (t): Promise<ClaimedJob | null | 'again'> => {
        const { rows } = await t.c.query(
          `SELECT ${CLAIM_COLUMNS}, s.host
           FROM okit.jobs j LEFT JOIN okit.sources s ON s.id = j.source_id
           WHERE j.tenant = $1 AND j.type = ANY($2) AND j.state IN ('queued', 'throttled') AND j.not_before <= $3
           ORDER BY j.priority DESC, j.not_before, j.created_at, j.id
           LIMIT 1 FOR UPDATE OF j SKIP LOCKED`,
          [tenant, types, formatMicros(now)],
        );
        if (!rows[0]) return null;
        const job = toJob(rows[0]);
        const host: string | null = rows[0].host ?? null;
        // Read before any position is taken: a restored bucket's event takes the head lock first.
        const history = await this.readHistory(t.c, job.id);
        if (host) {
          const bucket = await this.lockBucket(t, host);
          if (bucket) {
            const r = consumeToken(bucket, now);
            await this.saveBucket(t, host, r.bucket);
            if (!r.ok) {
              const until = now + r.waitUs;
              await this.transition(
                t,
                job,
                'throttled',
                'throttled',
                {
                  host,
                  throttled_until: formatMicros(until),
                  wait_seconds: microsToSeconds(r.waitUs),
                  tokens: fromMicroUnits(r.bucket.tokens),
                },
                now,
                { not_before: formatMicros(until) },
                history,
              );
              return 'again';
            }
            if (r.restored)
              await this.throttleEvent(t, host, 'refill_restored', { refill_per_sec: fromMicroUnits(r.bucket.refill) }, now);
          }
        }
        const attempt = job.attempt + 1;
        const leaseUntil = formatMicros(now + BigInt(leaseSeconds) * SECOND);
        // Random, never in history (which readers see) nor in the job row's public columns.
        const leaseToken = randomBytes(16).toString('base64url');
        const { row } = await this.transition(
          t,
          job,
          'claimed',
          'running',
          { worker_id: worker, attempt, lease_expires_at: leaseUntil },
          now,
          { attempt, lease_owner: worker, lease_expires_at: leaseUntil, lease_token: leaseToken },
          history,
        );
        return {
          job: { ...job, state: 'running', attempt, lease_owner: worker, lease_expires_at: leaseUntil, history_n: row.n, last_hash: row.hash, updated_at: row.at },
          leaseExpiresAt: leaseUntil,
          attempt,
          leaseToken,
        };
      });
      if (out !== 'again') return out;
    }
    return null;
  }

  private async lockLease(t: Tx, jobId: string, worker: string, token: string | null): Promise<Job> {
    v.uuid(jobId, 'job_id');
    const { rows } = await t.c.query(`SELECT ${JOB_COLUMNS}, lease_token FROM okit.jobs WHERE id = $1 AND tenant = $2 FOR UPDATE`, [jobId, t.tenant]);
    if (rows.length === 0) throw new OkitError('JOB_NOT_FOUND', `job ${jobId} not found`, { job_id: jobId });
    const job = toJob(rows[0]);
    if (job.state !== 'running')
      throw new OkitError('ILLEGAL_TRANSITION', `job ${jobId} is ${job.state}, not running`, { job_id: jobId, state: job.state });
    if (job.lease_owner !== worker)
      throw new OkitError('LEASE_NOT_HELD', `job ${jobId} is leased by another worker`, { job_id: jobId });
    if (token !== null && !constantTimeEqual(String(rows[0].lease_token ?? ''), token))
      throw new OkitError('LEASE_NOT_HELD', `job ${jobId}: this lease token is not the current lease's (the job was claimed again since)`, { job_id: jobId });
    return job;
  }

  /** Extends a lease. Not a signal change: no history row, no NOTIFY. */
  async heartbeat(tenant: string, jobId: string, holder: LeaseHolder, leaseSecondsIn?: number): Promise<{ leaseExpiresAt: string }> {
    v.tenant(tenant);
    const { worker, token } = leaseOf(holder);
    const leaseSeconds = v.int(leaseSecondsIn, 'lease_seconds', 1, 3600, this.opts.defaultLeaseSeconds);
    const now = this.clock.now();
    return this.tx(tenant, async (t) => {
      const job = await this.lockLease(t, jobId, worker, token);
      if (job.lease_expires_at && parseMicros(job.lease_expires_at) < now)
        throw new OkitError('LEASE_NOT_HELD', `job ${jobId}: the lease expired at ${job.lease_expires_at}`, { job_id: jobId });
      const until = formatMicros(now + BigInt(leaseSeconds) * SECOND);
      await t.c.query('UPDATE okit.jobs SET lease_expires_at = $2 WHERE id = $1', [jobId, until]);
      return { leaseExpiresAt: until };
    });
  }

  async progress(tenant: string, jobId: string, holder: LeaseHolder, input: ProgressInput): Promise<Snapshot> {
    v.tenant(tenant);
    const { worker, token } = leaseOf(holder);
    const data: { [k: string]: Json } = { worker_id: worker, phase: v.phase(input.phase) };
    const summary = v.text(input.summary, 'summary', v.MAX_SUMMARY_CHARS, true);
    if (summary) data.summary = summary;
    if (input.itemsTotal !== undefined && input.itemsTotal !== null) data.items_total = v.int(input.itemsTotal, 'items_total', 0, v.MAX_ITEMS);
    if (input.itemsDone !== undefined && input.itemsDone !== null) data.items_done = v.int(input.itemsDone, 'items_done', 0, v.MAX_ITEMS);
    if (typeof data.items_done === 'number' && typeof data.items_total === 'number' && data.items_done > data.items_total)
      throw new OkitError('INVALID_INPUT', `items_done: must not exceed items_total (${data.items_total})`, { field: 'items_done' });
    const now = this.clock.now();
    return this.tx(tenant, async (t) => {
      const job = await this.lockLease(t, jobId, worker, token);
      return (await this.transition(t, job, 'progress', 'running', data, now)).snapshot;
    });
  }

  async complete(tenant: string, jobId: string, holder: LeaseHolder, result?: unknown): Promise<Snapshot> {
    v.tenant(tenant);
    const { worker, token } = leaseOf(holder);
    const data: { [k: string]: Json } = { worker_id: worker };
    if (result !== undefined && result !== null) {
      if (typeof result !== 'object' || Array.isArray(result)) throw new OkitError('INVALID_INPUT', 'result: must be a JSON object', { field: 'result' });
      // Bytes of canonical JSON (UTF-8), as documented: it travels in history.
      data.result = v.payload(result, 'result', v.MAX_RESULT_BYTES).value;
    }
    const now = this.clock.now();
    return this.tx(tenant, async (t) => {
      const job = await this.lockLease(t, jobId, worker, token);
      return (await this.transition(t, job, 'succeeded', 'succeeded', data, now, NO_LEASE)).snapshot;
    });
  }

  /** Retry delay: base·2^(attempt-1) capped, with ±10 % jitter derived from (job, attempt) so replays agree. */
  backoffMicros(jobId: string, attempt: number): Micros {
    const raw = Math.min(this.opts.backoffCapSeconds, this.opts.backoffBaseSeconds * 2 ** Math.max(0, attempt - 1));
    const h = createHash('sha256').update(`${jobId}:${attempt}`).digest();
    const jitter = (h.readUInt32BE(0) / 0xffffffff) * 0.2 - 0.1;
    return BigInt(Math.round(raw * (1 + jitter) * 1e6));
  }

  async fail(tenant: string, jobId: string, holder: LeaseHolder, input: FailInput): Promise<Snapshot> {
    v.tenant(tenant);
    const { worker, token } = leaseOf(holder);
    const error = { code: v.errorCode(input?.code), message: v.text(input?.message, 'error.message', v.MAX_ERROR_MESSAGE_CHARS)! };
    const retryable = input.retryable === undefined ? true : input.retryable;
    if (typeof retryable !== 'boolean') throw new OkitError('INVALID_INPUT', 'retryable: must be a boolean', { field: 'retryable' });
    const now = this.clock.now();
    return this.tx(tenant, async (t) => {
      const job = await this.lockLease(t, jobId, worker, token);
      const clear = NO_LEASE;
      const base = { worker_id: worker, attempt: job.attempt, error };
      if (retryable && job.attempt < job.max_attempts) {
        const delay = this.backoffMicros(jobId, job.attempt);
        const retryAt = formatMicros(now + delay);
        return (
          await this.transition(t, job, 'retry_scheduled', 'queued', { ...base, retry_at: retryAt, backoff_seconds: microsToSeconds(delay) }, now, {
            ...clear,
            not_before: retryAt,
          })
        ).snapshot;
      }
      const history = await this.readHistory(t.c, job.id);
      const signature = await this.matchSignature(t, job, error.code, history);
      const data: { [k: string]: Json } = { ...base, retryable };
      if (signature) data.signature = signature;
      const event = retryable ? 'dead_lettered' : 'failed';
      return (await this.transition(t, job, event, retryable ? 'dead_letter' : 'failed', data, now, clear, history)).snapshot;
    });
  }

  /** The most confident enabled failure signature whose pattern the failure's facts contain. */
  private async matchSignature(t: Tx, job: Job, code: string, history: HistoryRow[]): Promise<{ [k: string]: Json } | null> {
    const lastPhase = [...history].reverse().find((r) => r.event === 'progress')?.data.phase ?? 'unknown';
    const facts = { error_code: code, phase: lastPhase, type: job.type };
    const { rows } = await t.c.query(
      `SELECT id, outcome FROM okit.failure_signatures
       WHERE tenant = $1 AND enabled AND $2::jsonb @> pattern ORDER BY confidence DESC, id LIMIT 1`,
      [t.tenant, canonicalize(facts)],
    );
    if (!rows[0]) return null;
    return { id: rows[0].id, ...(JSON.parse(rows[0].outcome) as { [k: string]: Json }) };
  }

  async addFailureSignature(
    tenant: string,
    input: { pattern: { [k: string]: Json }; outcome: { likely_cause: string; suggested_action?: string; mttr_p50_seconds?: number }; confidence?: number; id?: string },
  ): Promise<string> {
    v.tenant(tenant);
    const pattern = v.payload(input.pattern, 'pattern');
    const outcome = v.payload(input.outcome, 'outcome');
    const id = input.id ? v.uuid(input.id) : this.ids();
    const confidence = input.confidence === undefined ? 0.5 : v.num(input.confidence, 'confidence', 0, 1);
    // The same pattern again updates the stored signature, which keeps its id: return that one.
    const { rows } = await this.pool
      .query(
        `INSERT INTO okit.failure_signatures (id, tenant, signature_sha256, pattern, outcome, confidence, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, signature_sha256) DO UPDATE SET outcome = EXCLUDED.outcome, confidence = EXCLUDED.confidence
         RETURNING id`,
        [id, tenant, sha256Hex(pattern.canonical), pattern.canonical, outcome.canonical, confidence, formatMicros(this.clock.now())],
      )
      .catch((e) => rethrowIdTaken(e, id));
    return rows[0].id;
  }

  async cancel(tenant: string, jobId: string, input: { actor: string; reason?: string | null }): Promise<Snapshot> {
    v.tenant(tenant);
    const actor = v.text(input?.actor, 'actor', 100)!;
    const reason = v.text(input?.reason, 'reason', v.MAX_REASON_CHARS, true);
    const now = this.clock.now();
    return this.tx(tenant, async (t) => {
      const job = await this.lockJob(t, jobId);
      if (TERMINAL_STATES.has(job.state))
        throw new OkitError('ILLEGAL_TRANSITION', `job ${jobId} is already ${job.state}`, { job_id: jobId, state: job.state });
      return (
        await this.transition(t, job, 'canceled', 'canceled', { actor, reason }, now, NO_LEASE)
      ).snapshot;
    });
  }

  /**
   * Returns running jobs whose lease ran out to the queue (the attempt stays counted), or
   * dead-letters them when that was their last attempt. Each job in its own transaction.
   */
  async expireLeases(opts: { tenant?: string; limit?: number } = {}): Promise<number> {
    const now = this.clock.now();
    const { rows } = await this.pool.query(
      `SELECT id, tenant FROM okit.jobs WHERE state = 'running' AND lease_expires_at < $1 ${opts.tenant ? 'AND tenant = $3' : ''}
       ORDER BY lease_expires_at, id LIMIT $2`,
      opts.tenant ? [formatMicros(now), opts.limit ?? 500, v.tenant(opts.tenant)] : [formatMicros(now), opts.limit ?? 500],
    );
    let n = 0;
    for (const r of rows) {
      const done = await this.tx(r.tenant, async (t) => {
        const { rows: locked } = await t.c.query(`SELECT ${JOB_COLUMNS} FROM okit.jobs WHERE id = $1 FOR UPDATE SKIP LOCKED`, [r.id]);
        if (!locked[0]) return false;
        const job = toJob(locked[0]);
        if (job.state !== 'running' || !job.lease_expires_at || parseMicros(job.lease_expires_at) >= now) return false;
        const last = job.attempt >= job.max_attempts;
        await this.transition(
          t,
          job,
          'lease_expired',
          last ? 'dead_letter' : 'queued',
          { worker_id: job.lease_owner, attempt: job.attempt, lease_expires_at: job.lease_expires_at },
          now,
          { ...NO_LEASE, ...(last ? {} : { not_before: formatMicros(now) }) },
        );
        return true;
      });
      if (done) n++;
    }
    return n;
  }

  // ---------------------------------------------------------------- reads

  async getJob(tenant: string, jobId: string): Promise<Job> {
    v.tenant(tenant);
    v.uuid(jobId, 'job_id');
    const { rows } = await this.pool.query(`SELECT ${JOB_COLUMNS} FROM okit.jobs WHERE id = $1 AND tenant = $2`, [jobId, tenant]);
    if (!rows[0]) throw new OkitError('JOB_NOT_FOUND', `job ${jobId} not found`, { job_id: jobId });
    return toJob(rows[0]);
  }

  async getSnapshot(tenant: string, jobId: string): Promise<Snapshot> {
    v.tenant(tenant);
    v.uuid(jobId, 'job_id');
    const { rows } = await this.pool.query(`SELECT ${SNAPSHOT_COLUMNS} FROM okit.first_signal_snapshots WHERE job_id = $1 AND tenant = $2`, [jobId, tenant]);
    if (!rows[0]) throw new OkitError('JOB_NOT_FOUND', `job ${jobId} not found`, { job_id: jobId });
    return toSnapshot(rows[0]);
  }

  /** Snapshots of several jobs of one tenant in one query; absent or foreign jobs are simply missing. */
  async getSnapshots(tenant: string, jobIds: readonly string[]): Promise<Map<string, Snapshot>> {
    v.tenant(tenant);
    for (const id of jobIds) v.uuid(id, 'job_id');
    const out = new Map<string, Snapshot>();
    if (jobIds.length === 0) return out;
    const { rows } = await this.pool.query(`SELECT ${SNAPSHOT_COLUMNS} FROM okit.first_signal_snapshots WHERE tenant = $1 AND job_id = ANY($2::uuid[])`, [
      tenant,
      jobIds,
    ]);
    for (const r of rows) {
      const s = toSnapshot(r);
      out.set(s.job_id, s);
    }
    return out;
  }

  async history(tenant: string, jobId: string): Promise<HistoryRow[]> {
    await this.getJob(tenant, jobId);
    return this.readHistory(this.pool, jobId);
  }
}

/** The job columns a transition out of `running` clears. */
const NO_LEASE = { lease_owner: null, lease_expires_at: null, lease_token: null } as const;

function leaseOf(h: LeaseHolder): { worker: string; token: string | null } {
  if (h !== null && typeof h === 'object') return { worker: v.workerId(h.workerId), token: v.leaseToken(h.leaseToken) };
  return { worker: v.workerId(h), token: null };
}

/** A caller-chosen id that is already a primary key (any tenant's) is bad input, not a crash. */
function rethrowIdTaken(e: unknown, id: string): never {
  const err = e as { code?: string; constraint?: string };
  if (err.code === '23505' && err.constraint?.endsWith('_pkey')) throw new OkitError('INVALID_INPUT', `id ${id} is already taken`, { field: 'id' });
  throw e;
}

/** Takes the tenant's next ledger position (and with it the head row lock, held to commit). */
const NEXT_POS = `INSERT INTO okit.ledger_heads (tenant, pos) VALUES ($1, 1)
  ON CONFLICT (tenant) DO UPDATE SET pos = okit.ledger_heads.pos + 1 RETURNING pos`;

const CLAIM_COLUMNS = JOB_COLUMNS.split(', ')
  .map((c) => 'j.' + c)
  .join(', ');

/** The next history row of a job (`prev` null for its first), hash-chained to the one before. */
function chainRow(tenant: string, pos: string, jobId: string, prev: Job | null, event: JobEvent, to: JobState, data: { [k: string]: Json }, now: Micros): HistoryRow {
  const base = {
    tenant,
    pos,
    job_id: jobId,
    n: prev ? prev.history_n + 1 : 1,
    at: formatMicros(now),
    event,
    from_state: prev ? prev.state : null,
    to_state: to,
    data: JSON.parse(canonicalize(data)) as { [k: string]: Json },
    prev_hash: prev ? prev.last_hash : null,
  };
  return { ...base, hash: rowHash(base) };
}

const UPSERT_SNAPSHOT = `INSERT INTO okit.first_signal_snapshots (${SNAPSHOT_COLUMNS})
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
  ON CONFLICT (job_id) DO UPDATE SET kind = $4, phase = $5, summary = $6, eta_seconds = $7, last_known_outcome = $8,
    next_actions = $9, diagnostics = $10, source = $11, history_n = $12, history_hash = $13, updated_at = $15`;

/** History row ($1..$11) and snapshot ($12..$26) as CTEs; the statement that follows numbers its own parameters from $27. */
const WITH_ROW_AND_SNAPSHOT = `WITH h AS (${INSERT_HISTORY}), s AS (${UPSERT_SNAPSHOT.replace(/\$(\d+)/g, (_, d) => '$' + (Number(d) + 11))})`;

function snapshotParams(s: Snapshot): unknown[] {
  return [
    s.job_id,
    s.tenant,
    s.run_id,
    s.kind,
    s.phase,
    s.summary,
    s.eta_seconds,
    s.last_known_outcome === null ? null : canonicalize(s.last_known_outcome),
    s.next_actions === null ? null : canonicalize(s.next_actions),
    canonicalize(s.diagnostics),
    s.source,
    s.history_n,
    s.history_hash,
    s.created_at,
    s.updated_at,
  ];
}

export async function writeSnapshot(c: pg.PoolClient | pg.Client | Pool, s: Snapshot): Promise<void> {
  await c.query(UPSERT_SNAPSHOT, snapshotParams(s));
}

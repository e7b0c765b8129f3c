/**
 * The batching writer: the only code that takes a tenant's ledger head lock.
 *
 * Group commit. Concurrent changes of one tenant (units: a transition, an enqueue of one or
 * many jobs, a claim of up to N jobs, a throttle event) are written in one transaction, a batch:
 *
 *   BEGIN → the units' reads, batched, before the lock (batch.ts) → head += positions (the lock)
 *   → one statement writes every history row, throttle event, job row, snapshot and bucket of
 *   the batch, with one NOTIFY → COMMIT
 *
 * so the head is locked for three round trips per batch instead of per change, and a batch's
 * positions are contiguous, in the order its rows are written. Several processes on one
 * database interleave whole batches: the head row stays the one serialisation point.
 *
 * Scheduling, per tenant: a unit joins the tenant's open batch. A batch starts at once (on the
 * next event-loop turn, which gathers the units submitted in this one) while fewer than
 * `batchesInFlight` batches of the tenant are running: an idle tenant adds no latency. Otherwise
 * it collects units until a batch finishes, until it holds `batchMaxSize` rows' worth of units,
 * or for at most `batchMaxWaitMs`, whichever comes first. Two batches in flight let one do its
 * reads while the other holds the head.
 *
 * Failures. A unit's own refusal (bad state, lease not held, not found: an OkitError raised
 * before it recorded anything) fails only that unit's caller. Any other error, a database
 * error in any statement above, rolls the batch back and its units are retried one by one, each
 * in a batch of its own, so one bad unit never fails its neighbours; a lone unit's database
 * error reaches its caller as a typed error (DB_UNAVAILABLE, WRITE_REFUSED). If the connection
 * is lost during COMMIT, the writer looks for the batch's first row in the ledger (position and
 * hash) before it decides between "committed" and "retry": nothing is written twice or half.
 */
import { isOkitError, OkitError } from '../errors.js';
import { isDbUnavailable } from '../db/errors.js';
import type { Pool, PoolClient } from '../db/pool.js';
import { Batch, Deferred, type UnitView } from './batch.js';

export const NOTIFY_CHANNEL = 'okit_signal';
/** NOTIFY payloads must stay under 8000 bytes; past this many, listeners get "<tenant> *". */
export const MAX_NOTIFY_BYTES = 7000;

/** A unit of work for one batch. `run` reads and records; the function it returns gives the caller's answer after COMMIT. */
export interface Unit<R> {
  /** Rows it may write, at most: bounds the batch size. */
  weight: number;
  run(b: UnitView): Promise<() => R>;
}

export interface BatchStats {
  tenant: string;
  /** Units in the batch (callers served together). */
  units: number;
  /** Ledger positions taken (history rows + throttle events). */
  positions: number;
  /** From BEGIN to the end of COMMIT (or ROLLBACK), ms. */
  txMs: number;
  /** From the head update to the end of COMMIT, ms (0 when nothing took a position). */
  lockedMs: number;
  /** true: rolled back; its units are retried one by one (each then reports a batch of its own). */
  failed: boolean;
  /** true for a batch that is a one-by-one retry. */
  retry: boolean;
}

export interface WriterOptions {
  /** Rows per batch, at most (a unit bigger than this runs alone). Default 100. */
  batchMaxSize?: number;
  /** How long an open batch waits for a free slot before it starts anyway, ms. Default 5. */
  batchMaxWaitMs?: number;
  /** Batches of one tenant running at once in this process. Default 2. */
  batchesInFlight?: number;
  /** Called after every batch transaction, for metrics (batch sizes, transaction and lock times). */
  onBatch?: (s: BatchStats) => void;
}

interface Member {
  unit: Unit<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface TenantQueue {
  tenant: string;
  open: Member[];
  weight: number;
  inFlight: number;
  scheduled: boolean;
  timer: NodeJS.Timeout | null;
}

/** Takes `n` positions: the head row is locked from here to COMMIT, so positions are in commit order. */
const TAKE_POSITIONS = `INSERT INTO okit.ledger_heads (tenant, pos) VALUES ($1, $2::int8)
  ON CONFLICT (tenant) DO UPDATE SET pos = okit.ledger_heads.pos + $2::int8 RETURNING pos`;

/** Every row of a batch in one statement; parameters from Batch.writeParams(). */
const WRITE_BATCH = `WITH
h AS (INSERT INTO okit.job_history (tenant, pos, job_id, n, at, event, from_state, to_state, data, prev_hash, hash)
  SELECT $1, x.* FROM unnest($2::int8[], $3::uuid[], $4::int4[], $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::text[], $11::text[]) AS x),
e AS (INSERT INTO okit.throttle_events (tenant, pos, host, at, event, data)
  SELECT $1, x.* FROM unnest($12::int8[], $13::text[], $14::timestamptz[], $15::text[], $16::jsonb[]) AS x),
ji AS (INSERT INTO okit.jobs (id, tenant, run_id, source_id, type, payload, payload_sha256, idempotency_key, priority, max_attempts, attempt,
    state, not_before, lease_owner, lease_expires_at, created_at, updated_at, history_n, last_hash)
  SELECT x.id, $1, x.run_id, x.source_id, x.type, x.payload, x.payload_sha256, x.idempotency_key, x.priority, x.max_attempts, x.attempt,
    x.state, x.not_before, x.lease_owner, x.lease_expires_at, x.created_at, x.updated_at, x.history_n, x.last_hash
  FROM unnest($17::uuid[], $18::uuid[], $19::uuid[], $20::text[], $21::jsonb[], $22::text[], $23::text[], $24::int4[], $25::int4[], $26::int4[],
    $27::text[], $28::timestamptz[], $29::text[], $30::timestamptz[], $31::timestamptz[], $32::timestamptz[], $33::int4[], $34::text[])
    AS x(id, run_id, source_id, type, payload, payload_sha256, idempotency_key, priority, max_attempts, attempt,
      state, not_before, lease_owner, lease_expires_at, created_at, updated_at, history_n, last_hash)),
ju AS (UPDATE okit.jobs j SET attempt = x.attempt, state = x.state, not_before = x.not_before, lease_owner = x.lease_owner,
    lease_expires_at = x.lease_expires_at, updated_at = x.updated_at, history_n = x.history_n, last_hash = x.last_hash
  FROM unnest($35::uuid[], $36::int4[], $37::text[], $38::timestamptz[], $39::text[], $40::timestamptz[], $41::timestamptz[], $42::int4[], $43::text[])
    AS x(id, attempt, state, not_before, lease_owner, lease_expires_at, updated_at, history_n, last_hash)
  WHERE j.id = x.id),
s AS (INSERT INTO okit.first_signal_snapshots (job_id, tenant, run_id, kind, phase, summary, eta_seconds, last_known_outcome, next_actions,
    diagnostics, source, history_n, history_hash, created_at, updated_at)
  SELECT x.job_id, $1, x.run_id, x.kind, x.phase, x.summary, x.eta_seconds, x.last_known_outcome, x.next_actions,
    x.diagnostics, x.source, x.history_n, x.history_hash, x.created_at, x.updated_at
  FROM unnest($44::uuid[], $45::uuid[], $46::text[], $47::text[], $48::text[], $49::int4[], $50::jsonb[], $51::jsonb[], $52::jsonb[],
    $53::text[], $54::int4[], $55::text[], $56::timestamptz[], $57::timestamptz[])
    AS x(job_id, run_id, kind, phase, summary, eta_seconds, last_known_outcome, next_actions, diagnostics, source, history_n, history_hash, created_at, updated_at)
  ON CONFLICT (job_id) DO UPDATE SET kind = EXCLUDED.kind, phase = EXCLUDED.phase, summary = EXCLUDED.summary, eta_seconds = EXCLUDED.eta_seconds,
    last_known_outcome = EXCLUDED.last_known_outcome, next_actions = EXCLUDED.next_actions, diagnostics = EXCLUDED.diagnostics,
    source = EXCLUDED.source, history_n = EXCLUDED.history_n, history_hash = EXCLUDED.history_hash, updated_at = EXCLUDED.updated_at),
b AS (UPDATE okit.throttles t SET capacity = x.capacity, base_refill_per_sec = x.base, refill_per_sec = x.refill, tokens = x.tokens,
    updated_at = x.updated_at, penalty_until = x.penalty_until
  FROM unnest($58::text[], $59::numeric[], $60::numeric[], $61::numeric[], $62::numeric[], $63::timestamptz[], $64::timestamptz[])
    AS x(host, capacity, base, refill, tokens, updated_at, penalty_until)
  WHERE t.tenant = $1 AND t.host = x.host)
SELECT pg_notify('${NOTIFY_CHANNEL}', $65::text) WHERE $65::text IS NOT NULL`;

/** The ids of the jobs whose signal changed; "*" tells listeners to recheck the tenant when they do not fit. */
export function notifyPayload(tenant: string, ids: readonly string[]): string | null {
  if (ids.length === 0) return null;
  const payload = `${tenant} ${ids.join(' ')}`;
  return Buffer.byteLength(payload) > MAX_NOTIFY_BYTES ? `${tenant} *` : payload;
}

/** A lone unit's database error, as the caller sees it. */
export function typedDbError(e: unknown): unknown {
  if (isOkitError(e)) return e;
  if (isDbUnavailable(e)) return new OkitError('DB_UNAVAILABLE', 'the database is unavailable; retry shortly', { cause: messageOf(e) });
  const err = e as { code?: unknown; constraint?: unknown };
  // Data exceptions and integrity violations: Postgres refused what validation let through.
  if (typeof err.code === 'string' && /^2[23][0-9A-Z]{3}$/.test(err.code))
    return Object.assign(
      new OkitError('WRITE_REFUSED', `the database refused the change (${messageOf(e)}); nothing was written`, {
        sqlstate: err.code,
        ...(typeof err.constraint === 'string' ? { constraint: err.constraint } : {}),
      }),
      { cause: e },
    );
  return e;
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));
const isRetryable = (e: unknown) => typeof (e as { code?: unknown })?.code === 'string' && /^40(001|P01)$/.test((e as { code: string }).code);

export class BatchWriter {
  private readonly queues = new Map<string, TenantQueue>();
  private readonly maxSize: number;
  private readonly maxWaitMs: number;
  private readonly inFlight: number;

  constructor(
    private readonly pool: Pool,
    private readonly queuePositionCap: number,
    private readonly opts: WriterOptions = {},
  ) {
    this.maxSize = opts.batchMaxSize ?? 100;
    this.maxWaitMs = opts.batchMaxWaitMs ?? 5;
    this.inFlight = opts.batchesInFlight ?? 2;
  }

  /** Runs the unit in the tenant's next batch; resolves once that batch has committed. */
  submit<R>(tenant: string, unit: Unit<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      let q = this.queues.get(tenant);
      if (!q) this.queues.set(tenant, (q = { tenant, open: [], weight: 0, inFlight: 0, scheduled: false, timer: null }));
      q.open.push({ unit: unit as Unit<unknown>, resolve: resolve as (v: unknown) => void, reject });
      q.weight += unit.weight;
      this.pump(q);
    });
  }

  private pump(q: TenantQueue): void {
    if (q.open.length === 0) return;
    if (q.inFlight < this.inFlight) {
      if (!q.scheduled) {
        q.scheduled = true;
        setImmediate(() => {
          q.scheduled = false;
          while (q.open.length > 0 && q.inFlight < this.inFlight) this.start(q);
          this.pump(q);
        });
      }
      return;
    }
    if (q.weight >= this.maxSize) this.start(q);
    else if (!q.timer)
      q.timer = setTimeout(() => {
        q.timer = null;
        if (q.open.length > 0) this.start(q);
      }, this.maxWaitMs);
  }

  /** Takes up to batchMaxSize rows' worth of units off the open batch and runs them. */
  private start(q: TenantQueue): void {
    const members: Member[] = [];
    let w = 0;
    while (q.open.length > 0 && (members.length === 0 || w + q.open[0]!.unit.weight <= this.maxSize)) {
      const m = q.open.shift()!;
      w += m.unit.weight;
      members.push(m);
    }
    q.weight -= w;
    if (q.open.length === 0 && q.timer) {
      clearTimeout(q.timer);
      q.timer = null;
    }
    q.inFlight++;
    void this.runBatch(q, members, false).finally(() => {
      q.inFlight--;
      if (q.open.length === 0 && q.inFlight === 0 && !q.timer) this.queues.delete(q.tenant);
      else this.pump(q);
    });
  }

  private async runBatch(q: TenantQueue, members: Member[], retry: boolean): Promise<void> {
    const outcome = await this.transact(q.tenant, members, retry);
    if (outcome.kind === 'done') return;
    if (outcome.kind === 'deferred') {
      for (const m of outcome.members) m.reject(new Deferred());
      return;
    }
    // Rolled back (or not committed): one by one, so a bad unit fails alone.
    // A lone unit gets one more try when the failure was the database's, not its own.
    if (members.length > 1 || (!retry && (isRetryable(outcome.error) || isDbUnavailable(outcome.error)))) {
      for (const m of members) await this.runBatch(q, [m], true);
      return;
    }
    members[0]!.reject(typedDbError(outcome.error));
  }

  private async transact(
    tenant: string,
    members: Member[],
    retry: boolean,
  ): Promise<{ kind: 'done' } | { kind: 'failed'; error: unknown } | { kind: 'deferred'; members: Member[] }> {
    const t0 = performance.now();
    let locked = NaN;
    let positions = 0;
    const report = (failed: boolean) => {
      try {
        this.opts.onBatch?.({
          tenant,
          units: members.length,
          positions,
          txMs: performance.now() - t0,
          lockedMs: Number.isNaN(locked) ? 0 : performance.now() - locked,
          failed,
          retry,
        });
      } catch {
        // an observer's bug must not fail a committed batch
      }
    };
    let c: PoolClient;
    try {
      c = await this.pool.connect();
    } catch (e) {
      report(true);
      return { kind: 'failed', error: e };
    }
    // pg-pool listens for errors only on idle clients: a held client whose server goes away
    // emits an error nobody handles. Listen while it is held; destroy it rather than reuse it.
    let broken: Error | undefined;
    const onError = (e: Error) => (broken = e);
    c.on('error', onError);
    const release = (destroy: boolean) => {
      c.removeListener('error', onError);
      c.release(broken ?? (destroy ? true : undefined));
    };

    const batch = new Batch(c, tenant, this.queuePositionCap);
    const views = members.map(() => batch.view());
    const done: Array<{ m: Member; finish: () => unknown }> = [];
    const refused: Array<{ m: Member; error: unknown }> = [];
    const deferred: Member[] = [];
    let committing = false;
    try {
      await c.query('BEGIN');
      const settled = await Promise.allSettled(members.map((m, i) => m.unit.run(views[i]!)));
      let failure: unknown;
      settled.forEach((s, i) => {
        const m = members[i]!;
        if (s.status === 'fulfilled') done.push({ m, finish: s.value });
        else if (s.reason instanceof Deferred) deferred.push(m);
        else if (isOkitError(s.reason) && views[i]!.changes === 0) refused.push({ m, error: s.reason });
        else failure ??= s.reason;
      });
      if (failure !== undefined) throw failure;
      positions = batch.positions;
      if (positions > 0) {
        locked = performance.now();
        const { rows } = await c.query(TAKE_POSITIONS, [tenant, positions]);
        batch.seal(BigInt(rows[0].pos) - BigInt(positions) + 1n);
        await c.query({ name: 'okit_write_batch', text: WRITE_BATCH, values: batch.writeParams(notifyPayload(tenant, batch.changedJobs)) });
      }
      committing = true;
      await c.query('COMMIT');
      release(false);
    } catch (e) {
      if (!committing) {
        if (!broken) await c.query('ROLLBACK').catch(() => undefined);
        release(false);
        report(true);
        return { kind: 'failed', error: e };
      }
      release(true);
      // The connection failed during COMMIT: did the batch commit? Its first row says.
      const committed = await this.wasCommitted(tenant, batch).catch(() => undefined);
      if (committed === undefined) {
        report(true);
        const err = new OkitError('DB_UNAVAILABLE', 'the database connection was lost while committing; whether the change was written is unknown', {
          cause: messageOf(e),
        });
        for (const m of members) m.reject(err);
        return { kind: 'done' };
      }
      if (!committed) {
        report(true);
        return { kind: 'failed', error: e };
      }
    }
    report(false);
    for (const { m, finish } of done) {
      try {
        m.resolve(finish());
      } catch (e) {
        m.reject(e);
      }
    }
    for (const { m, error } of refused) m.reject(error);
    return deferred.length > 0 ? { kind: 'deferred', members: deferred } : { kind: 'done' };
  }

  private async wasCommitted(tenant: string, batch: Batch): Promise<boolean> {
    const m = batch.marker;
    if (!m || m.pos === undefined) return false;
    const { rows } =
      m.table === 'job_history'
        ? await this.pool.query('SELECT 1 FROM okit.job_history WHERE tenant = $1 AND pos = $2 AND hash = $3', [tenant, m.pos, m.hash])
        : await this.pool.query('SELECT 1 FROM okit.throttle_events WHERE tenant = $1 AND pos = $2 AND host = $3 AND event = $4 AND at = $5 AND data = $6::jsonb', [
            tenant,
            m.pos,
            m.host,
            m.event,
            m.at,
            m.data,
          ]);
    return rows.length > 0;
  }
}

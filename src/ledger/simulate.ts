/**
 * A deterministic workload through the real ledger: several sources (two behind token
 * buckets, one of which answers with upstream 429s), retries with backoff, lease expiries
 * from "crashed" workers, fatal failures (some matching a failure signature), cancels, and an
 * operator at work: the report queue paused and resumed, queued jobs prioritized, failed jobs
 * retried (once each).
 * Time is a ManualClock and ids come from the seeded generator, so the same seed on a fresh
 * database yields the same history, hashes included.
 */
import { isOkitError, OkitError } from '../errors.js';
import type { Pool } from '../db/pool.js';
import { canonicalize } from '../util/canonical.js';
import { ManualClock } from '../util/clock.js';
import { sha256Hex } from '../util/hash.js';
import { Rng } from '../util/rng.js';
import { formatMicros } from '../util/time.js';
import { Ledger } from './ledger.js';
import { HISTORY_COLUMNS, toHistory } from './rows.js';
import type { Phase } from './types.js';
import { SIM_STALL_AFTER, SimStalls } from './simulate-enrich.js';

/** The frozen start of every simulation (the seed fixtures' timestamp). */
export const SIM_EPOCH = '2025-12-04T12:00:00.000000Z';

export interface SimulateOptions {
  seed: number;
  jobs: number;
  tenant: string;
  workers?: number;
  /** Called with a line now and then. */
  progress?: (line: string) => void;
  /**
   * End the run at this tick, jobs still in flight (a live system's ledger: its snapshots
   * queued, started, in a phase, blocked, with ETAs). Default: run until every job is finished.
   */
  stopAtTick?: number;
}

export interface SimulateResult {
  tenant: string;
  seed: number;
  jobs: number;
  historyRows: number;
  throttleEvents: number;
  queueEvents: number;
  ledgerHead: string;
  outcomes: Record<string, number>;
  startedAt: string;
  endedAt: string;
  /** sha256 over the tenant's history rows (canonical JSON lines, by position). */
  historyDigest: string;
  jobIds: string[];
}

export function parseSeed(text: string): number {
  // Exactly as typed: " 7" or "7 " is a typo to point out, not a seed to guess.
  const t = String(text);
  const n = /^0x[0-9a-f]{1,8}$/i.test(t) ? parseInt(t, 16) : /^\d{1,10}$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff)
    throw new OkitError('INVALID_SEED', `seed must be an integer from 0 to 4294967295 (decimal or 0x hex), got ${JSON.stringify(text)}`);
  return n;
}

type Outcome = 'succeed' | 'retry' | 'fatal' | 'signature' | 'crash' | 'upstream429';

interface WorkerState {
  id: string;
  job: string | null;
  type: string;
  host: string | null;
  steps: Step[];
  step: number;
  done: number;
  /** Ticks spent in the current step. */
  tick: number;
  outcome: Outcome;
  crashedUntil: bigint;
}

const SOURCES = [
  { name: 'registry', host: 'registry.example', bucket: { capacity: 4, refillPerSec: 2 } },
  { name: 'advisories', host: 'advisories.example', bucket: { capacity: 2, refillPerSec: 0.5 } },
  { name: 'mirror', host: 'mirror.local', bucket: null },
] as const;
const TYPES = ['scan', 'fetch', 'report'] as const;
/**
 * Each type's phases, with how many ticks a phase takes on average (`ticks`; every run draws
 * its own, ±25 %) and whether it reports item counts: types differ in duration, so a p50 per
 * type means something (docs/eta.md), and some phases are "started, without counts".
 */
interface PlanStep {
  phase: Phase;
  summary: string;
  ticks: number;
  counted: boolean;
}
const PLANS: Record<(typeof TYPES)[number], PlanStep[]> = {
  scan: [
    { phase: 'resolve', summary: 'Resolving image manifest', ticks: 2, counted: false },
    { phase: 'fetch', summary: 'Pulling image layers', ticks: 4, counted: true },
    { phase: 'analyze', summary: 'Scanning image layers', ticks: 6, counted: true },
    { phase: 'policy', summary: 'Evaluating policy', ticks: 2, counted: false },
  ],
  fetch: [
    { phase: 'fetch', summary: 'Downloading advisories', ticks: 3, counted: true },
    { phase: 'restore', summary: 'Restoring feed snapshot', ticks: 2, counted: true },
  ],
  report: [
    { phase: 'analyze', summary: 'Aggregating findings', ticks: 1, counted: true },
    { phase: 'report', summary: 'Writing report', ticks: 2, counted: false },
  ],
};

interface Step extends PlanStep {
  total: number;
}

/** A claimed job's run: its type's plan with this run's item totals and ticks per phase. */
function drawSteps(rng: Rng, type: (typeof TYPES)[number]): Step[] {
  return PLANS[type].map((p) => ({ ...p, total: rng.int(5, 120), ticks: Math.max(1, Math.round(p.ticks * (0.75 + rng.next() * 0.5))) }));
}

/** One tick of work on a step: the items done after it (counted steps), and whether the step is over. */
function workTick(rng: Rng, st: Step, done: number, tick: number): { done: number; over: boolean } {
  if (!st.counted) return { done: 0, over: tick >= st.ticks };
  const next = Math.min(st.total, done + Math.ceil((st.total / st.ticks) * (0.8 + rng.next() * 0.4)));
  return { done: tick >= st.ticks ? st.total : next, over: tick >= st.ticks || next >= st.total };
}

/** Now and then a job is enqueued to start later (a future not_before): the queued ETA's wait. */
function drawNotBefore(rng: Rng, now: bigint): string | null {
  return rng.next() < 0.1 ? formatMicros(now + BigInt(rng.int(2, 20)) * 1_000_000n) : null;
}

function chooseOutcome(rng: Rng, host: string | null): Outcome {
  const r = rng.next();
  if (r < 0.68) return 'succeed';
  if (r < 0.8) return 'retry';
  if (r < 0.85) return 'fatal';
  if (r < 0.89) return 'signature';
  if (r < 0.94) return 'crash';
  return host === 'advisories.example' ? 'upstream429' : 'succeed';
}

export async function simulate(pool: Pool, opts: SimulateOptions): Promise<SimulateResult> {
  const tenant = opts.tenant;
  // The run's positions and chains start from nothing: a tenant with a ledger cannot be replayed into.
  const { rows: used } = await pool.query('SELECT pos FROM okit.ledger_heads WHERE tenant = $1', [tenant]);
  if (used.length > 0)
    throw new OkitError('INVALID_INPUT', `tenant ${tenant} already has a ledger in this database: simulate into a new --tenant or a fresh database`, {
      field: 'tenant',
    });
  const rng = new Rng(opts.seed);
  const clock = new ManualClock(SIM_EPOCH);
  // Ids are global primary keys: derive them from the tenant too, so the same seed can run in two tenants.
  const id = () => tenantUuid(tenant, rng.uuid());
  const ledger = new Ledger(pool, { clock, ids: id, backoffBaseSeconds: 1, backoffCapSeconds: 20, defaultMaxAttempts: 3, stallAfter: SIM_STALL_AFTER });
  // Issue 14: silent workers and the stall sweeper (simulate-enrich.ts).
  const stalls = new SimStalls(opts.seed);
  const log = opts.progress ?? (() => undefined);
  const startedAt = clock.toString();

  const sources: Array<{ id: string; host: string }> = [];
  for (const s of SOURCES) {
    const src = await ledger.createSource(tenant, { name: s.name, host: s.host, id: id() });
    if (s.bucket) await ledger.configureThrottle(tenant, s.host, s.bucket);
    sources.push({ id: src.id, host: s.host });
  }
  await ledger.addFailureSignature(tenant, {
    id: id(),
    pattern: { error_code: 'LAYER_EXTRACT_FAILED' },
    outcome: { likely_cause: 'Registry returned a truncated layer', suggested_action: 'Retry after the registry mirror resyncs', mttr_p50_seconds: 300 },
    confidence: 0.87,
  });

  const workers: WorkerState[] = Array.from({ length: opts.workers ?? 4 }, (_, i) => ({
    id: `worker-${i + 1}`,
    job: null,
    type: '',
    host: null,
    steps: [],
    step: 0,
    done: 0,
    tick: 0,
    outcome: 'succeed',
    crashedUntil: 0n,
  }));
  const jobIds: string[] = [];
  const hostOfSource = new Map(sources.map((s) => [s.id, s.host]));
  const sourceOfJob = new Map<string, string>();
  let enqueued = 0;
  let ticks = 0;
  // The operator: pauses the report queue once a third of the jobs are in, resumes it 5 ticks
  // later; bumps the newest job then and now and then; retries the first non-retryable failure
  // at once and later ones now and then, each at most once.
  // Its own random stream, so the workers' draws are the ones they were before it existed.
  const OPERATOR = 'sim-operator';
  const opRng = new Rng((opts.seed ^ 0x5eed0) >>> 0);
  let pausedAt = -1;
  const failedOnce: string[] = [];
  const retried = new Set<string>();
  const refused = (e: unknown) => {
    if (!isOkitError(e) || e.code !== 'ILLEGAL_TRANSITION') throw e;
  };
  const maxTicks = opts.jobs * 200 + 1000;

  const drop = (w: WorkerState) => {
    w.job = null;
    w.steps = [];
  };
  // A worker call may meet a job canceled under it: the typed error is the expected answer.
  const guarded = async (w: WorkerState, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      if (isOkitError(e) && (e.code === 'ILLEGAL_TRANSITION' || e.code === 'LEASE_NOT_HELD' || e.code === 'JOB_CANCELED')) drop(w);
      else throw e;
    }
  };

  for (;;) {
    ticks++;
    if (opts.stopAtTick !== undefined && ticks > opts.stopAtTick) break;
    if (ticks > maxTicks) throw new Error(`simulation did not settle within ${maxTicks} ticks`);
    clock.advance(BigInt(rng.int(100, 1500)) * 1000n);
    await ledger.expireLeases({ tenant });
    await stalls.sweep(ledger, tenant);

    // Arrivals: a few jobs per tick, now and then a duplicate idempotency key.
    const arrivals = enqueued < opts.jobs ? rng.int(0, 3) : 0;
    for (let i = 0; i < arrivals && enqueued < opts.jobs; i++) {
      const type = rng.pick(TYPES);
      const src = rng.pick(sources);
      const keyed = rng.next() < 0.3;
      const key = keyed ? `sim-${opts.seed}-${enqueued}` : null;
      const payload = { n: enqueued, target: `${src.host}/item-${rng.int(1, 9999)}` };
      const { job } = await ledger.enqueue(tenant, {
        type,
        payload,
        sourceId: src.id,
        priority: rng.next() < 0.1 ? 10 : 0,
        idempotencyKey: key,
        notBefore: drawNotBefore(rng, clock.now()),
      });
      if (keyed && rng.next() < 0.2) {
        const again = await ledger.enqueue(tenant, { type, payload, sourceId: src.id, priority: 0, idempotencyKey: key });
        if (again.job.id !== job.id || again.created) throw new Error('idempotent enqueue returned a different job');
      }
      jobIds.push(job.id);
      sourceOfJob.set(job.id, src.id);
      enqueued++;
    }

    if (pausedAt < 0 && opts.jobs >= 3 && enqueued >= Math.ceil(opts.jobs / 3)) {
      pausedAt = ticks;
      await ledger.pause(tenant, 'report', { actor: OPERATOR, reason: 'report store maintenance' });
    } else if (pausedAt >= 0 && ticks === pausedAt + 5) await ledger.resume(tenant, 'report', { actor: OPERATOR, reason: null });
    if (jobIds.length > 0 && (ticks === pausedAt || opRng.next() < 0.08)) await ledger.prioritize(tenant, jobIds[jobIds.length - 1]!, { priority: 5, actor: OPERATOR }).catch(refused);
    if (failedOnce.length > 0 && (retried.size === 0 || opRng.next() < 0.15)) {
      const again = failedOnce.shift()!;
      retried.add(again);
      await ledger.retry(tenant, again, { actor: OPERATOR, reason: 'mirror resynced' }).catch(refused);
    }

    // Users cancel a queued or running job now and then.
    if (jobIds.length > 0 && rng.next() < 0.03) {
      const target = rng.pick(jobIds);
      try {
        await ledger.cancel(tenant, target, { actor: 'sim-user', reason: 'no longer needed' });
      } catch (e) {
        if (!isOkitError(e) || e.code !== 'ILLEGAL_TRANSITION') throw e;
      }
    }

    for (const w of workers) {
      if (!w.job) {
        if (clock.now() < w.crashedUntil) continue;
        const claimed = await ledger.claim(tenant, { workerId: w.id, types: [...TYPES], leaseSeconds: 10 });
        if (!claimed) continue;
        w.job = claimed.job.id;
        w.type = claimed.job.type;
        w.host = hostOfSource.get(sourceOfJob.get(w.job) ?? '') ?? null;
        w.steps = drawSteps(rng, w.type as (typeof TYPES)[number]);
        w.step = 0;
        w.done = 0;
        w.tick = 0;
        w.outcome = chooseOutcome(rng, w.host);
        stalls.claimed(w.job, clock.now());
        continue;
      }
      const job = w.job;
      if (stalls.silent(job, clock.now())) {
        // Alive but stuck: it heartbeats, and reports no progress (the sweeper marks it stalled).
        await guarded(w, () => ledger.heartbeat(tenant, job, w.id, 10));
        continue;
      }
      const st = w.steps[w.step]!;
      if (w.outcome === 'crash' && w.step === 1) {
        // The worker dies silently: no heartbeat, no report. Its lease will expire.
        drop(w);
        w.crashedUntil = clock.now() + 15_000_000n;
        continue;
      }
      if (w.outcome === 'upstream429' && w.step === 0 && w.tick > 0 && w.host) {
        await ledger.reportThrottle(tenant, w.host, { retryAfterSeconds: rng.int(2, 8), status: 429, workerId: w.id });
        await guarded(w, () => ledger.fail(tenant, job, w.id, { code: 'UPSTREAM_429', message: `${w.host} answered 429 Too Many Requests`, retryable: true }));
        drop(w);
        continue;
      }
      w.tick++;
      const worked = workTick(rng, st, w.done, w.tick);
      w.done = worked.done;
      const counts = st.counted ? { itemsDone: w.done, itemsTotal: st.total } : {};
      await guarded(w, () => ledger.progress(tenant, job, w.id, { phase: st.phase, summary: st.summary, ...counts }));
      if (!w.job) continue;
      await guarded(w, () => ledger.heartbeat(tenant, job, w.id, 10));
      if (!w.job || !worked.over) continue;
      w.step++;
      w.done = 0;
      w.tick = 0;
      const failAt = Math.max(0, w.steps.length - 2);
      if ((w.outcome === 'retry' || w.outcome === 'fatal' || w.outcome === 'signature') && w.step > failAt) {
        const err =
          w.outcome === 'retry'
            ? { code: 'FETCH_TIMEOUT', message: 'upstream timed out after 30s', retryable: true }
            : w.outcome === 'signature'
              ? { code: 'LAYER_EXTRACT_FAILED', message: 'layer 3 could not be extracted', retryable: false }
              : { code: 'SCHEMA_MISMATCH', message: 'document does not match schema v2', retryable: false };
        await guarded(w, () => ledger.fail(tenant, job, w.id, err));
        if (!err.retryable && w.job && !retried.has(job)) failedOnce.push(job);
        drop(w);
        continue;
      }
      if (w.step >= w.steps.length) {
        await guarded(w, () => ledger.complete(tenant, job, w.id, { items: w.steps.reduce((a, s) => a + s.total, 0) }));
        drop(w);
      }
    }

    if (enqueued >= opts.jobs) {
      const { rows } = await pool.query(
        `SELECT count(*)::int AS n FROM okit.jobs WHERE tenant = $1 AND state NOT IN ('succeeded', 'failed', 'dead_letter', 'canceled')`,
        [tenant],
      );
      if (rows[0].n === 0) break;
    }
    if (ticks % 200 === 0) log(`tick ${ticks}: ${enqueued}/${opts.jobs} enqueued, clock ${clock.toString()}`);
  }

  const outcomes: Record<string, number> = {};
  const { rows: st } = await pool.query('SELECT state, count(*)::int AS n FROM okit.jobs WHERE tenant = $1 GROUP BY state ORDER BY state', [tenant]);
  for (const r of st) outcomes[r.state] = r.n;
  const digest = await historyDigest(pool, tenant);
  const { rows: te } = await pool.query('SELECT count(*)::int AS n FROM okit.throttle_events WHERE tenant = $1', [tenant]);
  const { rows: qe } = await pool.query('SELECT count(*)::int AS n FROM okit.queue_events WHERE tenant = $1', [tenant]);
  const { rows: head } = await pool.query('SELECT pos FROM okit.ledger_heads WHERE tenant = $1', [tenant]);
  return {
    tenant,
    seed: opts.seed,
    jobs: enqueued,
    historyRows: digest.rows,
    throttleEvents: te[0].n,
    queueEvents: qe[0].n,
    ledgerHead: String(head[0]?.pos ?? '0'),
    outcomes,
    startedAt,
    endedAt: formatMicros(clock.now()),
    historyDigest: digest.sha256,
    jobIds,
  };
}

/** A version-4-shaped UUID from sha256(tenant, drawn uuid). */
function tenantUuid(tenant: string, drawn: string): string {
  const b = Buffer.from(sha256Hex(`${tenant}\n${drawn}`).slice(0, 32), 'hex');
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** sha256 of a tenant's history as canonical JSON lines in position order, and the row count. */
export async function historyDigest(pool: Pool, tenant: string): Promise<{ sha256: string; rows: number }> {
  const { rows } = await pool.query(`SELECT ${HISTORY_COLUMNS} FROM okit.job_history WHERE tenant = $1 ORDER BY pos`, [tenant]);
  const text = rows.map((r) => canonicalize(toHistory(r)) + '\n').join('');
  return { sha256: sha256Hex(text), rows: rows.length };
}

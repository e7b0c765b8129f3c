/**
 * The job ledger. Every change is written by the batching writer (writer.ts): per transition an
 * update of the job row, one appended hash-chained history row at the tenant's next ledger
 * position, the re-projected first-signal snapshot, and one NOTIFY per batch; concurrent
 * changes of a tenant share one transaction. Job operations are in jobs.ts, sources and
 * throttles in sources.ts. Time comes from the injected clock only; ids from the injected generator.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { OkitError } from '../errors.js';
import type { Pool } from '../db/pool.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { Json } from '../util/canonical.js';
import type { Micros } from '../util/time.js';
import type { JobEvent, JobState } from './states.js';
import { JobOps, type ClaimedJob, type ClaimInput, type EnqueueInput, type Enqueued, type FailInput, type LeaseHolder, type LedgerCore, type ProgressInput } from './jobs.js';
import { HISTORY_COLUMNS, JOB_COLUMNS, SNAPSHOT_COLUMNS, toHistory, toJob, toSnapshot } from './rows.js';
import { SourceOps, type Source, type ThrottleState } from './sources.js';
import type { BucketView } from './throttle.js';
import { ControlOps } from './jobs.js';
import { QueueOps, type PauseResult, type QueueInfo } from './queues.js';
import { QueryOps, type JobFilters, type JobList, type Run, type RunStatus } from './queries.js';
import { SignatureOps, type Signature } from './signatures.js';
import { markStalled, stallConfig, type StallConfig } from './stalls.js';
import type { HistoryRow, Job, Snapshot } from './types.js';
import * as v from './validate.js';
import { BatchWriter, type BatchStats } from './writer.js';

export { NOTIFY_CHANNEL } from './writer.js';
export { writeSnapshot } from './rows.js';
export type { BatchStats } from './writer.js';
export type { ClaimedJob, ClaimInput, EnqueueInput, Enqueued, FailInput, LeaseHolder, ProgressInput } from './jobs.js';
export type { Source, ThrottleState } from './sources.js';
export type { BucketView } from './throttle.js';
export type { PauseResult, QueueInfo } from './queues.js';
export type { JobFilters, JobList, JobListItem, Run, RunStatus, RunSignal } from './queries.js';
export type { Signature, SignatureOutcome, SignaturePattern } from './signatures.js';

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
  /** Rows per batch transaction, at most (default 100). */
  batchMaxSize?: number;
  /** How long a tenant's open batch waits for a free slot before it starts anyway, ms (default 5). */
  batchMaxWaitMs?: number;
  /** Batch transactions of one tenant running at once in this process (default 2). */
  batchesInFlight?: number;
  /** Called after every batch transaction: its size, transaction time and head-lock time (for metrics). */
  onBatch?: (s: BatchStats) => void;
  /** Called once per committed transaction (metrics); its errors are ignored. More via `commitObservers`. */
  onCommit?: CommitObserver;
  /** Stalled detection (docs/eta.md): seconds without progress before a running job is marked `stalled` (default 60), and per job type. */
  stallAfter?: { defaultSeconds?: number; byType?: Record<string, number> };
}

/** One committed ledger transaction (a batch), for observers (metrics): never part of what is stored. */
export interface CommitInfo {
  tenant: string;
  /** Operations (callers) committed together. */
  batchSize: number;
  /** BEGIN to COMMIT acknowledged. */
  ms: number;
  transitions: ReadonlyArray<{ jobId: string; type: string; createdAt: string; event: JobEvent; to: JobState; at: string; data: { [k: string]: Json } }>;
  throttles: ReadonlyArray<{ host: string; event: string }>;
}
export type CommitObserver = (info: CommitInfo) => void;

export class Ledger implements LedgerCore {
  readonly pool: Pool;
  readonly clock: Clock;
  readonly ids: () => string;
  readonly writer: BatchWriter;
  readonly opts: Required<Omit<LedgerOptions, 'clock' | 'ids' | 'onBatch' | 'onCommit' | 'stallAfter'>>;
  /** stall_after, resolved once (stalls.ts). */
  readonly stall: StallConfig;
  /** Told of every committed transaction; a server adds its metrics here. */
  readonly commitObservers = new Set<CommitObserver>();
  private readonly jobs: JobOps;
  private readonly sources: SourceOps;
  private readonly control: ControlOps;
  private readonly queues: QueueOps;
  private readonly queries: QueryOps;
  private readonly signatures: SignatureOps;

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
      batchMaxSize: v.int(opts.batchMaxSize, 'batch_max_size', 1, 10000, 100),
      batchMaxWaitMs: v.num(opts.batchMaxWaitMs ?? 5, 'batch_max_wait_ms', 0, 60000),
      batchesInFlight: v.int(opts.batchesInFlight, 'batches_in_flight', 1, 64, 2),
    };
    this.stall = stallConfig(opts.stallAfter);
    this.writer = new BatchWriter(pool, this.opts.queuePositionCap, {
      batchMaxSize: this.opts.batchMaxSize,
      batchMaxWaitMs: this.opts.batchMaxWaitMs,
      batchesInFlight: this.opts.batchesInFlight,
      onBatch: opts.onBatch,
      onCommit: (info) => {
        for (const o of this.commitObservers) {
          try {
            o(info);
          } catch {
            // An observer never fails a committed transaction.
          }
        }
      },
      wantsCommits: () => this.commitObservers.size > 0,
    });
    if (opts.onCommit) this.commitObservers.add(opts.onCommit);
    this.jobs = new JobOps(this);
    this.sources = new SourceOps(this, { defaultBucket: this.opts.defaultBucket });
    this.control = new ControlOps(this);
    this.queues = new QueueOps(this);
    this.queries = new QueryOps(this);
    this.signatures = new SignatureOps(this);
  }

  // ---------------------------------------------------------------- jobs (jobs.ts)

  enqueue(tenant: string, input: EnqueueInput): Promise<Enqueued> {
    return this.jobs.enqueue(tenant, input);
  }
  /** Up to 1,000 jobs in one transaction, all or none; per item: its job and whether it was created. */
  enqueueMany(tenant: string, inputs: EnqueueInput[]): Promise<Enqueued[]> {
    return this.jobs.enqueueMany(tenant, inputs);
  }
  claim(tenant: string, input: ClaimInput & { limit: number }): Promise<ClaimedJob[]>;
  claim(tenant: string, input: ClaimInput): Promise<ClaimedJob | null>;
  claim(tenant: string, input: ClaimInput): Promise<ClaimedJob | ClaimedJob[] | null> {
    return this.jobs.claim(tenant, input);
  }
  heartbeat(tenant: string, jobId: string, holder: LeaseHolder, leaseSeconds?: number): Promise<{ leaseExpiresAt: string }> {
    return this.jobs.heartbeat(tenant, jobId, holder, leaseSeconds);
  }
  progress(tenant: string, jobId: string, holder: LeaseHolder, input: ProgressInput): Promise<Snapshot> {
    return this.jobs.progress(tenant, jobId, holder, input);
  }
  complete(tenant: string, jobId: string, holder: LeaseHolder, result?: unknown): Promise<Snapshot> {
    return this.jobs.complete(tenant, jobId, holder, result);
  }
  fail(tenant: string, jobId: string, holder: LeaseHolder, input: FailInput): Promise<Snapshot> {
    return this.jobs.fail(tenant, jobId, holder, input);
  }
  cancel(tenant: string, jobId: string, input: { actor: string; reason?: string | null }): Promise<Snapshot> {
    return this.jobs.cancel(tenant, jobId, input);
  }
  /** Ends a lease now (lease_expired), for a claim whose claimer went away before hearing of it. */
  abandon(tenant: string, jobId: string, holder: { workerId: string; leaseToken: string }): Promise<void> {
    return this.jobs.abandon(tenant, jobId, holder);
  }
  expireLeases(opts: { tenant?: string; limit?: number } = {}): Promise<number> {
    return this.jobs.expireLeases(opts);
  }
  /** Marks running jobs without progress for longer than their stall_after (`stalled` rows, at this ledger's clock). */
  markStalled(opts: { tenant?: string; limit?: number } = {}): Promise<number> {
    return markStalled(this, opts);
  }
  /** Retry delay: base·2^(attempt-1) capped, with ±10 % jitter derived from (job, attempt) so replays agree. */
  backoffMicros(jobId: string, attempt: number): Micros {
    return this.jobs.backoffMicros(jobId, attempt);
  }

  // ---------------------------------------------------------------- sources and throttles (sources.ts)

  createSource(tenant: string, input: { name: string; host: string; id?: string }): Promise<Source> {
    return this.sources.createSource(tenant, input);
  }
  getSource(tenant: string, id: string): Promise<Source> {
    return this.sources.getSource(tenant, id);
  }
  configureThrottle(tenant: string, host: string, cfg: { capacity: number; refillPerSec: number }): Promise<void> {
    return this.sources.configureThrottle(tenant, host, cfg);
  }
  /** An upstream throttled a worker: penalise the host's bucket; answers the bucket now. */
  reportThrottle(tenant: string, host: string | null, input: { retryAfterSeconds?: number | null; status?: number; workerId?: string; jobId?: string | null }): Promise<BucketView> {
    return this.sources.reportThrottle(tenant, host, input);
  }
  addSource(tenant: string, input: { name: string; host: string; id?: string }): Promise<{ source: Source; created: boolean }> {
    return this.sources.addSource(tenant, input);
  }
  listSources(tenant: string): Promise<Source[]> {
    return this.sources.listSources(tenant);
  }
  /** Every bucket with its state now (one host's with `host`). */
  listThrottles(tenant: string, host?: string): Promise<ThrottleState[]> {
    return this.sources.listThrottles(tenant, host);
  }

  // ---------------------------------------------------------------- failure signatures (signatures.ts)

  /** Adds a signature (the same pattern again updates it) and answers its id. */
  async addFailureSignature(tenant: string, input: Parameters<SignatureOps['add']>[1]): Promise<string> {
    return (await this.signatures.add(tenant, input)).signature.id;
  }
  addSignature(tenant: string, input: Parameters<SignatureOps['add']>[1]): Promise<{ signature: Signature; created: boolean }> {
    return this.signatures.add(tenant, input);
  }
  getSignature(tenant: string, id: string): Promise<Signature> {
    return this.signatures.get(tenant, id);
  }
  listSignatures(tenant: string, opts?: { includeRetired?: boolean }): Promise<Signature[]> {
    return this.signatures.list(tenant, opts);
  }
  retireSignature(tenant: string, id: string, actor: string): Promise<Signature> {
    return this.signatures.retire(tenant, id, actor);
  }

  // ---------------------------------------------------------------- control actions (jobs.ts, queues.ts)

  /** failed, dead_letter or canceled → queued, attempts given back. */
  retry(tenant: string, jobId: string, input: { actor: string; reason?: string | null }): Promise<Snapshot> {
    return this.control.retry(tenant, jobId, input);
  }
  retryDeadLetters(tenant: string, input: { type: string; limit?: number; actor: string; reason?: string | null }): Promise<{ jobs: Array<{ job: Job; snapshot: Snapshot }>; more: boolean }> {
    return this.control.retryDeadLetters(tenant, input);
  }
  prioritize(tenant: string, jobId: string, input: { priority: number; actor: string; reason?: string | null }): Promise<Snapshot> {
    return this.control.prioritize(tenant, jobId, input);
  }
  pause(tenant: string, type: string, input: { actor: string; reason?: string | null }): Promise<PauseResult> {
    return this.queues.pause(tenant, type, input);
  }
  resume(tenant: string, type: string, input: { actor: string; reason?: string | null }): Promise<PauseResult> {
    return this.queues.resume(tenant, type, input);
  }
  listQueues(tenant: string): Promise<QueueInfo[]> {
    return this.queues.list(tenant);
  }

  // ---------------------------------------------------------------- jobs and runs (queries.ts)

  listJobs(tenant: string, filters?: JobFilters): Promise<JobList> {
    return this.queries.listJobs(tenant, filters);
  }
  createRun(tenant: string, input?: { id?: string | null; sourceId?: string | null }): Promise<{ run: Run; created: boolean }> {
    return this.queries.createRun(tenant, input);
  }
  getRun(tenant: string, id: string): Promise<RunStatus> {
    return this.queries.getRun(tenant, id);
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
    return readHistory(this.pool, jobId);
  }
}

async function readHistory(c: pg.PoolClient | Pool, jobId: string): Promise<HistoryRow[]> {
  const { rows } = await c.query(`SELECT ${HISTORY_COLUMNS} FROM okit.job_history WHERE job_id = $1 ORDER BY n`, [jobId]);
  return rows.map(toHistory);
}

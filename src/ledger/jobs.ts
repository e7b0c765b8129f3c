/**
 * Job operations: enqueue (one or many), claim (one or many), leases, progress, complete,
 * fail, cancel, lease expiry. Each validates its input here, then hands the batching writer
 * (writer.ts) a unit that reads what it needs, checks the job's state and records its
 * transitions (batch.ts). Refusals (ILLEGAL_TRANSITION, LEASE_NOT_HELD, JOB_NOT_FOUND, ...)
 * are raised before anything is recorded, so they fail only their own caller.
 */
import { createHash, randomBytes } from 'node:crypto';
import { withTx, type Pool } from '../db/pool.js';
import { isOkitError, OkitError } from '../errors.js';
import type { Json } from '../util/canonical.js';
import type { Clock } from '../util/clock.js';
import { constantTimeEqual, sha256Hex } from '../util/hash.js';
import { formatMicros, microsToSeconds, parseMicros, secondsToMicros, SECOND, type Micros } from '../util/time.js';
import { etaInputs } from './durations.js';
import { Deferred, type Change, type EtaRow, type Slot, type UnitView } from './batch.js';
import { JOB_COLUMNS, toJob } from './rows.js';
import { TERMINAL_STATES, type JobState } from './states.js';
import { learnSignature } from './signatures.js';
import { consumeToken, fromMicroUnits } from './throttle.js';
import { recordPenalty, upstreamInput } from './sources.js';
import type { HistoryRow, Job, Phase, Snapshot } from './types.js';
import * as v from './validate.js';
import type { BatchWriter, Unit } from './writer.js';

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
  /** Claim up to this many jobs at once (1..100); the answer is then a list. */
  limit?: number;
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
  /**
   * The upstream's answer that caused the failure (a 429 or 503, with Retry-After): the host's
   * bucket is penalised in the same transaction (as reportThrottle), and a retry waits at least
   * Retry-After. `host` defaults to the job's source host.
   */
  upstream?: { status: number; retryAfterSeconds?: number | null; host?: string | null } | null;
}

export interface Enqueued {
  job: Job;
  created: boolean;
}

/** Jobs per enqueueMany call (and per POST /jobs array), at most. */
export const MAX_ENQUEUE_BATCH = 1000;
/** Jobs per claim, at most. */
export const MAX_CLAIM_LIMIT = 100;
/** Candidates a claim looks at past throttled ones before it answers with what it has. */
const CLAIM_TRIES = 25;

/** What the job operations need of the ledger. */
export interface LedgerCore {
  readonly pool: Pool;
  readonly clock: Clock;
  readonly ids: () => string;
  readonly writer: BatchWriter;
  readonly opts: {
    defaultMaxAttempts: number;
    defaultLeaseSeconds: number;
    backoffBaseSeconds: number;
    backoffCapSeconds: number;
    queuePositionCap: number;
    /** Bucket a host gets when a throttle is reported for it and it has none. */
    defaultBucket: { capacity: number; refillPerSec: number };
  };
}

/** A host name given in an input (validated as hosts are). */
function hostField(h: unknown): string {
  try {
    return v.host(h);
  } catch {
    throw new OkitError('INVALID_INPUT', 'upstream.host: must be a host name, optionally with :port', { field: 'upstream.host' });
  }
}

/** One validated job to enqueue. */
interface Item {
  id: string;
  type: string;
  payload: Json;
  canonical: string;
  payloadSha: string;
  priority: number;
  maxAttempts: number;
  key: string | null;
  sourceId: string | null;
  runId: string | null;
  notBefore: Micros | null;
  callerId: boolean;
}

export class JobOps {
  constructor(private readonly l: LedgerCore) {}

  private item(input: EnqueueInput, at = ''): Item {
    if (!input || typeof input !== 'object') throw new OkitError('INVALID_INPUT', `${at || 'job'}: must be an object`, { field: at || 'job' });
    const f = (name: string) => (at ? `${at}.${name}` : name);
    // Field names in errors carry the item's index in a batch: jobs[3].type.
    const named = <T>(fn: () => T): T => {
      try {
        return fn();
      } catch (e) {
        if (at && isOkitError(e) && e.code === 'INVALID_INPUT' && typeof e.details?.field === 'string') {
          const field = f(e.details.field);
          throw new OkitError('INVALID_INPUT', e.message.replace(/^[^:]+:/, `${field}:`), { ...e.details, field });
        }
        throw e;
      }
    };
    return named(() => {
      const type = v.jobType(input.type);
      const { value: payload, canonical } = v.payload(input.payload);
      return {
        type,
        payload,
        canonical,
        payloadSha: sha256Hex(canonical),
        priority: v.int(input.priority, 'priority', -1000, 1000, 0),
        maxAttempts: v.int(input.maxAttempts, 'max_attempts', 1, 100, this.l.opts.defaultMaxAttempts),
        key: v.text(input.idempotencyKey, 'idempotency_key', v.MAX_IDEMPOTENCY_KEY_CHARS, true),
        // Only absence (undefined or null) means "none": 0, false or "" are wrong types, refused.
        sourceId: input.sourceId != null ? v.uuid(input.sourceId, 'source_id') : null,
        runId: input.runId != null ? v.uuid(input.runId, 'run_id') : null,
        id: input.id != null ? v.uuid(input.id) : this.l.ids(),
        notBefore: input.notBefore != null ? parseMicros(v.timestamp(input.notBefore, 'not_before')) : null,
        callerId: input.id != null,
      };
    });
  }

  async enqueue(tenant: string, input: EnqueueInput): Promise<Enqueued> {
    v.tenant(tenant);
    const item = this.item(input);
    return (await this.enqueueItems(tenant, [item]))[0]!;
  }

  /**
   * Enqueues up to 1,000 jobs in one transaction: all of them or none. Idempotency works per
   * item (a key seen before answers its existing job with created: false); the answer lists
   * each job in input order. Queue positions are counted once per type for the whole call.
   */
  async enqueueMany(tenant: string, inputs: EnqueueInput[]): Promise<Enqueued[]> {
    v.tenant(tenant);
    if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > MAX_ENQUEUE_BATCH)
      throw new OkitError('INVALID_INPUT', `jobs: must list 1 to ${MAX_ENQUEUE_BATCH} jobs`, { field: 'jobs' });
    const items = inputs.map((x, i) => this.item(x, `jobs[${i}]`));
    const ids = new Set<string>();
    items.forEach((it, i) => {
      if (ids.has(it.id)) throw new OkitError('INVALID_INPUT', `jobs[${i}].id: appears twice in the batch`, { field: `jobs[${i}].id` });
      ids.add(it.id);
    });
    return this.enqueueItems(tenant, items);
  }

  private async enqueueItems(tenant: string, items: Item[]): Promise<Enqueued[]> {
    for (let attempt = 1; ; attempt++) {
      const known = await this.byKeys(tenant, items);
      const fresh = items.filter((it) => !known.has(it.id));
      if (fresh.length === 0) return items.map((it) => ({ job: known.get(it.id)!, created: false }));
      const now = this.l.clock.now();
      try {
        const made = await this.l.writer.submit(tenant, this.enqueueUnit(fresh, now));
        return items.map((it) => known.has(it.id) ? { job: known.get(it.id)!, created: false } : made.get(it.id)!);
      } catch (e) {
        // Another unit of the same batch held one of the keys: look again, then retry.
        if (e instanceof Deferred && attempt < 100) continue;
        if (isOkitError(e) && e.code === 'WRITE_REFUSED' && e.details?.sqlstate === '23505') {
          // Lost a race on an idempotency key: the winner's job is the answer.
          if (String(e.details.constraint ?? '').includes('idempotency') && items.some((it) => it.key) && attempt < 3) continue;
          if (String(e.details.constraint ?? '').endsWith('_pkey') && items.some((it) => it.callerId)) {
            const taken = items.find((it) => it.callerId)!;
            throw new OkitError('INVALID_INPUT', `job id ${items.length === 1 ? taken.id : '(one of the given ids)'} already exists`, items.length === 1 ? { job_id: taken.id } : { field: 'id' });
          }
        }
        throw e;
      }
    }
  }

  /** Items whose idempotency key is already used: their jobs (IDEMPOTENCY_CONFLICT when the payload differs). */
  private async byKeys(tenant: string, items: Item[]): Promise<Map<string, Job>> {
    const out = new Map<string, Job>();
    const keyed = items.filter((it) => it.key);
    if (keyed.length === 0) return out;
    const { rows } = await this.l.pool.query(`SELECT ${JOB_COLUMNS} FROM okit.jobs WHERE tenant = $1 AND idempotency_key = ANY($2::text[])`, [
      tenant,
      [...new Set(keyed.map((it) => it.key!))],
    ]);
    const byKey = new Map(rows.map((r) => [String(r.idempotency_key), toJob(r)]));
    for (const it of keyed) {
      const job = byKey.get(it.key!);
      if (!job) continue;
      if (job.payload_sha256 !== it.payloadSha)
        throw new OkitError('IDEMPOTENCY_CONFLICT', `idempotency key ${JSON.stringify(it.key)} was used for job ${job.id} with a different payload`, { job_id: job.id });
      out.set(it.id, job);
    }
    return out;
  }

  private enqueueUnit(items: Item[], now: Micros): Unit<Map<string, Enqueued>> {
    const cap = this.l.opts.queuePositionCap;
    return {
      weight: items.length,
      async run(b: UnitView) {
        // The same key twice in one call is one job; in two units of one batch, the later waits a batch.
        const firstOfKey = new Map<string, Item>();
        for (const it of items) {
          if (!it.key) continue;
          const first = firstOfKey.get(it.key);
          if (first && first.payloadSha !== it.payloadSha)
            throw new OkitError('IDEMPOTENCY_CONFLICT', `idempotency key ${JSON.stringify(it.key)} appears twice in the batch with different payloads`, {
              field: 'idempotency_key',
            });
          if (!first) firstOfKey.set(it.key, it);
          if (!b.reserveKey(it.key)) throw new Deferred();
        }
        const sources = await Promise.all(items.map((it) => (it.sourceId ? b.source(it.sourceId) : null)));
        items.forEach((it, i) => {
          if (it.sourceId && !sources[i]) throw new OkitError('SOURCE_NOT_FOUND', `source ${it.sourceId} not found`);
        });
        // A run is (tenant, id): another tenant's run of the same id is another run (migration 005).
        await Promise.all(items.map((it) => (it.runId ? b.ensureRun(it.runId, it.sourceId, now) : null)));
        const types = [...new Set(items.map((it) => it.type))];
        const [ahead, last, etas] = await Promise.all([
          Promise.all(types.map((t) => b.queueAhead(t))),
          Promise.all(types.map((t) => b.lastOutcome(t))),
          Promise.all(types.map((t) => b.etaRow(t))),
          b.pausedTypes(),
        ]);
        const aheadOf = new Map(types.map((t, i) => [t, ahead[i]!]));
        const etaOf = new Map(types.map((t, i) => [t, etas[i]!]));
        const lastOf = new Map(types.map((t, i) => [t, last[i]!]));
        for (const it of items) if (b.hasJob(it.id)) throw new OkitError('INVALID_INPUT', `job id ${it.id} already exists`, { job_id: it.id });
        const out = new Map<string, Enqueued>();
        const changes: Array<{ id: string; change: Change }> = [];
        items.forEach((it, i) => {
          const first = it.key ? firstOfKey.get(it.key)! : it;
          if (first !== it) return;
          const source = sources[i];
          // The jobs of one call are stamped a microsecond apart, in input order: they are then
          // claimed in input order (claims break ties by time, then id). A lone enqueue keeps `now`.
          const at = now + BigInt(i);
          const nAhead = Math.min(cap, aheadOf.get(it.type)! + b.enqueuedSoFar(it.type));
          const nb = formatMicros(it.notBefore ?? now);
          const data: { [k: string]: Json } = {
            type: it.type,
            priority: it.priority,
            max_attempts: it.maxAttempts,
            run_id: it.runId,
            source: source ? { id: source.id, name: source.name, host: source.host } : null,
            payload_sha256: it.payloadSha,
            idempotency_key: it.key,
            not_before: nb,
            queue_position: nAhead < cap ? nAhead + 1 : null,
            last_known_outcome: (lastOf.get(it.type) ?? null) as Json,
          };
          if (nAhead >= cap) data.queue_ahead_at_least = cap;
          const er = etaOf.get(it.type)!;
          data.eta = etaInputs(er.durationsUs, er.workers);
          // The not-before wait comes before the queue (a future not_before).
          if (it.notBefore != null && it.notBefore > now) data.wait_seconds = microsToSeconds(it.notBefore - now);
          const change = b.enqueue(
            {
              id: it.id,
              tenant: b.tenant,
              run_id: it.runId,
              source_id: it.sourceId,
              type: it.type,
              payload: it.payload,
              payload_sha256: it.payloadSha,
              idempotency_key: it.key,
              priority: it.priority,
              max_attempts: it.maxAttempts,
              not_before: nb,
            },
            it.canonical,
            data,
            at,
          );
          // A job of a paused type waits paused from its first row on.
          const pause = b.pauseNow(it.type);
          if (pause) b.transition(change.slot, 'paused', 'queued', pauseData(pause), at);
          changes.push({ id: it.id, change });
        });
        return () => {
          for (const ch of changes) out.set(ch.id, { job: ch.change.job, created: true });
          for (const it of items) if (!out.has(it.id)) out.set(it.id, { job: out.get(firstOfKey.get(it.key!)!.id)!.job, created: false });
          return out;
        };
      },
    };
  }

  /**
   * Claims the best ready jobs of the given types (priority, then not_before, then age) with
   * FOR UPDATE SKIP LOCKED: one, or up to `limit` in one transaction. A job whose source host
   * has an empty token bucket is moved to throttled (with the expected wait) and the next
   * candidate is tried.
   */
  async claim(tenant: string, input: ClaimInput & { limit: number }): Promise<ClaimedJob[]>;
  async claim(tenant: string, input: ClaimInput): Promise<ClaimedJob | null>;
  async claim(tenant: string, input: ClaimInput): Promise<ClaimedJob | ClaimedJob[] | null> {
    v.tenant(tenant);
    const worker = v.workerId(input.workerId);
    if (!Array.isArray(input.types) || input.types.length === 0 || input.types.length > 50)
      throw new OkitError('INVALID_INPUT', 'types: must list 1 to 50 job types', { field: 'types' });
    const types = input.types.map((x) => v.jobType(x, 'types'));
    const leaseSeconds = v.int(input.leaseSeconds, 'lease_seconds', 1, 3600, this.l.opts.defaultLeaseSeconds);
    const limit = input.limit === undefined ? undefined : v.int(input.limit, 'limit', 1, MAX_CLAIM_LIMIT);
    const now = this.l.clock.now();
    const out = await this.l.writer.submit(tenant, claimUnit(worker, types, leaseSeconds, limit ?? 1, now));
    return limit === undefined ? (out[0] ?? null) : out;
  }

  /** Extends a lease. Not a signal change: no history row, no position, no NOTIFY. */
  async heartbeat(tenant: string, jobId: string, holder: LeaseHolder, leaseSecondsIn?: number): Promise<{ leaseExpiresAt: string }> {
    v.tenant(tenant);
    const { worker, token } = leaseOf(holder);
    const leaseSeconds = v.int(leaseSecondsIn, 'lease_seconds', 1, 3600, this.l.opts.defaultLeaseSeconds);
    v.uuid(jobId, 'job_id');
    const now = this.l.clock.now();
    const out = await withTx(this.l.pool, async (c) => {
      const { rows } = await c.query(`SELECT ${JOB_COLUMNS}, lease_token FROM okit.jobs WHERE id = $1 AND tenant = $2 FOR UPDATE`, [jobId, tenant]);
      if (rows.length === 0) throw new OkitError('JOB_NOT_FOUND', `job ${jobId} not found`, { job_id: jobId });
      const job = toJob(rows[0]);
      checkLease(job, (rows[0].lease_token as string | null) ?? null, worker, token);
      if (job.lease_expires_at && parseMicros(job.lease_expires_at) < now)
        throw new OkitError('LEASE_NOT_HELD', `job ${jobId}: the lease expired at ${job.lease_expires_at}`, { job_id: jobId });
      const until = formatMicros(now + BigInt(leaseSeconds) * SECOND);
      await c.query('UPDATE okit.jobs SET lease_expires_at = $2 WHERE id = $1', [jobId, until]);
      return { leaseExpiresAt: until };
    });
    // The batch writer's known row of the job moves with the lease (else its next write would find it stale).
    this.l.writer.known.leaseExtended(tenant, jobId, out.leaseExpiresAt);
    return out;
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
    v.uuid(jobId, 'job_id');
    const now = this.l.clock.now();
    return this.l.writer.submit(tenant, {
      weight: 1,
      async run(b) {
        const slot = leased(await b.job(jobId), jobId, worker, token);
        const ch = b.transition(slot, 'progress', 'running', data, now);
        return () => ch.snapshot();
      },
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
    v.uuid(jobId, 'job_id');
    const now = this.l.clock.now();
    return this.l.writer.submit(tenant, {
      weight: 1,
      async run(b) {
        const slot = leased(await b.job(jobId), jobId, worker, token);
        const ch = b.transition(slot, 'succeeded', 'succeeded', data, now, NO_LEASE);
        return () => ch.snapshot();
      },
    });
  }

  /** Retry delay: base·2^(attempt-1) capped, with ±10 % jitter derived from (job, attempt) so replays agree. */
  backoffMicros(jobId: string, attempt: number): Micros {
    const raw = Math.min(this.l.opts.backoffCapSeconds, this.l.opts.backoffBaseSeconds * 2 ** Math.max(0, attempt - 1));
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
    const up = input.upstream == null ? null : { ...upstreamInput(input.upstream, 'upstream'), host: input.upstream.host == null ? null : hostField(input.upstream.host) };
    v.uuid(jobId, 'job_id');
    const now = this.l.clock.now();
    const backoff = (attempt: number) => this.backoffMicros(jobId, attempt);
    const seed = { ...this.l.opts.defaultBucket, now };
    return this.l.writer.submit(tenant, {
      weight: up ? 2 : 1,
      async run(b) {
        const [got] = await Promise.all([b.job(jobId), b.pausedTypes()]);
        const slot0 = leased(got, jobId, worker, token);
        let host: string | null = null;
        if (up) {
          // The upstream's host: as given, else the job's source's.
          host = up.host ?? (slot0.job.source_id ? ((await b.source(slot0.job.source_id))?.host ?? null) : null);
          if (!host) throw new OkitError('INVALID_INPUT', 'upstream.host: is required when the job has no source', { field: 'upstream.host' });
          await b.bucket(host, seed);
        }
        const retry = retryable && slot0.job.attempt < slot0.job.max_attempts;
        // Every failure learns (issue 14): a retry's row carries its signature too, for the MTTR ETA.
        const [sigs, etaRow] = await Promise.all([b.signatures(), retry ? b.etaRow(slot0.job.type) : null]);
        // Checks and changes in one step: another unit of the batch may have moved the job meanwhile.
        const slot = leased(slot0, jobId, worker, token);
        const base: { [k: string]: Json } = { worker_id: worker, attempt: slot.job.attempt, error };
        if (up && host) {
          recordPenalty(b, host, up, now, { worker, jobId });
          base.upstream = { status: up.status, retry_after_seconds: up.retryAfterSeconds === null ? null : String(up.retryAfterSeconds), host };
        }
        const signature = learnSignature(
          sigs,
          b.tenant,
          { error_code: error.code, phase: String(lastPhase(slot)), type: slot.job.type, payload: slot.job.payload },
          now,
          formatMicros(now),
        );
        if (signature) base.signature = signature;
        if (retry) {
          let delay = backoff(slot.job.attempt);
          // Not before the upstream said it would take us again.
          const wait = up?.retryAfterSeconds ? secondsToMicros(up.retryAfterSeconds) : 0n;
          if (wait > delay) delay = wait;
          const retryAt = formatMicros(now + delay);
          const ch = b.transition(slot, 'retry_scheduled', 'queued', { ...base, retry_at: retryAt, backoff_seconds: microsToSeconds(delay), eta: etaInputs(etaRow!.durationsUs) }, now, {
            ...NO_LEASE,
            not_before: retryAt,
          });
          const pause = b.pauseNow(slot.job.type);
          const after = pause ? b.transition(slot, 'paused', 'queued', pauseData(pause), now) : ch;
          return () => after.snapshot();
        }
        const data: { [k: string]: Json } = { ...base, retryable };
        const ch = b.transition(slot, retryable ? 'dead_lettered' : 'failed', retryable ? 'dead_letter' : 'failed', data, now, NO_LEASE);
        return () => ch.snapshot();
      },
    });
  }

  async cancel(tenant: string, jobId: string, input: { actor: string; reason?: string | null }): Promise<Snapshot> {
    v.tenant(tenant);
    const { actor, reason } = v.actorInput(input);
    v.uuid(jobId, 'job_id');
    const now = this.l.clock.now();
    return this.l.writer.submit(tenant, {
      weight: 1,
      async run(b) {
        const slot = found(await b.job(jobId), jobId);
        if (TERMINAL_STATES.has(slot.job.state))
          throw new OkitError('ILLEGAL_TRANSITION', `job ${jobId} is already ${slot.job.state}`, { job_id: jobId, state: slot.job.state });
        const ch = b.transition(slot, 'canceled', 'canceled', { actor, reason }, now, NO_LEASE);
        return () => ch.snapshot();
      },
    });
  }

  /**
   * Ends a lease at once, as if it had expired now (`lease_expired`: back to the queue with the
   * attempt counted, or dead-lettered on the last attempt). For a claim whose claimer is known
   * to have gone before it heard of it (a long-poll claim whose client disconnected): the job
   * comes back now instead of after its lease seconds. Only the lease's own token ends it.
   */
  async abandon(tenant: string, jobId: string, holder: { workerId: string; leaseToken: string }): Promise<void> {
    v.tenant(tenant);
    const { worker, token } = leaseOf(holder);
    v.uuid(jobId, 'job_id');
    const now = this.l.clock.now();
    const cap = this.l.opts.queuePositionCap;
    await this.l.writer.submit(tenant, {
      weight: 1,
      async run(b) {
        const slot0 = leased(await b.job(jobId), jobId, worker, token);
        const [ahead, er] = await Promise.all([b.queueAhead(slot0.job.type), b.etaRow(slot0.job.type)]);
        const slot = leased(slot0, jobId, worker, token);
        const job = slot.job;
        const last = job.attempt >= job.max_attempts;
        b.transition(
          slot,
          'lease_expired',
          last ? 'dead_letter' : 'queued',
          { worker_id: job.lease_owner, attempt: job.attempt, lease_expires_at: formatMicros(now), ...(last ? {} : requeueData(er, ahead, cap)) },
          now,
          { lease_owner: null, lease_expires_at: null, ...(last ? {} : { not_before: formatMicros(now) }) },
        );
        return () => undefined;
      },
    });
  }

  /**
   * Returns running jobs whose lease ran out to the queue (the attempt stays counted), or
   * dead-letters them when that was their last attempt. A tenant's expiries go to the writer
   * together (one batch, in lease order); a job another transaction holds is left for next time.
   */
  async expireLeases(opts: { tenant?: string; limit?: number } = {}): Promise<number> {
    const now = this.l.clock.now();
    const cap = this.l.opts.queuePositionCap;
    const { rows } = await this.l.pool.query(
      `SELECT id, tenant FROM okit.jobs WHERE state = 'running' AND lease_expires_at < $1 ${opts.tenant ? 'AND tenant = $3' : ''}
       ORDER BY lease_expires_at, id LIMIT $2`,
      opts.tenant ? [formatMicros(now), opts.limit ?? 500, v.tenant(opts.tenant)] : [formatMicros(now), opts.limit ?? 500],
    );
    const settled = await Promise.allSettled(
      rows.map((r) =>
        this.l.writer.submit<boolean>(String(r.tenant), {
          weight: 1,
          async run(b) {
            const [slot0] = await Promise.all([b.jobIfFree(String(r.id)), b.pausedTypes()]);
            const type = slot0?.job.type;
            const [ahead, er] = type === undefined ? [0, null] : await Promise.all([b.queueAhead(type), b.etaRow(type)]);
            const slot = slot0;
            const job = slot?.job;
            if (!slot || !job || !er || job.state !== 'running' || !job.lease_expires_at || parseMicros(job.lease_expires_at) >= now) return () => false;
            const last = job.attempt >= job.max_attempts;
            b.transition(
              slot,
              'lease_expired',
              last ? 'dead_letter' : 'queued',
              { worker_id: job.lease_owner, attempt: job.attempt, lease_expires_at: job.lease_expires_at, ...(last ? {} : requeueData(er, ahead, cap)) },
              now,
              { lease_owner: null, lease_expires_at: null, ...(last ? {} : { not_before: formatMicros(now) }) },
            );
            const pause = last ? null : b.pauseNow(job.type);
            if (pause) b.transition(slot, 'paused', 'queued', pauseData(pause), now);
            return () => true;
          },
        }),
      ),
    );
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return settled.filter((s) => s.status === 'fulfilled' && s.value).length;
  }
}

/** Who paused a type and why, as each of its waiting jobs' `paused` rows records it. */
export function pauseData(p: { actor: string; reason: string | null }): { [k: string]: Json } {
  return { actor: p.actor, reason: p.reason };
}

/** States an operator's retry takes a job out of. */
export const RETRYABLE_STATES: readonly JobState[] = ['failed', 'dead_letter', 'canceled'];

/** The operator's job actions: retry, bulk retry of dead letters, prioritize. */
export class ControlOps {
  constructor(private readonly l: LedgerCore) {}

  /**
   * failed, dead_letter or canceled → queued, claimable at once, with its attempts given back
   * (attempt 0: it has its max_attempts again). Anything else is ILLEGAL_TRANSITION.
   */
  async retry(tenant: string, jobId: string, input: { actor: string; reason?: string | null }): Promise<Snapshot> {
    v.tenant(tenant);
    const { actor, reason } = v.actorInput(input);
    v.uuid(jobId, 'job_id');
    const now = this.l.clock.now();
    const cap = this.l.opts.queuePositionCap;
    return this.l.writer.submit(tenant, {
      weight: 2,
      async run(b) {
        const [got] = await Promise.all([b.job(jobId), b.pausedTypes()]);
        const slot0 = found(got, jobId);
        const [ahead, er] = await Promise.all([b.queueAhead(slot0.job.type), b.etaRow(slot0.job.type)]);
        const slot = found(slot0, jobId);
        if (!RETRYABLE_STATES.includes(slot.job.state))
          throw new OkitError('ILLEGAL_TRANSITION', `job ${jobId} is ${slot.job.state}: only a failed, dead_letter or canceled job can be retried`, {
            job_id: jobId,
            state: slot.job.state,
          });
        const ch = retried(b, slot, actor, reason, now, requeueData(er, ahead, cap));
        return () => ch.snapshot();
      },
    });
  }

  /**
   * Retries up to `limit` (1..1000) dead-lettered jobs of one type, longest dead first, in one
   * transaction; `more` tells whether dead letters of the type remain.
   */
  async retryDeadLetters(
    tenant: string,
    input: { type: string; limit?: number; actor: string; reason?: string | null },
  ): Promise<{ jobs: Array<{ job: Job; snapshot: Snapshot }>; more: boolean }> {
    v.tenant(tenant);
    const type = v.jobType(input?.type);
    const limit = v.int(input.limit, 'limit', 1, MAX_ENQUEUE_BATCH, 100);
    const actor = v.text(input.actor, 'actor', 100)!;
    const reason = v.text(input.reason, 'reason', v.MAX_REASON_CHARS, true);
    const now = this.l.clock.now();
    const cap = this.l.opts.queuePositionCap;
    return this.l.writer.submit(tenant, {
      weight: limit * 2,
      async run(b) {
        const [, ahead, er] = await Promise.all([b.pausedTypes(), b.queueAhead(type), b.etaRow(type)]);
        const slots = await b.jobsWhere(type, ['dead_letter'], null, limit + 1, 'updated');
        // They join the queue in this order, each behind the ones before it.
        const changes = slots
          .slice(0, limit)
          .filter((s) => s.job.state === 'dead_letter')
          .map((s, i) => retried(b, s, actor, reason, now, requeueData(er, ahead + i, cap)));
        return () => ({ jobs: changes.map((c) => ({ job: c.job, snapshot: c.snapshot() })), more: slots.length > limit });
      },
    });
  }

  /** A queued or throttled job's new priority (-1000..1000); anything else is ILLEGAL_TRANSITION. */
  async prioritize(tenant: string, jobId: string, input: { priority: number; actor: string; reason?: string | null }): Promise<Snapshot> {
    v.tenant(tenant);
    const priority = v.int(input?.priority, 'priority', -1000, 1000);
    const actor = v.text(input.actor, 'actor', 100)!;
    const reason = v.text(input.reason, 'reason', v.MAX_REASON_CHARS, true);
    v.uuid(jobId, 'job_id');
    const now = this.l.clock.now();
    return this.l.writer.submit(tenant, {
      weight: 1,
      async run(b) {
        const slot = found(await b.job(jobId), jobId);
        const state = slot.job.state;
        if (state !== 'queued' && state !== 'throttled')
          throw new OkitError('ILLEGAL_TRANSITION', `job ${jobId} is ${state}: only a queued or throttled job can be prioritized`, { job_id: jobId, state });
        const ch = b.transition(slot, 'prioritized', state, { actor, reason, priority, priority_before: slot.job.priority }, now, { priority });
        return () => ch.snapshot();
      },
    });
  }
}

/**
 * A requeued job's queue inputs (`retried`, `lease_expired`, docs/eta.md): its place behind the
 * type's queue as the batch read it (capped like an enqueue's), and the type's ETA inputs.
 */
function requeueData(er: EtaRow, ahead: number, cap: number): { [k: string]: Json } {
  return { queue_position: ahead < cap ? ahead + 1 : null, ...(ahead >= cap ? { queue_ahead_at_least: cap } : {}), eta: etaInputs(er.durationsUs, er.workers) };
}

function retried(b: UnitView, slot: Slot, actor: string, reason: string | null, now: Micros, queue: { [k: string]: Json }): Change {
  const ch = b.transition(slot, 'retried', 'queued', { actor, reason, attempts_given_back: slot.job.attempt, ...queue }, now, {
    attempt: 0,
    not_before: formatMicros(now),
    ...NO_LEASE,
  });
  const pause = b.pauseNow(slot.job.type);
  return pause ? b.transition(slot, 'paused', 'queued', pauseData(pause), now) : ch;
}

function claimUnit(worker: string, types: string[], leaseSeconds: number, limit: number, now: Micros): Unit<ClaimedJob[]> {
  return {
    weight: limit,
    async run(b) {
      const got: Array<{ change: Change; attempt: number; leaseUntil: string; leaseToken: string }> = [];
      // Claims skip paused types (the write re-checks, under the head lock, that none was paused meanwhile).
      await b.pausedTypes();
      const open = types.filter((t) => b.pauseNow(t) === null);
      for (let tries = 0; open.length > 0 && tries < CLAIM_TRIES && got.length < limit; tries++) {
        const cands = await b.candidates(open, now, limit - got.length);
        if (cands.length === 0) break;
        const hosts = [...new Set(cands.map((c) => c.host).filter((h): h is string => !!h))];
        const candTypes = [...new Set(cands.map((c) => c.job.type))];
        // ETA inputs for the claimed and throttled rows (docs/eta.md): one read for the batch's types, before the sync loop.
        const [, etaRows] = await Promise.all([Promise.all(hosts.map((h) => b.bucket(h))), Promise.all(candTypes.map((t) => b.etaRow(t)))]);
        const etaOfType = new Map(candTypes.map((t, i) => [t, etaInputs(etaRows[i]!.durationsUs)]));
        for (const slot of cands) {
          const job = slot.job;
          // Another unit of this batch may have moved it (a cancel) or paused its type: not claimable now.
          if (job.state !== 'queued' && job.state !== 'throttled') continue;
          if (b.pauseNow(job.type) !== null) continue;
          if (slot.host) {
            const bucket = b.bucketNow(slot.host);
            if (bucket) {
              const r = consumeToken(bucket, now);
              b.setBucket(slot.host, r.bucket);
              if (!r.ok) {
                const until = now + r.waitUs;
                b.transition(
                  slot,
                  'throttled',
                  'throttled',
                  {
                    host: slot.host,
                    throttled_until: formatMicros(until),
                    wait_seconds: microsToSeconds(r.waitUs),
                    tokens: fromMicroUnits(r.bucket.tokens),
                    eta: etaOfType.get(job.type)!,
                  },
                  now,
                  { not_before: formatMicros(until) },
                );
                continue;
              }
              if (r.restored) b.throttleEvent(slot.host, 'refill_restored', { refill_per_sec: fromMicroUnits(r.bucket.refill) }, now);
            }
          }
          const attempt = job.attempt + 1;
          const leaseUntil = formatMicros(now + BigInt(leaseSeconds) * SECOND);
          // Random, never in history (which readers see) nor in the job row's public columns.
          const leaseToken = randomBytes(16).toString('base64url');
          const change = b.transition(
            slot,
            'claimed',
            'running',
            { worker_id: worker, attempt, lease_expires_at: leaseUntil, eta: etaOfType.get(job.type)! },
            now,
            { attempt, lease_owner: worker, lease_expires_at: leaseUntil },
            leaseToken,
          );
          got.push({ change, attempt, leaseUntil, leaseToken });
        }
      }
      return () => got.map((g) => ({ job: g.change.job, leaseExpiresAt: g.leaseUntil, attempt: g.attempt, leaseToken: g.leaseToken }));
    },
  };
}

// Checks and the change they guard run in one synchronous step after the last await: other
// units of the batch run between awaits, and may have moved the job.

function found(slot: Slot | null, jobId: string): Slot {
  if (!slot) throw new OkitError('JOB_NOT_FOUND', `job ${jobId} not found`, { job_id: jobId });
  return slot;
}

/** The job columns a transition out of `running` clears (and the lease token with them). */
const NO_LEASE = { lease_owner: null, lease_expires_at: null } as const;

function leaseOf(h: LeaseHolder): { worker: string; token: string | null } {
  if (h !== null && typeof h === 'object') return { worker: v.workerId(h.workerId), token: v.leaseToken(h.leaseToken) };
  return { worker: v.workerId(h), token: null };
}

function checkLease(job: Job, current: string | null, worker: string, token: string | null): void {
  // A canceled job tells its worker so: stop the work, report nothing more (409 JOB_CANCELED).
  if (job.state === 'canceled') throw new OkitError('JOB_CANCELED', `job ${job.id} was canceled; stop working on it`, { job_id: job.id, state: job.state });
  if (job.state !== 'running') throw new OkitError('ILLEGAL_TRANSITION', `job ${job.id} is ${job.state}, not running`, { job_id: job.id, state: job.state });
  if (job.lease_owner !== worker) throw new OkitError('LEASE_NOT_HELD', `job ${job.id} is leased by another worker`, { job_id: job.id });
  if (token !== null && !constantTimeEqual(current ?? '', token))
    throw new OkitError('LEASE_NOT_HELD', `job ${job.id}: this lease token is not the current lease's (the job was claimed again since)`, { job_id: job.id });
}

/** The job, if `worker` (with `token`, when given) holds its lease. */
function leased(slot: Slot | null, jobId: string, worker: string, token: string | null): Slot {
  checkLease(found(slot, jobId).job, slot!.leaseToken, worker, token);
  return slot!;
}

/** The phase of the job's last progress row, this batch's rows included. */
function lastPhase(slot: Slot): Json {
  const rows: Array<Pick<HistoryRow, 'event' | 'data'>> = [...slot.history, ...slot.rows];
  for (let i = rows.length - 1; i >= 0; i--) if (rows[i]!.event === 'progress') return rows[i]!.data.phase ?? 'unknown';
  return 'unknown';
}

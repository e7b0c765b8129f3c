/**
 * OkitWorker: the worker runtime. It claims jobs of its types (a long-poll woken by NOTIFY on
 * the server), runs up to `concurrency` handlers at once, keeps their leases alive with
 * background heartbeats, aborts a handler whose job was canceled or whose lease was lost (and
 * then reports nothing for it), maps what the handler returned or threw onto complete / fail,
 * and drains gracefully on stop() or SIGTERM (a second SIGTERM stops at once).
 *
 *   const worker = new OkitWorker({ url, token, types: ['scan'], concurrency: 4, handler: async (job, ctx) => {
 *     await ctx.progress('analyze', { itemsDone: 3, itemsTotal: 10 });
 *     return { findings: 3 };
 *   } });
 *   await worker.run();   // until stop()
 *
 * Reports survive a server that goes away: heartbeats, progress, complete and fail are retried
 * with backoff for as long as the lease would last; once it would have expired the handler is
 * aborted and nothing is reported as a success (the server's reaper returns the job).
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import { isOkitError, OkitError } from '../errors.js';
import type { Job } from '../ledger/types.js';
import * as v from '../ledger/validate.js';
import { isRetryable, OkitClient, type BucketView, type Claim, type LeaseRef } from './client.js';
import type { Upstream } from './errors.js';

export interface ProgressReport {
  itemsDone?: number;
  itemsTotal?: number;
  summary?: string;
}

/** What a handler gets besides its job. */
export interface JobContext {
  job: Job;
  /** 1 for the first attempt. */
  attempt: number;
  workerId: string;
  /** Aborted when the job is canceled, its lease is lost, its timeout passes, or the worker stops. */
  signal: AbortSignal;
  /** Reports a phase and progress (it becomes the job's first signal). Rejects with JOB_CANCELED or LEASE_NOT_HELD once the job is not ours. */
  progress(phase: string, report?: ProgressReport): Promise<void>;
  /** The upstream throttled us (429 with Retry-After, 503): slow that host's bucket now (null: the job's source's host). Answers the bucket. */
  reportThrottle(host: string | null, retryAfterSeconds?: number, status?: number): Promise<BucketView>;
}

export type Handler = (job: Job, ctx: JobContext) => Promise<Record<string, unknown> | void | null | undefined> | Record<string, unknown> | void | null | undefined;

export interface WorkerOptions {
  /** A client, or `url` and `token` to make one. */
  client?: OkitClient;
  url?: string;
  token?: string;
  /** Default: `<hostname>-<pid>`, made to fit `^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$`. */
  workerId?: string;
  /** Job types to claim (1..50). */
  types: string[];
  /** Handlers running at once (default 1, at most 100). */
  concurrency?: number;
  /** Lease per claim, seconds (default 30). */
  leaseSeconds?: number;
  /** Heartbeat interval, seconds (default leaseSeconds / 3). */
  heartbeatSeconds?: number;
  /** How long one claim long-poll waits for a job, seconds (default 5, at most 30). */
  claimWaitSeconds?: number;
  /** A handler running longer than this is aborted and its job failed retryably (JOB_TIMEOUT). Default: none. */
  timeoutSeconds?: number;
  /** How long stop() lets running handlers finish before aborting them, seconds (default 25). */
  drainSeconds?: number;
  /** After aborting a handler (stop, timeout), how long to wait for it to return before reporting, ms (default 5000). */
  abortGraceMs?: number;
  /**
   * Follow each running job's first signal by long-poll, so a cancel aborts the handler within
   * milliseconds instead of at the next heartbeat (default true; one extra request per running job).
   */
  watchCancel?: boolean;
  /** Drain on SIGTERM/SIGINT, stop at once on the second (default false; `okit work` sets it). */
  handleSignals?: boolean;
  handler: Handler;
}

export type StopReason = 'canceled' | 'lease-lost' | 'lease-expired' | 'stopping' | 'timeout';

export interface WorkerEvents {
  claimed: [{ job: Job; attempt: number }];
  completed: [{ job: Job; attempt: number; result: Record<string, unknown> | undefined; ms: number }];
  failed: [{ job: Job; attempt: number; code: string; message: string; retryable: boolean; ms: number }];
  /** The job is not ours any more (lease lost or expired): the handler was aborted, nothing was reported. */
  leaseLost: [{ job: Job; attempt: number; reason: 'lease-lost' | 'lease-expired'; ms: number }];
  /** The job was canceled under us: the handler was aborted, nothing was reported. `abortedMs`: cancel noticed → handler's signal aborted. */
  canceled: [{ job: Job; attempt: number; ms: number }];
  /** Something went wrong that the worker rides out (a failed heartbeat, claim or report, a refused progress). */
  warn: [{ message: string; error?: unknown; job?: Job }];
  stopped: [];
}

interface Running {
  claim: Claim;
  lease: LeaseRef;
  ac: AbortController;
  reason: StopReason | null;
  started: number;
  /** performance.now() at which the lease runs out, as last extended. */
  leaseDeadline: number;
  settled: boolean;
  hbTimer: NodeJS.Timeout | null;
  watch: AbortController;
  /** Resolves when the handler has returned (or thrown). */
  done: Promise<void>;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Codes that mean "this job's lease is not ours any more". */
const LOST = new Set(['LEASE_NOT_HELD', 'ILLEGAL_TRANSITION', 'JOB_NOT_FOUND']);
/** Codes that make claiming pointless: the worker stops with the error. */
const FATAL = new Set(['UNAUTHORIZED', 'FORBIDDEN', 'INVALID_INPUT', 'INVALID_JSON']);
const CODE_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
// What an error message may not hold (the ledger refuses control characters in text fields).
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** Any text as a valid `error.message`: control characters escaped, 1..2000 code points. */
export function messageText(s: unknown, max = v.MAX_ERROR_MESSAGE_CHARS): string {
  let t = String(s ?? '').replace(CONTROL_RE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  // Lone surrogates and noncharacters cannot be stored either.
  t = t.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|[\ufdd0-\ufdef\ufffe\uffff]/g, '\ufffd');
  const cps = [...t];
  if (cps.length > max) t = cps.slice(0, max - 1).join('') + '…';
  return t.length > 0 ? t : '(no message)';
}

function defaultWorkerId(): string {
  const id = `${os.hostname()}-${process.pid}`.replace(/[^A-Za-z0-9._:@-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return (id || `worker-${process.pid}`).slice(0, 100);
}

export class OkitWorker extends EventEmitter<WorkerEvents> {
  readonly client: OkitClient;
  readonly workerId: string;
  readonly types: string[];
  readonly concurrency: number;
  readonly leaseSeconds: number;
  readonly heartbeatMs: number;
  readonly claimWait: number;
  private readonly o: WorkerOptions;
  private readonly running = new Map<string, Running>();
  private state: 'idle' | 'running' | 'draining' | 'stopped' = 'idle';
  private claimAbort = new AbortController();
  private stopSignal = new AbortController();
  private slotFreed: (() => void) | null = null;
  private runPromise: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private now = false;

  constructor(o: WorkerOptions) {
    super();
    this.o = o;
    if (typeof o.handler !== 'function') throw new OkitError('INVALID_INPUT', 'handler: must be a function', { field: 'handler' });
    this.client = o.client ?? new OkitClient({ url: o.url ?? '', token: o.token ?? '' });
    this.workerId = v.workerId(o.workerId ?? defaultWorkerId());
    if (!Array.isArray(o.types) || o.types.length === 0 || o.types.length > 50) throw new OkitError('INVALID_INPUT', 'types: must list 1 to 50 job types', { field: 'types' });
    this.types = o.types.map((t) => v.jobType(t, 'types'));
    this.concurrency = v.int(o.concurrency, 'concurrency', 1, 100, 1);
    this.leaseSeconds = v.int(o.leaseSeconds, 'lease_seconds', 1, 3600, 30);
    this.heartbeatMs = 1000 * (o.heartbeatSeconds === undefined ? this.leaseSeconds / 3 : v.num(o.heartbeatSeconds, 'heartbeat_seconds', 0.05, this.leaseSeconds));
    this.claimWait = o.claimWaitSeconds === undefined ? 5 : v.num(o.claimWaitSeconds, 'claim_wait_seconds', 0, 30);
    if (o.timeoutSeconds !== undefined) v.num(o.timeoutSeconds, 'timeout_seconds', 0.001, 7 * 86400);
    if (o.drainSeconds !== undefined) v.num(o.drainSeconds, 'drain_seconds', 0, 86400);
  }

  /** Jobs whose handlers are running now. */
  get active(): number {
    return this.running.size;
  }

  /** Claims and runs jobs until stop() (or stopNow()); resolves once drained. Rejects if claiming is pointless (a bad token, say). */
  run(): Promise<void> {
    if (this.runPromise) return this.runPromise;
    this.state = 'running';
    const onSignal = () => {
      if (this.state === 'running') void this.stop();
      else void this.stopNow();
    };
    if (this.o.handleSignals) {
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    }
    this.runPromise = (async () => {
      try {
        await this.claimLoop();
        await (this.stopping ?? this.stop());
      } finally {
        if (this.o.handleSignals) {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
        }
      }
    })();
    return this.runPromise;
  }

  /**
   * Graceful drain: stop claiming, let running handlers finish for up to `drainSeconds`, then
   * abort the rest and fail them retryably (WORKER_STOPPED). Resolves when done.
   */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.state = 'draining';
    this.claimAbort.abort(); // the server hands back anything it claimed for this poll
    this.slotFreed?.(); // a claim loop waiting for a free slot looks at the state again
    this.stopping = (async () => {
      const deadline = performance.now() + 1000 * (this.o.drainSeconds ?? 25);
      // Handlers still running (a claim answered just before the stop adds one) get until the deadline.
      while (this.running.size > 0 && performance.now() < deadline && !this.stopSignal.signal.aborted) {
        const pending = [...this.running.values()].filter((r) => !r.settled).map((r) => r.done);
        if (pending.length === 0) break;
        await Promise.race([Promise.race(pending), sleep(deadline - performance.now(), this.stopSignal.signal)]);
      }
      for (const r of this.running.values()) this.abortJob(r, 'stopping');
      await Promise.race([this.allReported(), sleep(this.now ? 1500 : (this.o.abortGraceMs ?? 5000) + 10_000)]);
      this.state = 'stopped';
      this.emit('stopped');
    })();
    return this.stopping;
  }

  /** Stops at once: aborts every handler, fails their jobs retryably (a short best effort), resolves. */
  stopNow(): Promise<void> {
    this.now = true;
    this.stopSignal.abort();
    return this.stop();
  }

  private reports = new Set<Promise<void>>();
  private allReported(): Promise<unknown> {
    return Promise.all([...this.reports]);
  }

  private async claimLoop(): Promise<void> {
    let backoff = 100;
    while (this.state === 'running') {
      const free = this.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise<void>((r) => (this.slotFreed = r));
        continue;
      }
      let claims: Claim[];
      try {
        claims = await this.client.claimMany({
          workerId: this.workerId,
          types: this.types,
          leaseSeconds: this.leaseSeconds,
          limit: free,
          wait: this.claimWait,
          signal: this.claimAbort.signal,
        });
        backoff = 100;
      } catch (e) {
        if (this.state !== 'running') break;
        if (isOkitError(e) && FATAL.has(e.code)) {
          this.state = 'draining';
          await this.stop();
          throw e;
        }
        this.emit('warn', { message: `claim failed (${(e as Error).message}); retrying in ${backoff} ms`, error: e });
        await sleep(backoff, this.claimAbort.signal);
        backoff = Math.min(5000, backoff * 2);
        continue;
      }
      for (const c of claims) this.start(c);
    }
  }

  private start(claim: Claim): void {
    const lease = { workerId: this.workerId, leaseToken: claim.leaseToken };
    const r: Running = {
      claim,
      lease,
      ac: new AbortController(),
      reason: null,
      started: performance.now(),
      leaseDeadline: performance.now() + this.leaseSeconds * 1000,
      settled: false,
      hbTimer: null,
      watch: new AbortController(),
      done: Promise.resolve(),
    };
    this.running.set(claim.job.id, r);
    this.emit('claimed', { job: claim.job, attempt: claim.attempt });
    this.scheduleHeartbeat(r, this.heartbeatMs);
    if (this.o.watchCancel !== false) void this.watch(r);
    const timeout = this.o.timeoutSeconds === undefined ? null : setTimeout(() => this.abortJob(r, 'timeout'), this.o.timeoutSeconds * 1000);
    const ctx: JobContext = {
      job: claim.job,
      attempt: claim.attempt,
      workerId: this.workerId,
      signal: r.ac.signal,
      progress: (phase, rep = {}) => this.progress(r, phase, rep),
      reportThrottle: (host, retryAfter, status = 429) =>
        this.client.reportThrottle({ host, status, retryAfterSeconds: retryAfter, workerId: this.workerId, jobId: claim.job.id }),
    };
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
    r.done = (async () => {
      try {
        outcome = { ok: true, value: await this.o.handler(claim.job, ctx) };
      } catch (e) {
        outcome = { ok: false, error: e };
      }
    })();
    // After an abort, wait a grace period for the handler, then report anyway.
    const settledOrGrace: Promise<void> = Promise.race([
      r.done,
      new Promise<void>((resolve) => {
        const onAbort = () => setTimeout(resolve, this.now ? 500 : (this.o.abortGraceMs ?? 5000)).unref();
        if (r.ac.signal.aborted) onAbort();
        else r.ac.signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    const report = settledOrGrace
      .then(async () => {
        if (timeout) clearTimeout(timeout);
        r.settled = true;
        if (r.hbTimer) clearTimeout(r.hbTimer);
        r.watch.abort();
        await this.finish(r, outcome ?? { ok: false, error: new Error('the handler did not return after it was aborted') });
      })
      .catch((e) => {
        this.emit('warn', { message: `reporting job ${claim.job.id} failed: ${(e as Error).message}`, error: e, job: claim.job });
      })
      .finally(() => {
        this.reports.delete(report);
        // The slot is free only once the handler returned: concurrency is honoured even for a slow abort.
        void r.done.then(() => {
          this.running.delete(claim.job.id);
          this.slotFreed?.();
          this.slotFreed = null;
        });
      });
    this.reports.add(report);
  }

  private abortJob(r: Running, reason: StopReason): void {
    if (r.reason !== null || r.settled) return;
    r.reason = reason;
    r.ac.abort(new OkitError(reason === 'canceled' ? 'JOB_CANCELED' : reason === 'timeout' ? 'JOB_TIMEOUT' : reason === 'stopping' ? 'WORKER_STOPPED' : 'LEASE_NOT_HELD', `job ${r.claim.job.id}: ${reason}`));
  }

  // ---------------------------------------------------------------- lease upkeep

  private scheduleHeartbeat(r: Running, ms: number): void {
    if (r.settled) return;
    if (r.hbTimer) clearTimeout(r.hbTimer);
    r.hbTimer = setTimeout(() => void this.heartbeat(r), ms);
  }

  private async heartbeat(r: Running, attempt = 0): Promise<void> {
    if (r.settled || r.reason) return;
    const t0 = performance.now();
    try {
      await this.client.heartbeat(r.claim.job.id, { ...r.lease, leaseSeconds: this.leaseSeconds });
      r.leaseDeadline = t0 + this.leaseSeconds * 1000;
      this.scheduleHeartbeat(r, this.heartbeatMs);
    } catch (e) {
      if (r.settled || r.reason) return;
      if (this.lostBy(r, e)) return;
      // The server is away (or answered oddly): retry with backoff while the lease lasts.
      const left = r.leaseDeadline - performance.now();
      if (left <= 0) {
        this.emit('warn', { message: `job ${r.claim.job.id}: its lease ran out while the server could not be reached`, error: e, job: r.claim.job });
        return this.abortJob(r, 'lease-expired');
      }
      const delay = Math.min(left, 200 * 2 ** Math.min(attempt, 5), this.heartbeatMs);
      this.emit('warn', { message: `heartbeat for job ${r.claim.job.id} failed (${(e as Error).message}); retrying in ${Math.round(delay)} ms`, error: e, job: r.claim.job });
      if (r.hbTimer) clearTimeout(r.hbTimer);
      r.hbTimer = setTimeout(() => void this.heartbeat(r, attempt + 1), delay);
      // Abort exactly when the lease would have expired, even if a retry is still pending.
      setTimeout(() => {
        if (!r.settled && !r.reason && performance.now() >= r.leaseDeadline) this.abortJob(r, 'lease-expired');
      }, left + 1).unref();
    }
  }

  /** A refusal that means the job is not ours: abort the handler. */
  private lostBy(r: Running, e: unknown): boolean {
    if (!isOkitError(e)) return false;
    if (e.code === 'JOB_CANCELED') {
      this.abortJob(r, 'canceled');
      return true;
    }
    if (LOST.has(e.code)) {
      this.abortJob(r, 'lease-lost');
      return true;
    }
    return false;
  }

  /** Follows the job's first signal (long-poll, woken by NOTIFY): a cancel aborts the handler at once. */
  private async watch(r: Running): Promise<void> {
    let etag: string | undefined;
    let backoff = 250;
    while (!r.settled && !r.reason) {
      try {
        const s = await this.client.firstSignal(r.claim.job.id, { etag, wait: 25, signal: r.watch.signal });
        backoff = 250;
        etag = s.etag;
        if (s.status !== 200) continue;
        if (s.signal.kind === 'canceled') return this.abortJob(r, 'canceled');
        // Not running any more, yet not by our report: let a heartbeat find out what happened.
        if (!['started', 'phase', 'blocked'].includes(s.signal.kind) && !r.settled) void this.heartbeat(r);
      } catch {
        if (r.settled || r.reason || r.watch.signal.aborted) return;
        await sleep(backoff, r.watch.signal);
        backoff = Math.min(10_000, backoff * 2);
      }
    }
  }

  private async progress(r: Running, phase: string, rep: ProgressReport): Promise<void> {
    if (r.reason) throw r.ac.signal.reason;
    try {
      await this.client.progress(r.claim.job.id, { ...r.lease, phase, summary: rep.summary, itemsDone: rep.itemsDone, itemsTotal: rep.itemsTotal });
    } catch (e) {
      if (this.lostBy(r, e)) throw e;
      if (isOkitError(e) && !isRetryable(e) && !/^HTTP_5/.test(e.code)) throw e; // the report itself is bad: the handler should know
      // A progress report is not worth failing the job for: the next one will tell.
      this.emit('warn', { message: `progress for job ${r.claim.job.id} not reported (${(e as Error).message})`, error: e, job: r.claim.job });
    }
  }

  // ---------------------------------------------------------------- outcome

  private async finish(r: Running, outcome: { ok: true; value: unknown } | { ok: false; error: unknown }): Promise<void> {
    const { job, attempt } = r.claim;
    const ms = performance.now() - r.started;
    if (r.reason === 'canceled') return void this.emit('canceled', { job, attempt, ms });
    if (r.reason === 'lease-lost' || r.reason === 'lease-expired') return void this.emit('leaseLost', { job, attempt, reason: r.reason, ms });
    if (r.reason === 'stopping') return this.fail(r, { code: 'WORKER_STOPPED', message: 'the worker stopped before the job finished', retryable: true }, ms);
    if (r.reason === 'timeout')
      return this.fail(r, { code: 'JOB_TIMEOUT', message: `the job ran longer than its timeout of ${this.o.timeoutSeconds} s`, retryable: true }, ms);
    if (outcome.ok) {
      const value = outcome.value;
      if (value !== undefined && value !== null && (typeof value !== 'object' || Array.isArray(value)))
        return this.fail(r, { code: 'RESULT_INVALID', message: `the handler returned ${Array.isArray(value) ? 'an array' : typeof value}; a result is a JSON object`, retryable: false }, ms);
      let result: Record<string, unknown> | undefined;
      if (value) {
        try {
          result = v.payload(value, 'result', v.MAX_RESULT_BYTES).value as Record<string, unknown>;
        } catch (e) {
          return this.fail(r, { code: 'RESULT_INVALID', message: messageText((e as Error).message), retryable: false }, ms);
        }
      }
      const ok = await this.withLease(r, () => this.client.complete(job.id, { ...r.lease, result }));
      if (ok) this.emit('completed', { job, attempt, result, ms });
      return;
    }
    const e = outcome.error as { code?: unknown; message?: unknown; retryable?: unknown; upstream?: Upstream };
    const code = typeof e?.code === 'string' && CODE_RE.test(e.code) ? e.code : 'HANDLER_ERROR';
    const retryable = e?.retryable === true;
    const upstream = e?.upstream && typeof e.upstream === 'object' && typeof e.upstream.status === 'number' ? e.upstream : undefined;
    const message = messageText(e instanceof Error ? e.message : e);
    return this.fail(r, { code, message, retryable: upstream ? e.retryable !== false : retryable, upstream }, ms);
  }

  private async fail(r: Running, f: { code: string; message: string; retryable: boolean; upstream?: Upstream }, ms: number): Promise<void> {
    const { job, attempt } = r.claim;
    const ok = await this.withLease(r, () => this.client.fail(job.id, { ...r.lease, code: f.code, message: f.message, retryable: f.retryable, upstream: f.upstream }));
    if (ok) this.emit('failed', { job, attempt, code: f.code, message: f.message, retryable: f.retryable, ms });
  }

  /** A final report, retried while the lease lasts; false when the job turned out not to be ours. */
  private async withLease(r: Running, call: () => Promise<unknown>): Promise<boolean> {
    const { job, attempt } = r.claim;
    const ms = () => performance.now() - r.started;
    for (let i = 0; ; i++) {
      try {
        await call();
        return true;
      } catch (e) {
        if (isOkitError(e) && e.code === 'JOB_CANCELED') {
          this.emit('canceled', { job, attempt, ms: ms() });
          return false;
        }
        if (isOkitError(e) && LOST.has(e.code)) {
          this.emit('leaseLost', { job, attempt, reason: 'lease-lost', ms: ms() });
          return false;
        }
        const transient = !isOkitError(e) || isRetryable(e) || /^HTTP_5/.test(e.code);
        const left = r.leaseDeadline - performance.now();
        if (!transient) throw e;
        if (left <= 0 || (this.now && i >= 1)) {
          this.emit('leaseLost', { job, attempt, reason: 'lease-expired', ms: ms() });
          return false;
        }
        await sleep(Math.min(left, 200 * 2 ** Math.min(i, 5)));
      }
    }
  }
}

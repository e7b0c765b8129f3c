/**
 * A small typed client for `okit serve`, for workers and tools to embed. Errors come back as
 * OkitError with the server's code; a server that cannot be reached is `SERVER_UNREACHABLE`.
 */
import { OkitError } from '../errors.js';
import type { HistoryRow, Job, Signal } from '../ledger/types.js';
import type { BucketView, JobList, PauseResult, QueueInfo, Run, RunStatus, Signature, Source, ThrottleState } from '../ledger/ledger.js';

export const API = '/api/v1/orchestrator';

export interface ClientOptions {
  url: string;
  token: string;
  /** Per-request timeout beyond any long-poll wait, ms. */
  timeoutMs?: number;
  fetch?: typeof fetch;
  /** The surface this client is (ui, cli, ci): sent as X-Okit-Surface with first-signal reads, so the server records its part. */
  surface?: string;
}

export interface EnqueueRequest {
  type: string;
  payload?: unknown;
  priority?: number;
  maxAttempts?: number;
  idempotencyKey?: string;
  notBefore?: string;
  sourceId?: string;
  runId?: string;
}

export interface Claim {
  job: Job;
  leaseExpiresAt: string;
  attempt: number;
  /** Present it on heartbeat, progress, complete and fail: it fences this lease from stale ones. */
  leaseToken: string;
}

export interface ClaimRequest {
  workerId: string;
  types: string[];
  leaseSeconds?: number;
  /** Long-poll: wait up to this many seconds (≤ 30) for a job to become claimable. */
  wait?: number;
  signal?: AbortSignal;
}

/** What an upstream answered when it throttled us. */
export interface UpstreamReport {
  status: number;
  retryAfterSeconds?: number;
  /** Default: the job's source host. */
  host?: string;
}

/** A host's token bucket as the server reports it (decimal strings, RFC 3339 times). */
export type { BucketView };

/** Who reports on a lease: the claiming worker and the claim's lease token. */
export interface LeaseRef {
  workerId: string;
  leaseToken: string;
}

export interface SignalReply {
  jobId: string;
  etag: string;
  signal: Signal;
}

/** The server's part of an answer, from its Server-Timing header (sent to clients that declare a surface). */
export interface ServerPart {
  serverMs: number | null;
  cacheHit: boolean | null;
}

export type FirstSignal =
  | ({ status: 200; etag: string; source: string; signal: Signal } & ServerPart)
  | ({ status: 304; etag: string; source: string } & ServerPart);

/** A TTFS report as the telemetry endpoint takes it (snake_case, as stored). */
export interface TtfsReport {
  surface: string;
  event_type: 'signal.rendered' | 'signal.timeout' | 'signal.error';
  ttfs_ms: number;
  job_id: string;
  run_id?: string;
  server_ms?: number;
  cache_hit?: boolean;
  signal_source?: string;
  kind?: string;
  phase?: string;
  error_code?: string;
}

/** `okit;dur=0.412;desc="cache hit"` → { serverMs: 0.412, cacheHit: true }. */
export function parseServerTiming(h: string | null): ServerPart {
  const m = h ? /(?:^|,)\s*okit;dur=([0-9.]+)(?:;desc="cache (hit|miss)")?/.exec(h) : null;
  if (!m) return { serverMs: null, cacheHit: null };
  const ms = Number(m[1]);
  return { serverMs: Number.isFinite(ms) ? ms : null, cacheHit: m[2] === undefined ? null : m[2] === 'hit' };
}

/** Errors worth retrying after a pause: the server or its database is away for now. */
export function isRetryable(e: unknown): boolean {
  return e instanceof OkitError && ['SERVER_UNREACHABLE', 'DB_UNAVAILABLE', 'SHUTTING_DOWN', 'TOO_MANY_CONNECTIONS', 'INTERNAL', 'TIMEOUT'].includes(e.code);
}

export class OkitClient {
  private readonly base: string;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly f: typeof fetch;
  private readonly surface: string | undefined;

  constructor(o: ClientOptions) {
    // A malformed URL is never "unreachable for now": refuse it here rather than retry forever.
    let u: URL | undefined;
    try {
      u = new URL(o.url);
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new OkitError('INVALID_INPUT', `url: must be an http:// or https:// URL, got ${JSON.stringify(o.url)}`);
    this.base = o.url.replace(/\/+$/, '');
    this.token = o.token;
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.f = o.fetch ?? fetch;
    this.surface = o.surface;
  }

  /** One request; the body is read here so the timeout covers it and listeners are cleaned up. */
  private async request(
    method: string,
    path: string,
    opts: { body?: unknown; headers?: Record<string, string>; waitMs?: number; signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<{ status: number; headers: Headers; body: unknown }> {
    const limit = (opts.timeoutMs ?? this.timeoutMs) + (opts.waitMs ?? 0);
    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => ((timedOut = true), ac.abort()), limit);
    const onAbort = () => ac.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}`, Accept: 'application/json', ...opts.headers };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      let res: Response;
      let text: string;
      try {
        res = await this.f(this.base + path, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), signal: ac.signal });
        text = await res.text();
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        if (timedOut) throw new OkitError('TIMEOUT', `${method} ${path}: no answer within ${limit} ms`);
        throw new OkitError('SERVER_UNREACHABLE', `${method} ${this.base}${path}: ${(e as Error).message}`);
      }
      let body: unknown = null;
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          body = null;
        }
      }
      if (res.status >= 400) {
        const err = (body as { error?: { code?: string; message?: string } } | null)?.error;
        throw new OkitError(err?.code ?? `HTTP_${res.status}`, err?.message ?? res.statusText, { status: res.status });
      }
      return { status: res.status, headers: res.headers, body };
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.request(method, path, { body })).body as T;
  }

  private static reply(r: { job_id: string; etag: string; signal: Signal }): SignalReply {
    return { jobId: r.job_id, etag: r.etag, signal: r.signal };
  }

  async enqueue(req: EnqueueRequest): Promise<{ job: Job; created: boolean }> {
    return this.json('POST', `${API}/jobs`, enqueueBody(req));
  }

  /** Up to 1,000 jobs in one call (one transaction, all or none); per item its job and whether it was created. */
  async enqueueMany(reqs: EnqueueRequest[]): Promise<Array<{ job: Job; created: boolean }>> {
    return (await this.json<{ jobs: Array<{ job: Job; created: boolean }> }>('POST', `${API}/jobs`, reqs.map(enqueueBody))).jobs;
  }

  async getJob(jobId: string): Promise<Job> {
    return (await this.json<{ job: Job }>('GET', `${API}/jobs/${encodeURIComponent(jobId)}`)).job;
  }

  /** The job's hash-chained history, oldest first. */
  async history(jobId: string): Promise<HistoryRow[]> {
    return (await this.json<{ history: HistoryRow[] }>('GET', `${API}/jobs/${encodeURIComponent(jobId)}/history`)).history;
  }

  /**
   * The best ready job of these types, or null. With `wait` (seconds, ≤ 30), a long-poll: when
   * none is ready it answers as soon as one becomes claimable (woken by NOTIFY), else null after
   * `wait`. `signal` aborts the request (the server then claims nothing for it).
   */
  async claim(req: ClaimRequest): Promise<Claim | null> {
    const r = (await this.request('POST', `${API}/workers/claim`, {
      body: claimBody(req),
      waitMs: (req.wait ?? 0) * 1000,
      signal: req.signal,
    })).body as { job: Job | null; lease_expires_at?: string; attempt?: number; lease_token?: string };
    return r.job ? { job: r.job, leaseExpiresAt: r.lease_expires_at!, attempt: r.attempt!, leaseToken: r.lease_token! } : null;
  }

  /** Up to `limit` jobs (1..100) in one transaction; an empty list when none is ready (after `wait`, if given). */
  async claimMany(req: ClaimRequest & { limit: number }): Promise<Claim[]> {
    const r = (await this.request('POST', `${API}/workers/claim`, {
      body: { ...claimBody(req), limit: req.limit },
      waitMs: (req.wait ?? 0) * 1000,
      signal: req.signal,
    })).body as { jobs: Array<{ job: Job; lease_expires_at: string; attempt: number; lease_token: string }> };
    return r.jobs.map((c) => ({ job: c.job, leaseExpiresAt: c.lease_expires_at, attempt: c.attempt, leaseToken: c.lease_token }));
  }

  /** An upstream throttled us (a 429 or 503, maybe with Retry-After): slow that host's bucket (no host: the job's source's). Answers the bucket now. */
  async reportThrottle(req: { host?: string | null; status: number; retryAfterSeconds?: number; workerId: string; jobId?: string }): Promise<BucketView> {
    return (
      await this.json<{ bucket: BucketView }>('POST', `${API}/throttles/report`, {
        host: req.host,
        status: req.status,
        retry_after_seconds: req.retryAfterSeconds,
        worker_id: req.workerId,
        job_id: req.jobId,
      })
    ).bucket;
  }

  async heartbeat(jobId: string, req: LeaseRef & { leaseSeconds?: number }): Promise<{ leaseExpiresAt: string }> {
    const r = await this.json<{ lease_expires_at: string }>('POST', `${API}/jobs/${encodeURIComponent(jobId)}/heartbeat`, {
      worker_id: req.workerId,
      lease_token: req.leaseToken,
      lease_seconds: req.leaseSeconds,
    });
    return { leaseExpiresAt: r.lease_expires_at };
  }

  async progress(jobId: string, req: LeaseRef & { phase: string; summary?: string; itemsDone?: number; itemsTotal?: number }): Promise<SignalReply> {
    return OkitClient.reply(
      await this.json('POST', `${API}/jobs/${encodeURIComponent(jobId)}/progress`, {
        worker_id: req.workerId,
        lease_token: req.leaseToken,
        phase: req.phase,
        summary: req.summary,
        items_done: req.itemsDone,
        items_total: req.itemsTotal,
      }),
    );
  }

  async complete(jobId: string, req: LeaseRef & { result?: Record<string, unknown> }): Promise<SignalReply> {
    return OkitClient.reply(
      await this.json('POST', `${API}/jobs/${encodeURIComponent(jobId)}/complete`, { worker_id: req.workerId, lease_token: req.leaseToken, result: req.result }),
    );
  }

  /**
   * Fails the attempt (retryable unless `retryable: false`). With `upstream` (the 429/503 that
   * caused it), the host's bucket (default: the job's source host) is penalised in the same
   * transaction and a retry waits at least `retryAfterSeconds`.
   */
  async fail(jobId: string, req: LeaseRef & { code: string; message: string; retryable?: boolean; upstream?: UpstreamReport }): Promise<SignalReply> {
    return OkitClient.reply(
      await this.json('POST', `${API}/jobs/${encodeURIComponent(jobId)}/fail`, {
        worker_id: req.workerId,
        lease_token: req.leaseToken,
        error: { code: req.code, message: req.message },
        retryable: req.retryable,
        upstream: req.upstream && { status: req.upstream.status, retry_after_seconds: req.upstream.retryAfterSeconds, host: req.upstream.host },
      }),
    );
  }

  async cancel(jobId: string, req: { reason?: string } = {}): Promise<SignalReply> {
    return OkitClient.reply(await this.json('POST', `${API}/jobs/${encodeURIComponent(jobId)}/cancel`, { reason: req.reason }));
  }

  // ---------------------------------------------------------------- control plane (issue 12)

  /** Creates a source (admin); the same name and host again answers the existing one. */
  async createSource(req: { name: string; host: string; id?: string }): Promise<{ source: Source; created: boolean }> {
    return this.json('POST', `${API}/sources`, { name: req.name, host: req.host, id: req.id });
  }

  async listSources(): Promise<Source[]> {
    return (await this.json<{ sources: Source[] }>('GET', `${API}/sources`)).sources;
  }

  async getSource(id: string): Promise<Source> {
    return (await this.json<{ source: Source }>('GET', `${API}/sources/${encodeURIComponent(id)}`)).source;
  }

  /** Configures a host's token bucket (admin): a full bucket to start; answers its state. */
  async setThrottle(req: { host: string; capacity: number; refillPerSec: number }): Promise<ThrottleState> {
    return (await this.json<{ bucket: ThrottleState }>('POST', `${API}/throttles`, { host: req.host, capacity: req.capacity, refill_per_sec: req.refillPerSec })).bucket;
  }

  /** Every bucket of the tenant with its state now. */
  async listThrottles(): Promise<ThrottleState[]> {
    return (await this.json<{ throttles: ThrottleState[] }>('GET', `${API}/throttles`)).throttles;
  }

  /** Adds a failure signature (admin); the same pattern again updates it. */
  async addSignature(req: { pattern: unknown; outcome: unknown; confidence?: number }): Promise<{ signature: Signature; created: boolean }> {
    return this.json('POST', `${API}/signatures`, { pattern: req.pattern, outcome: req.outcome, confidence: req.confidence });
  }

  async listSignatures(opts: { includeRetired?: boolean } = {}): Promise<Signature[]> {
    return (await this.json<{ signatures: Signature[] }>('GET', `${API}/signatures${opts.includeRetired ? '?include_retired=true' : ''}`)).signatures;
  }

  async getSignature(id: string): Promise<Signature> {
    return (await this.json<{ signature: Signature }>('GET', `${API}/signatures/${encodeURIComponent(id)}`)).signature;
  }

  async retireSignature(id: string): Promise<Signature> {
    return (await this.json<{ signature: Signature }>('POST', `${API}/signatures/${encodeURIComponent(id)}/retire`, {})).signature;
  }

  /** Lists jobs: filters as GET /jobs takes them (snake_case), a page at a time (`cursor` from the last answer). */
  async listJobs(filters: ListFilters = {}): Promise<JobList> {
    return this.json('GET', `${API}/jobs${listQuery(filters)}`);
  }

  /** failed, dead_letter or canceled → queued with its attempts given back (admin). */
  async retry(jobId: string, req: { reason?: string } = {}): Promise<SignalReply> {
    return OkitClient.reply(await this.json('POST', `${API}/jobs/${encodeURIComponent(jobId)}/retry`, { reason: req.reason }));
  }

  /** Retries up to `limit` dead-lettered jobs of a type (admin), longest dead first. */
  async retryDeadLetters(req: { type: string; limit?: number; reason?: string }): Promise<{ jobs: Array<{ job: Job; etag: string; signal: Signal }>; more: boolean }> {
    return this.json('POST', `${API}/dead-letters/retry`, { type: req.type, limit: req.limit, reason: req.reason });
  }

  /** A queued or throttled job's new priority, −1000..1000 (admin). */
  async prioritize(jobId: string, req: { priority: number; reason?: string }): Promise<SignalReply> {
    return OkitClient.reply(await this.json('POST', `${API}/jobs/${encodeURIComponent(jobId)}/prioritize`, { priority: req.priority, reason: req.reason }));
  }

  async listQueues(): Promise<QueueInfo[]> {
    return (await this.json<{ queues: QueueInfo[] }>('GET', `${API}/queues`)).queues;
  }

  /** Pauses a job type (admin): claims skip it, its waiting jobs' signals say who paused it and why. */
  async pauseQueue(type: string, req: { reason?: string } = {}): Promise<PauseResult> {
    return (await this.json<{ queue: PauseResult }>('POST', `${API}/queues/${encodeURIComponent(type)}/pause`, { reason: req.reason })).queue;
  }

  async resumeQueue(type: string, req: { reason?: string } = {}): Promise<PauseResult> {
    return (await this.json<{ queue: PauseResult }>('POST', `${API}/queues/${encodeURIComponent(type)}/resume`, { reason: req.reason })).queue;
  }

  /** Creates a run (worker), optionally of a source; jobs join it with `runId`. */
  async createRun(req: { id?: string; sourceId?: string } = {}): Promise<{ run: Run; created: boolean }> {
    return this.json('POST', `${API}/runs`, { id: req.id, source_id: req.sourceId });
  }

  /** A run's counts, items and run-level signal; with `etag` and `wait` a long-poll that may end in 304 (null). */
  async getRun(runId: string, opts: { etag?: string; wait?: number; signal?: AbortSignal } = {}): Promise<RunStatus | null> {
    const res = await this.request('GET', `${API}/runs/${encodeURIComponent(runId)}${opts.wait ? `?wait=${opts.wait}` : ''}`, {
      headers: opts.etag ? { 'If-None-Match': opts.etag } : {},
      waitMs: (opts.wait ?? 0) * 1000,
      signal: opts.signal,
    });
    return res.status === 304 ? null : (res.body as RunStatus);
  }

  async runJobs(runId: string, filters: Omit<ListFilters, 'run_id'> = {}): Promise<JobList> {
    return this.json('GET', `${API}/runs/${encodeURIComponent(runId)}/jobs${listQuery(filters)}`);
  }

  /** The job's first signal; with `etag` and `wait` (seconds) a long-poll that may end in 304. */
  async firstSignal(jobId: string, opts: { etag?: string; wait?: number; signal?: AbortSignal } = {}): Promise<FirstSignal> {
    const q = opts.wait ? `?wait=${opts.wait}` : '';
    const headers: Record<string, string> = opts.etag ? { 'If-None-Match': opts.etag } : {};
    if (this.surface) headers['X-Okit-Surface'] = this.surface;
    const res = await this.request('GET', `${API}/jobs/${encodeURIComponent(jobId)}/first-signal${q}`, {
      headers,
      waitMs: (opts.wait ?? 0) * 1000,
      signal: opts.signal,
    });
    const etag = res.headers.get('etag') ?? '';
    const source = res.headers.get('x-signal-source') ?? '';
    const part = parseServerTiming(res.headers.get('server-timing'));
    if (res.status === 304) return { status: 304, etag, source, ...part };
    return { status: 200, etag, source, signal: res.body as Signal, ...part };
  }

  /** Reports time-to-first-signal events (at most 100 per call); answers how many the server queued. */
  async reportTtfs(events: TtfsReport[], opts: { timeoutMs?: number } = {}): Promise<{ accepted: number; dropped: number }> {
    return (await this.request('POST', `${API}/telemetry/ttfs`, { body: { events }, timeoutMs: opts.timeoutMs })).body as { accepted: number; dropped: number };
  }
}

function claimBody(req: ClaimRequest): Record<string, unknown> {
  return { worker_id: req.workerId, types: req.types, lease_seconds: req.leaseSeconds, wait: req.wait };
}

/** GET /jobs filters, as the query string takes them. */
export interface ListFilters {
  state?: string;
  kind?: string;
  type?: string;
  run_id?: string;
  source_id?: string;
  error_code?: string;
  created_after?: string;
  created_before?: string;
  updated_after?: string;
  updated_before?: string;
  sort?: 'created' | 'updated';
  order?: 'asc' | 'desc';
  limit?: number;
  cursor?: string;
}

function listQuery(f: ListFilters): string {
  const q = new URLSearchParams();
  for (const [k, x] of Object.entries(f)) if (x !== undefined && x !== null && x !== '') q.set(k, String(x));
  const s = q.toString();
  return s ? `?${s}` : '';
}

function enqueueBody(req: EnqueueRequest): Record<string, unknown> {
  return {
    type: req.type,
    payload: req.payload,
    priority: req.priority,
    max_attempts: req.maxAttempts,
    idempotency_key: req.idempotencyKey,
    not_before: req.notBefore,
    source_id: req.sourceId,
    run_id: req.runId,
  };
}

/**
 * Everything `GET /metrics` exposes, in one prom-client Registry per server (so several
 * servers in one process, as in tests, do not share counters).
 *
 *   ttfs_*      time to first signal: what surfaces report (ttfs_latency_seconds) and the
 *               server's own part of every answer (ttfs_cache_/ttfs_cold_latency_seconds);
 *   okit_*      the orchestrator: queue depth and throttle buckets from a cheap query cached
 *               for a few seconds, job outcomes and ledger transactions from the ledger's
 *               commit observer, LISTEN and waiters from the server;
 *   process_*, nodejs_*   Node's default metrics.
 *
 * Tenant, host, job type and error code labels are capped (labels.ts): a deployment with more
 * distinct values than the limit sees the rest under `_other`.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Pool } from '../db/pool.js';
import type { CommitInfo } from '../ledger/ledger.js';
import { TERMINAL_STATES, type JobState } from '../ledger/states.js';
import { refill, toBucket } from '../ledger/throttle.js';
import type { SignalKind } from '../ledger/types.js';
import type { SignalSource, Surface, TtfsEvent } from '../telemetry/events.js';
import { systemClock, type Clock } from '../util/clock.js';
import { parseMicros } from '../util/time.js';
import { FastCounter, FastHistogram, type FastCounterChild, type FastHistogramChild } from './fast.js';
import { DEFAULT_LABEL_LIMITS, LabelCap, OTHER, type LabelLimits } from './labels.js';

/** SLO-fitted buckets for what a user waits (s): dense around the 2 s and 5 s targets. */
export const TTFS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 30];
/** The server's part of a first signal (s): a cache hit is well under a millisecond, the budget 1.5 s. */
export const SERVER_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5];
export const JOB_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600];
export const LEDGER_TX_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

const JOB_STATES: JobState[] = ['queued', 'throttled', 'running', 'succeeded', 'failed', 'dead_letter', 'canceled'];

/**
 * Jobs waiting or running, through the two partial indexes of okit.jobs (the claim index and
 * the lease index): the cost follows the queue, not the ledger's size.
 */
const WAITING_SQL = `SELECT state, type, count(*)::int AS n FROM okit.jobs WHERE state IN ('queued', 'throttled') GROUP BY state, type
  UNION ALL SELECT state, type, count(*)::int AS n FROM okit.jobs WHERE state = 'running' GROUP BY state, type`;
/** Finished jobs: a count over the whole ledger, so refreshed rarely and never waited for twice. */
const FINISHED_SQL = `SELECT state, type, count(*)::int AS n FROM okit.jobs WHERE state IN ('succeeded', 'failed', 'dead_letter', 'canceled') GROUP BY state, type`;
type CountRow = { state: string; type: string; n: number };
const TTFS_LABELS = ['surface', 'cache_hit', 'signal_source', 'kind', 'tenant_id'] as const;

/** Who asked: a surface that said so (X-Okit-Surface), else `api` (curl, workers, other tools). */
export type AnswerSurface = Surface | 'api';
const SURFACE_SLOT: Record<AnswerSurface, number> = { api: 0, ui: 1, cli: 2, ci: 3 };

export interface MetricsOptions {
  labelLimits?: Partial<LabelLimits>;
  /** How long queue depth, throttle buckets and SLO targets are reused (default 5000 ms). */
  dbCacheMs?: number;
  /** How long the counts of finished jobs (a count over the whole ledger) are reused (default 60,000 ms). */
  finishedCacheMs?: number;
  /** A scrape waits at most this long for a database refresh, then serves the last values (default 250 ms). */
  dbWaitMs?: number;
  /** …and this long while it has no values at all yet (default 2000 ms). */
  dbFirstWaitMs?: number;
  /** Node's default process metrics (default on). */
  defaultMetrics?: boolean;
  clock?: Clock;
}

export interface ServerSources {
  pool: Pool;
  listener: { readonly ready: boolean; readonly stats: { connects: number } };
  waiting: { long_poll: number; sse: number };
  queue?: { readonly depth: number; readonly stats: { written: number; dropped: Record<string, number> } };
}

type Labels = Record<string, string>;

/** A counter whose total is kept elsewhere (a stats field, a count of append-only rows): set, zeros included. */
function setCounter(c: Counter<string>, values: Array<[Labels, number]>): void {
  c.reset();
  for (const [l, v] of values) c.inc(l, Math.max(0, v));
}

export class OkitMetrics {
  readonly registry = new Registry();
  readonly limits: LabelLimits;
  private readonly tenants: LabelCap;
  private readonly hosts: LabelCap;
  private readonly types: LabelCap;
  private readonly codes: LabelCap;
  private readonly clock: Clock;
  private readonly dbCacheMs: number;
  private readonly dbWaitMs: number;
  private readonly dbFirstWaitMs: number;
  private sources: ServerSources | null = null;
  private readonly finishedCacheMs: number;
  private dbAt = -Infinity;
  private dbRefresh: Promise<void> | null = null;
  private finishedAt = -Infinity;
  private finishedRefresh: Promise<void> | null = null;
  private waiting: CountRow[] | null = null;
  private finished: CountRow[] | null = null;
  /** SLO targets per surface (ms), from okit.ttfs_slo_targets once the database has been read. */
  targets: Record<Surface, { p50: number; p95: number }> = { ui: { p50: 2000, p95: 5000 }, cli: { p50: 2000, p95: 5000 }, ci: { p50: 2000, p95: 5000 } };

  readonly ttfsLatency: Histogram<string>;
  // One observation per first-signal answer: the hot path's families (fast.ts).
  readonly ttfsCacheLatency: FastHistogram;
  readonly ttfsColdLatency: FastHistogram;
  readonly ttfsSignals: FastCounter;
  readonly ttfsCacheHits: FastCounter;
  readonly ttfsCacheMisses: FastCounter;
  readonly ttfsSloBreaches: Counter<string>;
  readonly ttfsErrors: Counter<string>;

  readonly jobs: Gauge<string>;
  readonly jobDuration: Histogram<string>;
  readonly jobFailures: Counter<string>;
  readonly jobClaims: Counter<string>;
  readonly jobsEnqueued: Counter<string>;
  readonly throttleTokens: Gauge<string>;
  readonly upstreamThrottled: Counter<string>;
  readonly leaseExpired: Counter<string>;
  readonly listenConnected: Gauge<string>;
  readonly listenReconnects: Counter<string>;
  readonly waiters: Gauge<string>;
  readonly ledgerTx: Histogram<string>;
  readonly ledgerBatch: Histogram<string>;
  readonly telemetryDepth: Gauge<string>;
  readonly telemetryWritten: Counter<string>;
  readonly telemetryDropped: Counter<string>;
  readonly dbRefreshErrors: Counter<string>;
  readonly dbRefreshSeconds: Gauge<string>;

  /** Hot-path children by label key, each made on first use. */
  private readonly hot = new Map<string, HotChildren>();
  /** …and by the signal value answered, so that a hot-path answer builds no key at all. */
  private readonly bySignal = new WeakMap<object, { tenant: string; kids: Array<HotChildren | undefined> }>();

  constructor(o: MetricsOptions = {}) {
    this.limits = { ...DEFAULT_LABEL_LIMITS, ...o.labelLimits };
    this.tenants = new LabelCap(this.limits.tenants);
    this.hosts = new LabelCap(this.limits.hosts);
    this.types = new LabelCap(this.limits.types);
    this.codes = new LabelCap(this.limits.errorCodes);
    this.clock = o.clock ?? systemClock;
    this.dbCacheMs = o.dbCacheMs ?? 5000;
    this.finishedCacheMs = o.finishedCacheMs ?? 60_000;
    this.dbWaitMs = o.dbWaitMs ?? 250;
    this.dbFirstWaitMs = o.dbFirstWaitMs ?? 2000;
    const r = [this.registry];
    const labelNames = [...TTFS_LABELS];

    this.ttfsLatency = new Histogram({ name: 'ttfs_latency_seconds', help: 'Time to first signal as a surface reported it: user action to first signal shown (or given up on)', labelNames, buckets: TTFS_BUCKETS, registers: r });
    this.ttfsCacheLatency = new FastHistogram('ttfs_cache_latency_seconds', "The server's part of a first signal answered from its in-process cache", labelNames, SERVER_BUCKETS).register(this.registry);
    this.ttfsColdLatency = new FastHistogram('ttfs_cold_latency_seconds', "The server's part of a first signal read from Postgres (snapshot row, or history projected on the fly)", labelNames, SERVER_BUCKETS).register(this.registry);
    this.ttfsSignals = new FastCounter('ttfs_signal_total', 'Signals the server sent (200 answers and SSE events), by kind and surface', labelNames).register(this.registry);
    this.ttfsCacheHits = new FastCounter('ttfs_cache_hit_total', 'First-signal reads served from the in-process cache', labelNames).register(this.registry);
    this.ttfsCacheMisses = new FastCounter('ttfs_cache_miss_total', 'First-signal reads that went to Postgres', labelNames).register(this.registry);
    this.ttfsSloBreaches = new Counter({ name: 'ttfs_slo_breach_total', help: "Reported first signals slower than the surface's target (slo=p50: over the p50 target, slo=p95: over the p95 target)", labelNames: [...labelNames, 'slo'], registers: r });
    this.ttfsErrors = new Counter({ name: 'ttfs_error_total', help: 'First signals that ended in an error: reported by a surface (signal.error, signal.timeout) or answered by the server with an error', labelNames: ['surface', 'error_code', 'tenant_id', 'origin'], registers: r });

    this.jobs = new Gauge({ name: 'okit_jobs', help: 'Jobs in the ledger by state and type (queue depth: queued, throttled, running); the same on every instance, aggregate with max', labelNames: ['state', 'type'], registers: r });
    this.jobDuration = new Histogram({ name: 'okit_job_duration_seconds', help: 'Enqueue to final state of jobs finished through this process, by type and outcome', labelNames: ['type', 'outcome'], buckets: JOB_BUCKETS, registers: r });
    this.jobFailures = new Counter({ name: 'okit_job_failures_total', help: 'Failed attempts by error code and what followed (retry, failed, dead_letter); an expired lease is LEASE_EXPIRED', labelNames: ['error_code', 'outcome'], registers: r });
    this.jobClaims = new Counter({ name: 'okit_job_claims_total', help: 'Jobs claimed through this process, by type', labelNames: ['type'], registers: r });
    this.jobsEnqueued = new Counter({ name: 'okit_jobs_enqueued_total', help: 'Jobs enqueued through this process, by type', labelNames: ['type'], registers: r });
    this.throttleTokens = new Gauge({ name: 'okit_throttle_tokens', help: "Tokens in each {tenant, source host} bucket now (refill projected to the scrape); below 1 a claim for that host waits", labelNames: ['tenant_id', 'host'], registers: r });
    this.upstreamThrottled = new Counter({ name: 'okit_upstream_throttled_total', help: "Upstream throttles (HTTP 429) reported for a host, from the ledger's throttle events; the same on every instance", labelNames: ['tenant_id', 'host'], registers: r });
    this.leaseExpired = new Counter({ name: 'okit_lease_expired_total', help: 'Leases that ran out and were returned to the queue or dead-lettered by this process', registers: r });
    this.listenConnected = new Gauge({ name: 'okit_listen_connected', help: '1 while the LISTEN connection is up (notifications arrive), 0 while it is down (waiters poll every second)', registers: r });
    this.listenReconnects = new Counter({ name: 'okit_listen_reconnects_total', help: 'Times the LISTEN connection was re-established after a loss', registers: r });
    this.waiters = new Gauge({ name: 'okit_waiters', help: 'Pending long-polls and open SSE streams', labelNames: ['kind'], registers: r });
    this.ledgerTx = new Histogram({ name: 'okit_ledger_transaction_seconds', help: 'Ledger transactions committed by this process: BEGIN to COMMIT acknowledged', buckets: LEDGER_TX_BUCKETS, registers: r });
    this.ledgerBatch = new Histogram({ name: 'okit_ledger_batch_size', help: 'Operations committed together in one ledger transaction', buckets: BATCH_BUCKETS, registers: r });
    this.telemetryDepth = new Gauge({ name: 'okit_telemetry_queue_depth', help: 'Telemetry events waiting for the batch writer', registers: r });
    this.telemetryWritten = new Counter({ name: 'okit_telemetry_written_total', help: 'Telemetry events written to okit.ttfs_events', registers: r });
    this.telemetryDropped = new Counter({ name: 'okit_telemetry_dropped_total', help: 'Telemetry events dropped: queue_full (a flood), write_failed (the database refused or stayed away)', labelNames: ['reason'], registers: r });
    this.dbRefreshErrors = new Counter({ name: 'okit_metrics_db_errors_total', help: 'Refreshes of the database-backed gauges that failed (the last values were served)', labelNames: ['query'], registers: r });
    this.dbRefreshSeconds = new Gauge({ name: 'okit_metrics_db_query_seconds', help: 'Time the last refresh took: waiting (queue depth, buckets, every 5 s) and finished (finished jobs, every 60 s, in the background)', labelNames: ['query'], registers: r });
    if (o.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The server's live parts, read at each scrape. */
  bind(s: ServerSources): void {
    this.sources = s;
  }

  tenant(t: string): string {
    return this.tenants.of(t);
  }

  /**
   * A first-signal answer of this server (handlers.ts). `ident` is the signal value answered
   * (the cache hands the same object to every reader of one snapshot): its tenant label and
   * label children are found through it without building a key. `serverMs` is the time in the
   * server; `sentSignal` a body went out (200, SSE event), not a 304; `immediate` it was
   * answered from the first read, without waiting: only those are the server's part of a first
   * signal and go into the latency histograms.
   */
  answer(ident: object, tenant: string, surface: AnswerSurface, source: string, kind: string, cacheHit: boolean, serverMs: number, sentSignal: boolean, immediate: boolean): void {
    let e = this.bySignal.get(ident);
    if (!e) this.bySignal.set(ident, (e = { tenant: this.tenants.of(tenant), kids: [] }));
    const i = SURFACE_SLOT[surface] * 2 + (cacheHit ? 1 : 0);
    let h = e.kids[i];
    if (!h) {
      const hit = cacheHit ? 'true' : 'false';
      const key = `${surface}|${hit}|${source}|${kind}|${e.tenant}`;
      h = this.hot.get(key);
      if (!h) {
        if (this.hot.size >= 100_000) this.hot.clear(); // every label is capped; this only bounds the index
        this.hot.set(key, (h = new HotChildren(this, key, [surface, hit, source, kind, e.tenant])));
      }
      e.kids[i] = h;
    }
    if (sentSignal) h.signal.inc();
    if (!immediate) return;
    if (cacheHit) {
      h.hit.inc();
      h.cache.observe(serverMs / 1000);
    } else {
      h.miss.inc();
      h.cold.observe(serverMs / 1000);
    }
  }

  /** A first-signal request the server answered with an error. */
  answerError(surface: AnswerSurface, tenant: string | null, code: string): void {
    this.ttfsErrors.inc({ surface, error_code: this.codes.of(code), tenant_id: tenant === null ? '_none' : this.tenants.of(tenant), origin: 'server' });
  }

  /** Events a surface reported (POST …/telemetry/ttfs), after validation. */
  reported(events: readonly TtfsEvent[]): void {
    for (const e of events) {
      const tenant = this.tenants.of(e.tenant);
      if (e.event_type === 'signal.error' || e.event_type === 'signal.timeout') {
        this.ttfsErrors.inc({ surface: e.surface, error_code: this.codes.of(e.error_code ?? 'TIMEOUT'), tenant_id: tenant, origin: 'client' });
        if (e.event_type === 'signal.error') continue;
      }
      const labels = { surface: e.surface, cache_hit: e.cache_hit ? 'true' : 'false', signal_source: e.signal_source ?? 'unknown', kind: e.kind ?? 'unavailable', tenant_id: tenant };
      this.ttfsLatency.observe(labels, e.ttfs_ms / 1000);
      const t = this.targets[e.surface];
      if (e.ttfs_ms > t.p50) this.ttfsSloBreaches.inc({ ...labels, slo: 'p50' });
      if (e.ttfs_ms > t.p95) this.ttfsSloBreaches.inc({ ...labels, slo: 'p95' });
    }
  }

  /** The ledger's commit observer: job outcomes, failures, claims, lease expiries, transaction sizes. */
  readonly onCommit = (c: CommitInfo): void => {
    this.ledgerTx.observe(c.ms / 1000);
    this.ledgerBatch.observe(c.batchSize);
    for (const t of c.transitions) {
      const type = this.types.of(t.type);
      if (t.event === 'enqueued') this.jobsEnqueued.inc({ type });
      else if (t.event === 'claimed') this.jobClaims.inc({ type });
      if (t.event === 'lease_expired') this.leaseExpired.inc();
      const err = t.data.error as { code?: unknown } | undefined;
      const code = t.event === 'lease_expired' ? 'LEASE_EXPIRED' : typeof err?.code === 'string' ? err.code : null;
      if (code !== null && (t.event === 'retry_scheduled' || t.event === 'failed' || t.event === 'dead_lettered' || t.event === 'lease_expired'))
        this.jobFailures.inc({ error_code: this.codes.of(code), outcome: t.to === 'queued' ? 'retry' : t.to });
      if (TERMINAL_STATES.has(t.to)) {
        const s = Number(parseMicros(t.at) - parseMicros(t.createdAt)) / 1e6;
        this.jobDuration.observe({ type, outcome: t.to }, Math.max(0, s));
      }
    }
  };

  /** The Prometheus text of every metric; database-backed gauges refreshed if older than dbCacheMs. */
  async exposition(): Promise<string> {
    await this.refreshDb();
    const s = this.sources;
    if (s) {
      this.listenConnected.set(s.listener.ready ? 1 : 0);
      setCounter(this.listenReconnects, [[{}, Math.max(0, s.listener.stats.connects - 1)]]);
      this.waiters.set({ kind: 'long_poll' }, s.waiting.long_poll);
      this.waiters.set({ kind: 'sse' }, s.waiting.sse);
      if (s.queue) {
        this.telemetryDepth.set(s.queue.depth);
        setCounter(this.telemetryWritten, [[{}, s.queue.stats.written]]);
        setCounter(
          this.telemetryDropped,
          Object.entries(s.queue.stats.dropped).map(([reason, n]) => [{ reason }, n]),
        );
      }
    }
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Refreshes the database-backed gauges that are older than their cache time, each query
   * single-flight. A scrape waits (at most dbWaitMs) for the queue query, and for the count of
   * finished jobs only until it has one: after that it is refreshed in the background.
   */
  private async refreshDb(): Promise<void> {
    const pool = this.sources?.pool;
    if (!pool) return;
    const now = performance.now();
    const wait: Array<Promise<void>> = [];
    if (now - this.dbAt >= this.dbCacheMs) wait.push((this.dbRefresh ??= this.queryWaiting(pool).finally(() => (this.dbRefresh = null))));
    if (now - this.finishedAt >= this.finishedCacheMs) {
      const p = (this.finishedRefresh ??= this.queryFinished(pool).finally(() => (this.finishedRefresh = null)));
      if (this.finished === null) wait.push(p);
    }
    if (wait.length === 0) return;
    // Without any value yet, wait for the first; after that, briefly: a slow database costs the
    // scrape at most dbWaitMs and the values of the previous refresh.
    const bound = this.waiting === null || this.finished === null ? this.dbFirstWaitMs : this.dbWaitMs;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(wait), new Promise<void>((r) => (timer = setTimeout(r, bound)))]);
    clearTimeout(timer);
  }

  /** okit_jobs from the latest waiting and finished counts; every state of every type known, zeros included. */
  private setJobs(): void {
    const byType = new Map<string, Map<string, number>>();
    for (const r of [...(this.waiting ?? []), ...(this.finished ?? [])]) {
      const type = this.types.of(String(r.type));
      let m = byType.get(type);
      if (!m) byType.set(type, (m = new Map()));
      m.set(r.state, (m.get(r.state) ?? 0) + Number(r.n));
    }
    // A queue that drains to 0 is a value, not a vanished series.
    for (const type of [...this.types.values(), ...(byType.has(OTHER) ? [OTHER] : [])]) if (!byType.has(type)) byType.set(type, new Map());
    this.jobs.reset();
    for (const [type, m] of byType) for (const state of JOB_STATES) this.jobs.set({ state, type }, m.get(state) ?? 0);
  }

  private async timed<T>(query: 'waiting' | 'finished', fn: () => Promise<T>): Promise<T | null> {
    const t0 = performance.now();
    try {
      const out = await fn();
      this.dbRefreshSeconds.set({ query }, (performance.now() - t0) / 1000);
      return out;
    } catch {
      this.dbRefreshErrors.inc({ query });
      return null; // keep the last values; try again at the next scrape
    }
  }

  private async queryFinished(pool: Pool): Promise<void> {
    // One worker, not parallel ones: a background count should not take both cores from the server.
    const rows = await this.timed('finished', async () => {
      const r = (await pool.query(`BEGIN; SET LOCAL max_parallel_workers_per_gather = 0; ${FINISHED_SQL}; COMMIT`)) as unknown as Array<{ rows: CountRow[] }>;
      return r[2]!.rows;
    });
    if (rows === null) return;
    this.finished = rows;
    this.finishedAt = performance.now();
    this.setJobs();
  }

  private async queryWaiting(pool: Pool): Promise<void> {
    const got = await this.timed('waiting', () =>
      Promise.all([
        pool.query(WAITING_SQL),
        pool.query('SELECT tenant, host, capacity, base_refill_per_sec, refill_per_sec, tokens, updated_at, penalty_until FROM okit.throttles'),
        pool.query("SELECT tenant, host, count(*)::int AS n FROM okit.throttle_events WHERE event = 'upstream_throttled' GROUP BY tenant, host"),
        pool.query('SELECT surface, p50_ms::float8 AS p50, p95_ms::float8 AS p95 FROM okit.ttfs_slo_targets'),
      ]),
    );
    if (got === null) return;
    const [jobs, buckets, upstream, targets] = got;
    this.waiting = jobs.rows as CountRow[];
    this.setJobs();

    const now = this.clock.now();
    const tokens = new Map<string, [Labels, number]>();
    for (const r of buckets.rows) {
      const l = { tenant_id: this.tenants.of(String(r.tenant)), host: this.hosts.of(String(r.host)) };
      const b = refill(toBucket(r), now);
      const k = `${l.tenant_id}|${l.host}`;
      // Folded buckets (under _other) show the emptiest: what matters is whether claims wait.
      const v = Number(b.tokens) / 1e6;
      tokens.set(k, [l, Math.min(v, tokens.get(k)?.[1] ?? Infinity)]);
    }
    this.throttleTokens.reset();
    for (const [l, v] of tokens.values()) this.throttleTokens.set(l, v);

    const counts = new Map<string, [Labels, number]>();
    for (const r of upstream.rows) {
      const l = { tenant_id: this.tenants.of(String(r.tenant)), host: this.hosts.of(String(r.host)) };
      const k = `${l.tenant_id}|${l.host}`;
      counts.set(k, [l, (counts.get(k)?.[1] ?? 0) + Number(r.n)]);
    }
    setCounter(this.upstreamThrottled, [...counts.values()]);

    for (const r of targets.rows) if (r.surface in this.targets) this.targets[r.surface as Surface] = { p50: Number(r.p50), p95: Number(r.p95) };
    this.dbAt = performance.now();
  }

  /** For tests and `okit serve`: load the SLO targets before the first scrape. */
  async loadTargets(pool: Pool): Promise<void> {
    const { rows } = await pool.query('SELECT surface, p50_ms::float8 AS p50, p95_ms::float8 AS p95 FROM okit.ttfs_slo_targets');
    for (const r of rows) if (r.surface in this.targets) this.targets[r.surface as Surface] = { p50: Number(r.p50), p95: Number(r.p95) };
  }
}

/** The hot-path children of one label set, each made the first time it is used (no empty series). */
class HotChildren {
  private s?: FastCounterChild;
  private h?: FastCounterChild;
  private m?: FastCounterChild;
  private c?: FastHistogramChild;
  private o?: FastHistogramChild;
  constructor(
    private readonly m_: OkitMetrics,
    private readonly key: string,
    private readonly values: readonly string[],
  ) {}
  private readonly vals = () => this.values;
  get signal(): FastCounterChild {
    return (this.s ??= this.m_.ttfsSignals.child(this.key, this.vals));
  }
  get hit(): FastCounterChild {
    return (this.h ??= this.m_.ttfsCacheHits.child(this.key, this.vals));
  }
  get miss(): FastCounterChild {
    return (this.m ??= this.m_.ttfsCacheMisses.child(this.key, this.vals));
  }
  get cache(): FastHistogramChild {
    return (this.c ??= this.m_.ttfsCacheLatency.child(this.key, this.vals));
  }
  get cold(): FastHistogramChild {
    return (this.o ??= this.m_.ttfsColdLatency.child(this.key, this.vals));
  }
}

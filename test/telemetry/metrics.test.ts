/**
 * GET /metrics after a scripted workload: every metric's presence, type, labels and values,
 * read from the exposition text the way Prometheus reads it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/http/tokens.js';
import type { CommitInfo } from '../../src/ledger/ledger.js';
import { parseMetricsListen } from '../../src/metrics/listen.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { parseExposition, type Exposition } from '../helpers/exposition.js';
import { openSse } from '../helpers/sse.js';
import { FS, STREAM, startTestServer, type TestServer } from '../helpers/serve.js';

const A = '/api/v1/orchestrator';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('GET /metrics after a scripted workload', () => {
  let db: TestDb;
  let t: TestServer;
  let metricsToken: string;
  const commits: CommitInfo[] = [];
  const ids: Record<string, string> = {};
  let m: Exposition;

  const scrape = async (token = metricsToken): Promise<Exposition> => {
    const r = await fetch(t.base + '/metrics', { headers: { Authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseExposition(await r.text());
  };

  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, {
      telemetryQueue: { flushMs: 20 },
      metricsOptions: { dbCacheMs: 0, finishedCacheMs: 0 },
      metricsListen: { host: '127.0.0.1', port: 0 },
      listenerCheckMs: 200,
    });
    t.ledger.commitObservers.add((c) => commits.push(c));
    metricsToken = (await createToken(db.pool, { tenant: 'ops', scope: 'metrics' })).token;
    const L = t.ledger;

    // Throttled source host: two tokens, (almost) no refill.
    await L.configureThrottle('acme', 'registry.example', { capacity: 2, refillPerSec: 0.000001 });
    const src = await L.createSource('acme', { name: 'registry', host: 'registry.example' });
    for (const k of ['a', 'b', 'c']) ids[k] = (await L.enqueue('acme', { type: 'scan', sourceId: src.id })).job.id;
    ids.d = (await L.enqueue('acme', { type: 'build' })).job.id;
    ids.e = (await L.enqueue('acme', { type: 'report', maxAttempts: 1 })).job.id;
    ids.f = (await L.enqueue('acme', { type: 'lease', maxAttempts: 1 })).job.id;
    ids.other = (await L.enqueue('other', { type: 'scan' })).job.id;

    expect((await L.claim('acme', { workerId: 'w1', types: ['scan'] }))!.job.id).toBe(ids.a);
    expect((await L.claim('acme', { workerId: 'w2', types: ['scan'] }))!.job.id).toBe(ids.b);
    expect(await L.claim('acme', { workerId: 'w3', types: ['scan'] })).toBeNull(); // c: throttled, bucket empty
    await L.complete('acme', ids.a!, 'w1');
    await L.fail('acme', ids.b!, 'w2', { code: 'NET', message: 'reset' }); // retry
    await L.claim('acme', { workerId: 'w4', types: ['build'] });
    await L.fail('acme', ids.d!, 'w4', { code: 'BROKEN', message: 'no', retryable: false });
    await L.claim('acme', { workerId: 'w5', types: ['report'] });
    await L.fail('acme', ids.e!, 'w5', { code: 'FLAKY', message: 'again' }); // last attempt: dead letter
    await L.claim('acme', { workerId: 'w6', types: ['lease'], leaseSeconds: 1 });
    await sleep(1100);
    expect(await L.expireLeases({ tenant: 'acme' })).toBe(1);
    await L.reportThrottle('acme', 'registry.example', { retryAfterSeconds: 60 });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('answers 401 without a metrics token (none, a tenant token, admin), 200 with one', async () => {
    expect((await fetch(t.base + '/metrics')).status).toBe(401);
    for (const tok of [t.tokens.read, t.tokens.admin, 'okit_' + 'B'.repeat(43)]) {
      const r = await fetch(t.base + '/metrics', { headers: { Authorization: `Bearer ${tok}` } });
      expect(r.status).toBe(401);
      expect((await r.json()).error.code).toBe('UNAUTHORIZED');
    }
    // And a metrics token opens nothing else.
    expect((await t.get(FS(ids.a!), metricsToken)).status).toBe(403);
    expect((await t.post(`${A}/telemetry/ttfs`, metricsToken, { events: [] })).status).toBe(403);
    await scrape();
  });

  it('first-signal answers: cold and cache latency, hits, misses and signals, labelled by surface, source, kind and tenant', async () => {
    const cli = { 'X-Okit-Surface': 'cli' };
    const r1 = await t.get(FS(ids.a!), t.tokens.read, cli); // first read: Postgres
    expect(r1.status).toBe(200);
    expect(r1.headers.get('server-timing')).toMatch(/^okit;dur=\d+\.\d{3};desc="cache miss"$/);
    const r2 = await t.get(FS(ids.a!), t.tokens.read, cli); // within the 1 s cache
    expect(r2.headers.get('server-timing')).toMatch(/desc="cache hit"/);
    const r3 = await t.get(FS(ids.a!), t.tokens.read); // undeclared: surface api, no Server-Timing
    expect(r3.headers.get('server-timing')).toBeNull();
    const r4 = await t.get(FS(ids.a!), t.tokens.read, { ...cli, 'If-None-Match': r1.headers.get('etag')! }); // 304: an answer, not a signal
    expect(r4.status).toBe(304);

    m = await scrape();
    const base = { tenant_id: 'acme', signal_source: 'snapshot', kind: 'succeeded' };
    expect(m.value('ttfs_cold_latency_seconds_count', { ...base, surface: 'cli', cache_hit: 'false' })).toBe(1);
    expect(m.value('ttfs_cache_latency_seconds_count', { ...base, surface: 'cli', cache_hit: 'true' })).toBe(2); // r2 and the 304
    expect(m.value('ttfs_cache_hit_total', { ...base, surface: 'cli' })).toBe(2);
    expect(m.value('ttfs_cache_miss_total', { ...base, surface: 'cli' })).toBe(1);
    expect(m.value('ttfs_signal_total', { ...base, surface: 'cli', cache_hit: 'false' })).toBe(1);
    expect(m.value('ttfs_signal_total', { ...base, surface: 'cli', cache_hit: 'true' })).toBe(1); // the 304 sent no signal
    expect(m.sum('ttfs_signal_total', { ...base, surface: 'api' })).toBe(1);
    // Histogram buckets are cumulative and end in +Inf = _count; the server's part is well under 1 s.
    const buckets = m.find('ttfs_cold_latency_seconds_bucket', { ...base, surface: 'cli' });
    expect(buckets.map((b) => b.labels.le)).toEqual(['0.0001', '0.00025', '0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '1.5', '2.5', '+Inf']);
    expect(buckets.at(-1)!.value).toBe(1);
    expect(m.value('ttfs_cold_latency_seconds_bucket', { ...base, surface: 'cli', le: '1' })).toBe(1);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(m.types.get('ttfs_cold_latency_seconds')).toBe('histogram');
    expect(m.types.get('ttfs_signal_total')).toBe('counter');

    // The two declared first answers (no ETag held) are stored as the server's own rows.
    await until(async () => (await db.pool.query("SELECT count(*)::int AS n FROM okit.ttfs_events WHERE event_type IN ('signal.cache_hit','signal.cold_start')")).rows[0].n === 2);
    const { rows } = await db.pool.query('SELECT event_type, surface, cache_hit, signal_source, kind, ttfs_ms FROM okit.ttfs_events ORDER BY id');
    expect(rows.map((r) => [r.event_type, r.surface, r.cache_hit, r.signal_source, r.kind])).toEqual([
      ['signal.cold_start', 'cli', false, 'snapshot', 'succeeded'],
      ['signal.cache_hit', 'cli', true, 'snapshot', 'succeeded'],
    ]);
    expect(Number(rows[0].ttfs_ms)).toBeLessThan(1000);
  });

  it('pending long-polls and SSE streams are okit_waiters by kind; a woken long-poll is a signal, not a latency', async () => {
    const etag = (await t.get(FS(ids.b!), t.tokens.read)).headers.get('etag')!;
    const before = (await scrape()).sum('ttfs_signal_total', { kind: 'canceled' });
    const poll = t.get(FS(ids.b!) + '?wait=10', t.tokens.read, { 'If-None-Match': etag, 'X-Okit-Surface': 'ci' });
    const sse = await openSse(t.base + STREAM(ids.c!), { Authorization: `Bearer ${t.tokens.read}`, 'X-Okit-Surface': 'ui' });
    expect((await sse.nextEvent())?.event).toBe('signal');
    await until(() => t.srv.waiters.size >= 2);
    m = await scrape();
    expect(m.value('okit_waiters', { kind: 'long_poll' })).toBe(1);
    expect(m.value('okit_waiters', { kind: 'sse' })).toBe(1);
    expect(m.value('ttfs_cold_latency_seconds_count', { surface: 'ui', kind: 'blocked', tenant_id: 'acme' })).toBe(1); // throttled job: blocked
    await t.ledger.cancel('acme', ids.b!, { actor: 'test' });
    expect((await poll).status).toBe(200);
    sse.close();
    await until(async () => {
      const x = await scrape();
      return x.value('okit_waiters', { kind: 'sse' }) === 0 && x.value('okit_waiters', { kind: 'long_poll' }) === 0;
    });
    m = await scrape();
    expect(m.sum('ttfs_signal_total', { kind: 'canceled', surface: 'ci' }) - before).toBe(1);
    expect(m.find('ttfs_cold_latency_seconds_count', { surface: 'ci' })).toHaveLength(0);
    expect(m.find('ttfs_cache_latency_seconds_count', { surface: 'ci' })).toHaveLength(0);
  });

  it('first-signal errors are ttfs_error_total by surface, code and tenant', async () => {
    expect((await t.get(FS(ids.other!), t.tokens.read, { 'X-Okit-Surface': 'ui' })).status).toBe(404);
    expect((await t.get(FS(ids.a!), null)).status).toBe(401);
    m = await scrape();
    expect(m.value('ttfs_error_total', { surface: 'ui', error_code: 'JOB_NOT_FOUND', tenant_id: 'acme', origin: 'server' })).toBe(1);
    expect(m.value('ttfs_error_total', { surface: 'api', error_code: 'UNAUTHORIZED', tenant_id: '_none', origin: 'server' })).toBe(1);
  });

  it('reported telemetry: ttfs_latency_seconds in SLO buckets, breaches against the targets, client errors', async () => {
    const r = await t.post(`${A}/telemetry/ttfs`, t.tokens.read, {
      events: [
        { surface: 'cli', event_type: 'signal.rendered', ttfs_ms: 1500, job_id: ids.a, kind: 'succeeded', signal_source: 'snapshot', cache_hit: true, server_ms: 0.4 },
        { surface: 'ci', event_type: 'signal.rendered', ttfs_ms: 6000, job_id: ids.a, kind: 'succeeded', signal_source: 'snapshot' },
        { surface: 'ui', event_type: 'signal.timeout', ttfs_ms: 8000, job_id: ids.c },
        { surface: 'cli', event_type: 'signal.error', ttfs_ms: 300, job_id: ids.d, error_code: 'DB_UNAVAILABLE' },
      ],
    });
    expect(r.status).toBe(202);
    expect(await r.json()).toEqual({ accepted: 4, dropped: 0 });
    m = await scrape();
    const cli = { surface: 'cli', cache_hit: 'true', signal_source: 'snapshot', kind: 'succeeded', tenant_id: 'acme' };
    expect(m.value('ttfs_latency_seconds_count', cli)).toBe(1);
    expect(m.value('ttfs_latency_seconds_sum', cli)).toBe(1.5);
    expect(m.value('ttfs_latency_seconds_bucket', { ...cli, le: '1' })).toBe(0);
    expect(m.value('ttfs_latency_seconds_bucket', { ...cli, le: '1.5' })).toBe(1);
    expect(m.find('ttfs_latency_seconds_bucket', cli).map((b) => b.labels.le)).toEqual(['0.05', '0.1', '0.25', '0.5', '0.75', '1', '1.5', '2', '3', '4', '5', '7.5', '10', '30', '+Inf']);
    expect(m.value('ttfs_latency_seconds_sum', { surface: 'ci' })).toBe(6);
    expect(m.value('ttfs_latency_seconds_sum', { surface: 'ui', kind: 'unavailable', signal_source: 'unknown' })).toBe(8);
    expect(m.find('ttfs_slo_breach_total', { surface: 'cli' })).toHaveLength(0);
    for (const surface of ['ci', 'ui']) for (const slo of ['p50', 'p95']) expect(m.sum('ttfs_slo_breach_total', { surface, slo, tenant_id: 'acme' })).toBe(1);
    expect(m.value('ttfs_error_total', { surface: 'ui', error_code: 'TIMEOUT', origin: 'client' })).toBe(1);
    expect(m.value('ttfs_error_total', { surface: 'cli', error_code: 'DB_UNAVAILABLE', origin: 'client' })).toBe(1);
  });

  it('orchestrator metrics: queue depth by state and type, outcomes, failures, claims, throttles, leases', async () => {
    m = await scrape();
    const jobs = (type: string) => Object.fromEntries(m.find('okit_jobs', { type }).map((s) => [s.labels.state, s.value]));
    const zero = { queued: 0, throttled: 0, running: 0, succeeded: 0, failed: 0, dead_letter: 0, canceled: 0 };
    expect(jobs('scan')).toEqual({ ...zero, succeeded: 1, throttled: 1, canceled: 1, queued: 1 }); // b canceled; other's scan queued
    expect(jobs('build')).toEqual({ ...zero, failed: 1 });
    expect(jobs('report')).toEqual({ ...zero, dead_letter: 1 });
    expect(jobs('lease')).toEqual({ ...zero, dead_letter: 1 });
    expect(m.types.get('okit_jobs')).toBe('gauge');

    expect(m.value('okit_jobs_enqueued_total', { type: 'scan' })).toBe(4);
    expect(m.value('okit_job_claims_total', { type: 'scan' })).toBe(2);
    expect(m.value('okit_job_claims_total', { type: 'lease' })).toBe(1);
    expect(m.value('okit_job_duration_seconds_count', { type: 'scan', outcome: 'succeeded' })).toBe(1);
    expect(m.value('okit_job_duration_seconds_count', { type: 'scan', outcome: 'canceled' })).toBe(1);
    expect(m.value('okit_job_duration_seconds_count', { type: 'build', outcome: 'failed' })).toBe(1);
    expect(m.value('okit_job_duration_seconds_count', { type: 'report', outcome: 'dead_letter' })).toBe(1);
    expect(m.value('okit_job_duration_seconds_count', { type: 'lease', outcome: 'dead_letter' })).toBe(1);
    expect(m.value('okit_job_duration_seconds_sum', { type: 'lease', outcome: 'dead_letter' })).toBeGreaterThanOrEqual(1); // waited out a 1 s lease
    expect(m.value('okit_job_failures_total', { error_code: 'NET', outcome: 'retry' })).toBe(1);
    expect(m.value('okit_job_failures_total', { error_code: 'BROKEN', outcome: 'failed' })).toBe(1);
    expect(m.value('okit_job_failures_total', { error_code: 'FLAKY', outcome: 'dead_letter' })).toBe(1);
    expect(m.value('okit_job_failures_total', { error_code: 'LEASE_EXPIRED', outcome: 'dead_letter' })).toBe(1);
    expect(m.value('okit_lease_expired_total')).toBe(1);
    expect(m.value('okit_throttle_tokens', { tenant_id: 'acme', host: 'registry.example' })).toBe(0);
    expect(m.value('okit_upstream_throttled_total', { tenant_id: 'acme', host: 'registry.example' })).toBe(1);
    expect(m.types.get('okit_upstream_throttled_total')).toBe('counter');

    // One observation per committed transaction, each a batch of one.
    expect(m.value('okit_ledger_transaction_seconds_count')).toBe(commits.length);
    expect(m.value('okit_ledger_batch_size_count')).toBe(commits.length);
    expect(m.value('okit_ledger_batch_size_sum')).toBe(commits.length);
    expect(m.value('okit_ledger_batch_size_bucket', { le: '1' })).toBe(commits.length);
    expect(commits.flatMap((c) => c.transitions).length).toBeGreaterThanOrEqual(17);
  });

  it('telemetry writer, LISTEN state and reconnects, Node defaults; the loopback listener serves the same without a token', async () => {
    // The queue empties when a batch is taken, and the counter moves after that batch commits:
    // wait for the writer to be idle with its count equal to the table's.
    const stored = async () => (await db.pool.query('SELECT count(*)::int AS n FROM okit.ttfs_events')).rows[0].n as number;
    await until(async () => {
      const s = await scrape();
      return s.value('okit_telemetry_queue_depth') === 0 && s.value('okit_telemetry_written_total') === (await stored());
    });
    m = await scrape();
    expect(m.value('okit_telemetry_written_total')).toBe(await stored());
    expect(m.value('okit_telemetry_dropped_total', { reason: 'queue_full' })).toBe(0);
    expect(m.value('okit_listen_connected')).toBe(1);
    expect(m.value('okit_listen_reconnects_total')).toBe(0);

    const admin = await db.admin();
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'okit-listen' AND datname = current_database()");
    await admin.end();
    await until(async () => (await scrape()).value('okit_listen_reconnects_total') === 1 && t.srv.listener.ready);
    expect((await scrape()).value('okit_listen_connected')).toBe(1);

    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) expect(m.find(name).length, name).toBeGreaterThan(0);

    const open = await fetch(t.srv.metricsUrl!);
    expect(open.status).toBe(200);
    const o = parseExposition(await open.text());
    expect(o.value('okit_lease_expired_total')).toBe(1);
    expect((await fetch(t.srv.metricsUrl!.replace('/metrics', '/api/v1/orchestrator/jobs'))).status).toBe(404);
  });

  it('--metrics-listen takes loopback addresses only', () => {
    expect(parseMetricsListen('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseMetricsListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseMetricsListen('localhost:9464')).toEqual({ host: 'localhost', port: 9464 });
    for (const bad of ['0.0.0.0:9464', '10.0.0.5:9464', 'example.org:9464', '127.0.0.1', '127.0.0.1:70000', ':9464']) expect(() => parseMetricsListen(bad), bad).toThrow(/metrics-listen/);
  });
});

describe('database-backed gauges', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { metricsOptions: { dbCacheMs: 0, finishedCacheMs: 60_000 } });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('queue depth is read at every scrape; finished jobs are counted at most every finishedCacheMs, in the background', async () => {
    const mt = (await createToken(db.pool, { tenant: 'ops', scope: 'metrics' })).token;
    const scrape = async () => parseExposition(await (await fetch(t.base + '/metrics', { headers: { Authorization: `Bearer ${mt}` } })).text());
    const { job } = await t.ledger.enqueue('acme', { type: 'q' });
    let m = await scrape();
    expect([m.value('okit_jobs', { type: 'q', state: 'queued' }), m.value('okit_jobs', { type: 'q', state: 'succeeded' })]).toEqual([1, 0]);
    await t.ledger.claim('acme', { workerId: 'w', types: ['q'] });
    await t.ledger.complete('acme', job.id, 'w');
    m = await scrape();
    expect([m.value('okit_jobs', { type: 'q', state: 'queued' }), m.value('okit_jobs', { type: 'q', state: 'running' })]).toEqual([0, 0]);
    expect(m.value('okit_jobs', { type: 'q', state: 'succeeded' })).toBe(0); // the finished count is a minute old at most
    expect(m.find('okit_metrics_db_query_seconds').map((x) => x.labels.query).sort()).toEqual(['finished', 'waiting']);
  });
});

describe('label cardinality is capped', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { metricsOptions: { dbCacheMs: 0, finishedCacheMs: 0, labelLimits: { tenants: 2, types: 2, hosts: 1 } } });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('tenants, job types and hosts past the limit are counted under _other', async () => {
    const mt = (await createToken(db.pool, { tenant: 'ops', scope: 'metrics' })).token;
    for (const tenant of ['t1', 't2', 't3', 't4']) {
      const { job } = await t.ledger.enqueue(tenant, { type: `type-${tenant}` });
      const tok = (await createToken(db.pool, { tenant, scope: 'read' })).token;
      expect((await t.get(FS(job.id), tok)).status).toBe(200);
      await t.ledger.configureThrottle(tenant, `${tenant}.example`, { capacity: 1, refillPerSec: 1 });
    }
    const m = parseExposition(await (await fetch(t.base + '/metrics', { headers: { Authorization: `Bearer ${mt}` } })).text());
    const tenants = new Set(m.find('ttfs_signal_total').map((s) => s.labels.tenant_id));
    expect([...tenants].sort()).toEqual(['_other', 't1', 't2']);
    expect(m.sum('ttfs_signal_total', { tenant_id: '_other' })).toBe(2);
    expect(new Set(m.find('okit_jobs').map((s) => s.labels.type))).toEqual(new Set(['type-t1', 'type-t2', '_other']));
    expect(m.value('okit_jobs', { type: '_other', state: 'queued' })).toBe(2);
    expect(new Set(m.find('okit_throttle_tokens').map((s) => s.labels.host))).toEqual(new Set(['t1.example', '_other']));
  });
});

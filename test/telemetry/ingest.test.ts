/**
 * POST /api/v1/orchestrator/telemetry/ttfs: what is accepted lands in okit.ttfs_events in
 * batches; bad input is a 4xx and stores nothing; a flood is dropped and counted, never held.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/pool.js';
import { MAX_BATCH_EVENTS, type TtfsEvent } from '../../src/telemetry/events.js';
import { TelemetryQueue } from '../../src/telemetry/queue.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const TTFS = '/api/v1/orchestrator/telemetry/ttfs';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('telemetry endpoint', () => {
  let db: TestDb;
  let t: TestServer;
  let job: string;
  let runJob: string;
  let runId: string;
  let foreign: string;
  const count = async () => (await db.pool.query("SELECT count(*)::int AS n FROM okit.ttfs_events WHERE event_type NOT IN ('signal.cache_hit', 'signal.cold_start')")).rows[0].n as number;
  const ok = (over: Record<string, unknown> = {}) => ({ surface: 'cli', event_type: 'signal.rendered', ttfs_ms: 120.5, job_id: job, ...over });

  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { telemetryQueue: { flushMs: 20 } });
    job = (await t.ledger.enqueue('acme', { type: 'scan' })).job.id;
    runId = '7d3a4a8e-0c33-4a62-9f0a-2b1bde0f4a11';
    runJob = (await t.ledger.enqueue('acme', { type: 'scan', runId })).job.id;
    foreign = (await t.ledger.enqueue('other', { type: 'scan' })).job.id;
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('stores a batch with every field, the run filled in from the job, time stamped by the server', async () => {
    const r = await t.post(TTFS, t.tokens.read, {
      events: [
        ok({ cache_hit: true, signal_source: 'snapshot', kind: 'queued', phase: 'unknown', server_ms: 0.25 }),
        ok({ job_id: runJob, surface: 'ci', ttfs_ms: 4200 }),
        ok({ job_id: runJob, surface: 'ui', event_type: 'signal.error', error_code: 'DB_UNAVAILABLE', ttfs_ms: 30, run_id: runId }),
      ],
    });
    expect(r.status).toBe(202);
    expect(await r.json()).toEqual({ accepted: 3, dropped: 0 });
    for (let i = 0; i < 200 && (await count()) < 3; i++) await sleep(10);
    const { rows } = await db.pool.query(
      `SELECT tenant, job_id, run_id, surface, event_type, ttfs_ms, server_ms, cache_hit, signal_source, kind, phase, error_code, ts FROM okit.ttfs_events ORDER BY id`,
    );
    expect(rows.map(({ ts, ...r }) => r)).toEqual([
      { tenant: 'acme', job_id: job, run_id: null, surface: 'cli', event_type: 'signal.rendered', ttfs_ms: '120.500', server_ms: '0.250', cache_hit: true, signal_source: 'snapshot', kind: 'queued', phase: 'unknown', error_code: null },
      { tenant: 'acme', job_id: runJob, run_id: runId, surface: 'ci', event_type: 'signal.rendered', ttfs_ms: '4200.000', server_ms: null, cache_hit: false, signal_source: null, kind: null, phase: null, error_code: null },
      { tenant: 'acme', job_id: runJob, run_id: runId, surface: 'ui', event_type: 'signal.error', ttfs_ms: '30.000', server_ms: null, cache_hit: false, signal_source: null, kind: null, phase: null, error_code: 'DB_UNAVAILABLE' },
    ]);
    expect(new Set(rows.map((r) => r.ts)).size).toBe(1); // one batch, one receipt time
  });

  const bad: Array<[string, () => unknown, number, string]> = [
    ['a negative ttfs', () => ({ events: [ok({ ttfs_ms: -1 })] }), 400, 'INVALID_INPUT'],
    ['an absurd ttfs (over an hour)', () => ({ events: [ok({ ttfs_ms: 3_600_001 })] }), 400, 'INVALID_INPUT'],
    ['ttfs as a string', () => ({ events: [ok({ ttfs_ms: '120' })] }), 400, 'INVALID_INPUT'],
    ['an unknown surface', () => ({ events: [ok({ surface: 'tv' })] }), 400, 'INVALID_INPUT'],
    ['a server-only event type', () => ({ events: [ok({ event_type: 'signal.cache_hit' })] }), 400, 'INVALID_INPUT'],
    ['an error without its code', () => ({ events: [ok({ event_type: 'signal.error' })] }), 400, 'INVALID_INPUT'],
    ['an unknown kind', () => ({ events: [ok({ kind: 'exploded' })] }), 400, 'INVALID_INPUT'],
    ['an unknown field', () => ({ events: [ok({ tenant: 'other' })] }), 400, 'INVALID_INPUT'],
    ['a malformed job id', () => ({ events: [ok({ job_id: 'nope' })] }), 400, 'INVALID_INPUT'],
    ['a run that is not the job\'s', () => ({ events: [ok({ run_id: runId })] }), 400, 'INVALID_INPUT'],
    ['no events', () => ({ events: [] }), 400, 'INVALID_INPUT'],
    ['events not an array', () => ({ events: ok() }), 400, 'INVALID_INPUT'],
    ['an oversized batch', () => ({ events: Array.from({ length: MAX_BATCH_EVENTS + 1 }, () => ok()) }), 400, 'INVALID_INPUT'],
    ['an oversized body', () => ({ events: [ok()], pad: 'x'.repeat(70_000) }), 413, 'PAYLOAD_TOO_LARGE'],
    ['one valid event and one foreign job id', () => ({ events: [ok(), ok({ job_id: foreign })] }), 404, 'JOB_NOT_FOUND'],
    ['a job id that does not exist', () => ({ events: [ok({ job_id: '00000000-0000-4000-8000-000000000000' })] }), 404, 'JOB_NOT_FOUND'],
  ];
  for (const [name, body, status, code] of bad)
    it(`${name} → ${status} ${code}, nothing stored`, async () => {
      const before = await count();
      const r = await t.post(TTFS, t.tokens.read, body());
      expect(r.status).toBe(status);
      expect((await r.json()).error.code).toBe(code);
      await sleep(60); // three writer ticks
      expect(await count()).toBe(before);
    });

  it('needs a token (401); any tenant scope may report, a foreign job is 404 as if absent', async () => {
    expect((await t.post(TTFS, null, { events: [ok()] })).status).toBe(401);
    const other = await t.post(TTFS, t.tokens.otherRead, { events: [ok()] });
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ error: { code: 'JOB_NOT_FOUND', details: { job_id: job } } });
    expect((await t.post(TTFS, t.tokens.worker, { events: [ok()] })).status).toBe(202);
  });
});

describe('a telemetry flood cannot grow memory', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    // A writer that effectively never runs during the flood: the queue alone must hold the line.
    t = await startTestServer(db.url, db.pool, { telemetryQueue: { maxQueue: 250, batchMax: 100_000, flushMs: 3_600_000 } });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('past maxQueue events are dropped and counted; the queue never holds more', async () => {
    const job = (await t.ledger.enqueue('acme', { type: 'scan' })).job.id;
    const events = Array.from({ length: 100 }, () => ({ surface: 'ui', event_type: 'signal.rendered', ttfs_ms: 10, job_id: job }));
    let accepted = 0;
    let dropped = 0;
    for (let i = 0; i < 10; i++) {
      const b = await (await t.post(TTFS, t.tokens.read, { events })).json();
      accepted += b.accepted;
      dropped += b.dropped;
      expect(t.srv.telemetry!.queue.depth).toBeLessThanOrEqual(250);
    }
    expect(accepted).toBe(250);
    expect(dropped).toBe(750);
    expect(t.srv.telemetry!.queue.stats.dropped.queue_full).toBe(750);
    // The server's own row for a declared first answer is dropped (and counted) the same way.
    const r = await t.get(`/api/v1/orchestrator/jobs/${job}/first-signal`, t.tokens.read, { 'X-Okit-Surface': 'cli' });
    expect(r.status).toBe(200);
    expect(t.srv.telemetry!.queue.stats.dropped.queue_full).toBe(751);
    expect(t.srv.telemetry!.queue.depth).toBe(250);
    await t.srv.telemetry!.queue.flush(true);
    expect((await db.pool.query('SELECT count(*)::int AS n FROM okit.ttfs_events')).rows[0].n).toBe(250);
  });
});

describe('the batch writer', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
  });
  afterAll(async () => {
    await db.drop();
  });
  const ev = (job: string, i: number): TtfsEvent => ({
    ts: '2025-12-04T12:00:00.000000Z', tenant: 'acme', job_id: job, run_id: null, surface: 'cli', event_type: 'signal.rendered',
    ttfs_ms: i, server_ms: null, cache_hit: false, signal_source: null, kind: null, phase: null, error_code: null,
  });

  it('writes in batches of batchMax, one INSERT each', async () => {
    const q = new TelemetryQueue(db.pool, { batchMax: 40, flushMs: 3_600_000 });
    const job = '11111111-1111-4111-8111-111111111111';
    q.push(Array.from({ length: 100 }, (_, i) => ev(job, i)));
    await q.flush(true);
    expect(q.stats).toMatchObject({ accepted: 100, written: 100, batches: 3, writeErrors: 0 });
    const { rows } = await db.pool.query('SELECT ttfs_ms FROM okit.ttfs_events WHERE job_id = $1 ORDER BY id', [job]);
    expect(rows.map((r) => Number(r.ttfs_ms))).toEqual(Array.from({ length: 100 }, (_, i) => i));
    await q.close();
  });

  it('a database that is away: the batch waits in the queue (if it fits), then is written; a close that cannot write counts the loss', async () => {
    const pool = createPool(db.url, { max: 1 });
    const q = new TelemetryQueue(pool, { flushMs: 3_600_000 });
    const job = '22222222-2222-4222-8222-222222222222';
    await pool.end(); // "Cannot use a pool after calling end": the database is unavailable
    q.push([ev(job, 1), ev(job, 2)]);
    await q.flush(true);
    expect(q.stats.writeErrors).toBe(1);
    expect(q.depth).toBe(2);
    await q.close(200);
    expect(q.stats.dropped.write_failed).toBe(2);
    expect(q.push([ev(job, 3)])).toEqual({ accepted: 0, dropped: 1 }); // closed
  });

  it('a batch the database refuses is dropped and counted, not retried forever', async () => {
    const q = new TelemetryQueue(db.pool, { flushMs: 3_600_000 });
    q.push([{ ...ev('33333333-3333-4333-8333-333333333333', 1), tenant: 'NOT A TENANT' }]);
    await q.flush(true);
    expect(q.stats.dropped.write_failed).toBe(1);
    expect(q.depth).toBe(0);
    await q.close();
  });
});

describe('telemetry off (okit serve --no-telemetry)', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { telemetry: false });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('no telemetry route, no Server-Timing, nothing recorded', async () => {
    const job = (await t.ledger.enqueue('acme', { type: 'scan' })).job.id;
    expect((await t.post(TTFS, t.tokens.read, { events: [{ surface: 'cli', event_type: 'signal.rendered', ttfs_ms: 1, job_id: job }] })).status).toBe(404);
    const r = await t.get(`/api/v1/orchestrator/jobs/${job}/first-signal`, t.tokens.read, { 'X-Okit-Surface': 'cli' });
    expect(r.status).toBe(200);
    expect(r.headers.get('server-timing')).toBeNull();
    expect(t.srv.telemetry).toBeUndefined();
    expect((await t.srv.metrics.exposition()).match(/^ttfs_signal_total/m)).toBeNull();
  });
});

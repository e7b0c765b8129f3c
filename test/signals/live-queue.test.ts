/**
 * The live queue overlay (docs/eta.md, src/signals/live.ts): a queued job's served signal shows
 * its current position, computed at read time, beside the snapshot, which stays the fold of
 * the history (the position from enqueue) and never stores `live`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDb, type TestDb } from '../helpers/db.js';
import { FS, startTestServer, type TestServer } from '../helpers/serve.js';

describe('live queue position (read-time overlay)', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    // No per-process cache: each read is a fresh one, so the test need not wait out the 1 s TTL.
    t = await startTestServer(db.url, db.pool, { cacheTtlMs: 0 });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  const read = async (id: string, headers: Record<string, string> = {}) => {
    const r = await t.get(FS(id), t.tokens.read, headers);
    return { status: r.status, etag: r.headers.get('etag')!, body: r.status === 200 ? await r.json() : null };
  };

  it('a queued job\'s served signal shows its current position after the jobs ahead are claimed', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await t.ledger.enqueue('acme', { type: 'line' })).job.id);
    const c = ids[2]!;
    let r = await read(c);
    expect(r.body.live).toMatchObject({ queue_position: 3, eta_seconds: null });
    expect(r.body.diagnostics.queue_position).toBe(3);
    const first = r.etag;
    expect(first).toMatch(/^"1-[0-9a-f]{16}-q3-ex"$/);

    expect((await t.ledger.claim('acme', { workerId: 'w1', types: ['line'] }))?.job.id).toBe(ids[0]);
    r = await read(c, { 'If-None-Match': first });
    // The queue moved: a new ETag (the snapshot's is unchanged), the new position; the snapshot still says 3.
    expect(r.status).toBe(200);
    expect(r.etag).toMatch(/^"1-[0-9a-f]{16}-q2-ex"$/);
    expect(r.body.live.queue_position).toBe(2);
    expect(r.body.diagnostics.queue_position).toBe(3);
    expect(r.body.summary).toBe('Waiting in queue (position: 3); no ETA yet: no line job has succeeded');
    // Nothing moved: 304 for the current ETag.
    expect((await read(c, { 'If-None-Match': r.etag })).status).toBe(304);

    // A later job of higher priority goes ahead of it.
    await t.ledger.enqueue('acme', { type: 'line', priority: 10 });
    expect((await read(c)).body.live.queue_position).toBe(3);
    await t.ledger.claim('acme', { workerId: 'w2', types: ['line'], limit: 2 });
    expect((await read(c)).body.live.queue_position).toBe(1);

    // Stored snapshots never carry it.
    const stored = await db.pool.query('SELECT to_jsonb(s)::text AS s FROM okit.first_signal_snapshots s WHERE tenant = $1 AND job_id = $2', ['acme', c]);
    expect(stored.rows[0].s).not.toContain('"live"');
    expect(stored.rows[0].s).toContain('"queue_position": 3');
    expect(Object.keys(await t.ledger.getSnapshot('acme', c))).not.toContain('live');

    // Claimed: no longer queued, no overlay; the ETag is the snapshot's again.
    await t.ledger.claim('acme', { workerId: 'w3', types: ['line'] });
    r = await read(c);
    expect(r.body.kind).toBe('started');
    expect(r.body.live).toBeUndefined();
    expect(r.etag).toMatch(/^"2-[0-9a-f]{16}"$/);
  });

  it('the live ETA uses the live position, the type\'s current p50 and workers', async () => {
    // One success of 'timed' first: its p50 is what that run took (well under a second here).
    await t.ledger.enqueue('acme', { type: 'timed' });
    const w = await t.ledger.claim('acme', { workerId: 'w9', types: ['timed'] });
    await t.ledger.complete('acme', w!.job.id, 'w9');
    const a = await t.ledger.enqueue('acme', { type: 'timed' });
    const b = await t.ledger.enqueue('acme', { type: 'timed', notBefore: new Date(Date.now() + 120_000).toISOString() });
    const ra = await read(a.job.id);
    expect(ra.body.live).toMatchObject({ queue_position: 1, eta_seconds: 1 });
    // b waits two minutes first (its not_before, counted from its snapshot's updated_at), then behind a.
    const rb = await read(b.job.id);
    expect(rb.body.live.queue_position).toBe(2);
    expect(rb.body.live.eta_seconds).toBeGreaterThanOrEqual(120);
    expect(rb.body.live.eta_seconds).toBeLessThanOrEqual(122);
    expect(rb.etag).toMatch(new RegExp(`-q2-e${rb.body.live.eta_seconds}"$`));
    // One ETag, one representation: the same bytes on the next read.
    const again = await t.get(FS(b.job.id), t.tokens.read);
    expect(again.headers.get('etag')).toBe(rb.etag);
    expect(await again.json()).toEqual(rb.body);
  });
});

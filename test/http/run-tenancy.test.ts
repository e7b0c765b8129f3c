/**
 * Finding 8: a run id is no oracle across tenants. A run is (tenant, id): enqueueing with an
 * id another tenant uses answers exactly as with a fresh id, and creates this tenant's own run.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const A = '/api/v1/orchestrator';

describe('runs across tenants', () => {
  let db: TestDb;
  let t: TestServer;
  let otherWorker: string;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool);
    const { createToken } = await import('../../src/http/tokens.js');
    otherWorker = (await createToken(db.pool, { tenant: 'other', scope: 'worker' })).token;
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  // The parts of an answer that do not depend on ids or time.
  const shape = async (r: Response) => {
    const b = await r.json();
    return { status: r.status, keys: Object.keys(b).sort(), created: b.created, jobKeys: Object.keys(b.job ?? {}).sort(), state: b.job?.state, error: b.error?.code };
  };

  it("another tenant's run id answers as a fresh one does, and stays that tenant's", async () => {
    const theirs = randomUUID();
    const b1 = await t.post(`${A}/jobs`, otherWorker, { type: 'scan', run_id: theirs });
    expect(b1.status).toBe(201);
    const foreign = await t.post(`${A}/jobs`, t.tokens.worker, { type: 'scan', run_id: theirs });
    const fresh = await t.post(`${A}/jobs`, t.tokens.worker, { type: 'scan', run_id: randomUUID() });
    const [fs, ns] = [await shape(foreign), await shape(fresh)];
    expect(fs).toEqual(ns);
    expect(fs.status).toBe(201);
    // Both tenants have a run of that id; neither sees the other's jobs in it.
    const { rows } = await db.pool.query('SELECT tenant FROM okit.runs WHERE id = $1 ORDER BY tenant', [theirs]);
    expect(rows.map((r) => r.tenant)).toEqual(['acme', 'other']);
    const { rows: jobs } = await db.pool.query('SELECT tenant, count(*)::int AS n FROM okit.jobs WHERE run_id = $1 GROUP BY tenant ORDER BY tenant', [theirs]);
    expect(jobs).toEqual([{ tenant: 'acme', n: 1 }, { tenant: 'other', n: 1 }]);
  });

  it('run ids cannot be squatted: a tenant may pick an id another tenant picked first', async () => {
    const id = randomUUID();
    expect((await t.post(`${A}/jobs`, t.tokens.worker, { type: 'scan', run_id: id })).status).toBe(201); // acme first
    const later = await t.post(`${A}/jobs`, otherWorker, { type: 'scan', run_id: id });
    expect(later.status).toBe(201);
    expect((await later.json()).job.run_id).toBe(id);
    // And each tenant's later jobs join its own run.
    expect((await t.post(`${A}/jobs`, otherWorker, { type: 'scan', run_id: id })).status).toBe(201);
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM okit.runs WHERE id = $1', [id]);
    expect(rows[0].n).toBe(2);
  });
});

/** POST /jobs with an array body (batch enqueue) and POST /workers/claim with a limit, through the typed client too. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OkitClient } from '../../src/worker/client.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const A = '/api/v1/orchestrator';

describe('HTTP batch enqueue and batch claim', () => {
  let db: TestDb;
  let t: TestServer;
  let client: OkitClient;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { maxBodyBytes: 4096 });
    client = new OkitClient({ url: t.base, token: t.tokens.worker });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('an array of up to 1,000 jobs: each job and whether it was created, 201 if any was', async () => {
    const body = Array.from({ length: 1000 }, (_, i) => ({ type: 'h', payload: { i, pad: 'x'.repeat(20) }, ...(i === 0 ? { idempotency_key: 'k0' } : {}) }));
    // Over maxBodyBytes for one object, within the array limit.
    const r = await t.post(`${A}/jobs`, t.tokens.worker, body);
    expect(r.status).toBe(201);
    const { jobs } = await r.json();
    expect(jobs.length).toBe(1000);
    expect(jobs.every((x: { created: boolean }) => x.created)).toBe(true);
    expect(jobs.map((x: { job: { payload: { i: number } } }) => x.job.payload.i)).toEqual(body.map((b) => b.payload.i));
    const again = await t.post(`${A}/jobs`, t.tokens.worker, [body[0]]);
    expect(again.status).toBe(200);
    expect((await again.json()).jobs).toEqual([{ job: jobs[0].job, created: false }]);
    const tooMany = await t.post(`${A}/jobs`, t.tokens.worker, [...body, body[1]]);
    expect(tooMany.status).toBe(400);
    expect((await tooMany.json()).error).toMatchObject({ code: 'INVALID_INPUT', details: { field: 'jobs' } });
    const bad = await t.post(`${A}/jobs`, t.tokens.worker, [{ type: 'h' }, { type: 'h', priority: 'high' }]);
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.details.field).toBe('jobs[1].priority');
    // A single object still has its own limit.
    expect((await t.post(`${A}/jobs`, t.tokens.worker, { type: 'h', payload: { s: 'x'.repeat(5000) } })).status).toBe(413);
  });

  it('claim with limit: up to N jobs in one call, each with its lease token; the typed client does both', async () => {
    const made = await client.enqueueMany(Array.from({ length: 5 }, (_, i) => ({ type: 'c', payload: { i } })));
    expect(made.map((m) => m.created)).toEqual([true, true, true, true, true]);
    const r = await t.post(`${A}/workers/claim`, t.tokens.worker, { worker_id: 'w1', types: ['c'], limit: 3 });
    expect(r.status).toBe(200);
    const { jobs } = await r.json();
    expect(jobs.map((j: { job: { id: string } }) => j.job.id)).toEqual(made.slice(0, 3).map((m) => m.job.id));
    for (const j of jobs) expect(j).toMatchObject({ attempt: 1, lease_token: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/) });
    const rest = await client.claimMany({ workerId: 'w2', types: ['c'], limit: 10 });
    expect(rest.map((c) => c.job.id)).toEqual(made.slice(3).map((m) => m.job.id));
    expect(await client.claimMany({ workerId: 'w2', types: ['c'], limit: 10 })).toEqual([]);
    // Each lease works with its own token.
    await client.complete(rest[0]!.job.id, { workerId: 'w2', leaseToken: rest[0]!.leaseToken });
    await expect(client.complete(rest[1]!.job.id, { workerId: 'w2', leaseToken: rest[0]!.leaseToken })).rejects.toMatchObject({ code: 'LEASE_NOT_HELD' });
  });
});

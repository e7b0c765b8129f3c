/** GET /console/dashboard: the console overview's figures, exact, and only the caller's tenant's. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const API = '/api/v1/orchestrator';
let db: TestDb;
let t: TestServer;

beforeAll(async () => {
  db = await freshDb();
  t = await startTestServer(db.url, db.pool, { telemetry: true });
});
afterAll(async () => {
  await t?.srv.close();
  await db?.drop();
});

it('queue depth by type and state, paused types, throttles, dead letters and TTFS p50/p95 per surface against the SLO', async () => {
  const L = t.ledger;
  const a = [await L.enqueue('acme', { type: 'build', payload: {} }), await L.enqueue('acme', { type: 'build', payload: {} })].map((x) => x.job.id);
  const dead = (await L.enqueue('acme', { type: 'scan', payload: {}, maxAttempts: 1 })).job.id;
  const c = (await L.claim('acme', { workerId: 'w', types: ['scan'] }))!;
  await L.fail('acme', dead, { workerId: 'w', leaseToken: c.leaseToken }, { code: 'E_X', message: 'x' });
  await L.pause('acme', 'nightly', { actor: 'token:t', reason: 'window' });
  await L.configureThrottle('acme', 'api.example', { capacity: 5, refillPerSec: 1 });
  // The other tenant's figures must not show.
  await L.enqueue('other', { type: 'secret-type', payload: {} });
  await L.configureThrottle('other', 'secret.example', { capacity: 5, refillPerSec: 1 });
  const events = [100, 200, 300, 4000].map((ms) => ({ surface: 'ui', event_type: 'signal.rendered', ttfs_ms: ms, job_id: a[0] }));
  expect((await t.post(`${API}/telemetry/ttfs`, t.tokens.read, { events })).status).toBe(202);

  let d: any;
  await expect
    .poll(
      async () => {
        d = await (await t.get(`${API}/console/dashboard`, t.tokens.read)).json();
        return d.ttfs.find((s: any) => s.surface === 'ui').events;
      },
      { timeout: 15_000 },
    )
    .toBe(4);
  expect(d.queues).toEqual([
    { type: 'build', states: { queued: 2 } },
    { type: 'scan', states: { dead_letter: 1 } },
  ]);
  expect(d.dead_letters).toEqual([{ type: 'scan', count: 1 }]);
  expect(d.paused.map((p: any) => p.type)).toEqual(['nightly']);
  expect(d.throttles.map((h: any) => h.host)).toEqual(['api.example']);
  const ui = d.ttfs.find((s: any) => s.surface === 'ui');
  // percentile_cont over 100, 200, 300, 4000: p50 = 250, p95 = 300 + 0.85 × 3700 = 3445.
  expect(ui).toMatchObject({ p50_ms: 250, p95_ms: 3445, p50_target_ms: 2000, p95_target_ms: 5000 });
  expect(ui.hourly_p95).toHaveLength(1);
  expect(ui.hourly_p95[0].hour).toMatch(/^\d{4}-\d\d-\d\dT\d\d:00:00Z$/);
  expect(d.ttfs.map((s: any) => s.surface)).toEqual(['ci', 'cli', 'ui']);
  expect(JSON.stringify(d)).not.toMatch(/secret/);
  // Unknown parameters are refused, not ignored.
  const bad = await t.get(`${API}/console/dashboard?tenant=other`, t.tokens.read);
  expect(bad.status).toBe(400);
});

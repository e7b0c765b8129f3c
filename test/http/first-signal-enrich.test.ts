// Issue 14 items 3-5 over HTTP: the first signal of a known failure carries likely_cause, the
// MTTR and the confidence; next_actions carry href; the server's own sweeper marks a silent job
// stalled at the ledger's (injected) clock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../src/ledger/ledger.js';
import { ManualClock } from '../../src/util/clock.js';
import { SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { FS, startTestServer, type TestServer } from '../helpers/serve.js';

const TEN = 'acme';
const RUN = '00000000-0000-4000-8000-0000000000a7';

describe('first signal: signatures, stalls and links over HTTP', () => {
  let db: TestDb;
  let t: TestServer;
  let ledger: Ledger;
  let clock: ManualClock;
  beforeAll(async () => {
    db = await freshDb();
    // At the real present (the sweeper also expires leases), moved by hand; stall_after 30 s for `scan`.
    clock = new ManualClock(BigInt(Date.now()) * 1000n);
    ledger = new Ledger(db.pool, { clock, defaultLeaseSeconds: 3600, stallAfter: { byType: { scan: 30 } } });
    t = await startTestServer(db.url, db.pool, { ledger, sweepMs: 100 }, TEN);
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  const signal = async (id: string) => {
    // Long-poll past the ≤ 1 s cache: the body once the NOTIFY of the last change landed.
    const r = await t.get(`${FS(id)}?wait=2`, t.tokens.read);
    expect(r.status).toBe(200);
    return { source: r.headers.get('x-signal-source'), body: await r.json() };
  };

  it('a known failure: likely_cause, MTTR and confidence; next_actions with href to the job and the previous run', async () => {
    await ledger.addSignature(TEN, {
      pattern: { type: 'build', error_code: 'E_DISK' },
      outcome: { likely_cause: 'the build disk is full', suggested_action: 'Prune the build cache' },
      confidence: 0.8,
    });
    const failBuild = async () => {
      await ledger.enqueue(TEN, { type: 'build', maxAttempts: 1 });
      const c = (await ledger.claim(TEN, { workerId: 'w1', types: ['build'] }))!;
      await ledger.fail(TEN, c.job.id, 'w1', { code: 'E_DISK', message: 'no space left on device' });
      return c.job.id;
    };
    const first = await failBuild();
    clock.advance(90n * SECOND);
    await ledger.enqueue(TEN, { type: 'build' });
    const ok = (await ledger.claim(TEN, { workerId: 'w1', types: ['build'] }))!;
    await ledger.complete(TEN, ok.job.id, 'w1');
    clock.advance(SECOND);
    const second = await failBuild();
    const { source, body } = await signal(second);
    expect(source).toBe('failure_index');
    expect(body.last_known_outcome).toMatchObject({ likely_cause: 'the build disk is full', mttr_p50_seconds: 90, confidence: 0.33, sample_count: 2 });
    expect(body.diagnostics.failure_signature).toMatchObject({ likely_cause: 'the build disk is full', mttr_p50_seconds: 90, confidence: 0.33 });
    expect(body.next_actions).toEqual([
      { label: 'Prune the build cache' },
      { label: 'Inspect the job history', command: `okit job history ${second}`, href: `/jobs/${second}` },
      { label: 'View previous run', command: `okit job get ${ok.job.id}`, href: `/jobs/${ok.job.id}` },
    ]);
    expect(first).not.toBe(second);
  });

  it("the server's sweeper marks a silent running job stalled; progress clears it", async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'scan', runId: RUN });
    await ledger.claim(TEN, { workerId: 'w7', types: ['scan'] });
    await ledger.progress(TEN, job.id, 'w7', { phase: 'analyze', itemsDone: 47, itemsTotal: 100 });
    clock.advance(75n * SECOND);
    let stalled = false;
    for (let i = 0; i < 50 && !stalled; i++) {
      await new Promise((r) => setTimeout(r, 100));
      stalled = (await ledger.history(TEN, job.id)).at(-1)!.event === 'stalled';
    }
    expect(stalled).toBe(true);
    let { body } = await signal(job.id);
    expect(body.kind).toBe('phase');
    expect(body.summary).toBe('No progress for 1m 15s (last: analyze 47%)');
    expect(body.diagnostics.is_stalled).toBe(true);
    expect(body.next_actions).toContainEqual({ label: 'View the run', href: `/runs/${RUN}` });
    // A few more sweeps: still one mark.
    await new Promise((r) => setTimeout(r, 400));
    expect((await ledger.history(TEN, job.id)).filter((h) => h.event === 'stalled')).toHaveLength(1);
    await ledger.progress(TEN, job.id, 'w7', { phase: 'analyze', itemsDone: 60, itemsTotal: 100 });
    // The served signal follows the table once the NOTIFY hint reaches the server's cache.
    for (let i = 0; i < 50; i++) {
      ({ body } = await signal(job.id));
      if (!body.summary.startsWith('No progress')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(body.diagnostics.is_stalled).toBeUndefined();
    expect(body.summary).toMatch(/^Working on analyze \(60%\)/);
  });
});

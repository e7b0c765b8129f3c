import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectRefused, ledgerAt } from '../helpers/ledger.js';

describe('tenant isolation in the ledger', () => {
  let db: TestDb;
  let ledger: Ledger;
  let running: string;
  let queued: string;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger } = ledgerAt(db.pool));
    running = (await ledger.enqueue('alpha', { type: 'scan' })).job.id;
    queued = (await ledger.enqueue('alpha', { type: 'other' })).job.id;
    await ledger.claim('alpha', { workerId: 'w1', types: ['scan'] });
  });
  afterAll(async () => {
    await db.drop();
  });

  it("another tenant's job id is JOB_NOT_FOUND for every operation, and nothing is written anywhere", async () => {
    for (const id of [running, queued]) {
      const ops: Array<() => Promise<unknown>> = [
        () => ledger.getJob('beta', id),
        () => ledger.getSnapshot('beta', id),
        () => ledger.history('beta', id),
        () => ledger.heartbeat('beta', id, 'w1'),
        () => ledger.progress('beta', id, 'w1', { phase: 'fetch' }),
        () => ledger.complete('beta', id, 'w1'),
        () => ledger.fail('beta', id, 'w1', { code: 'X', message: 'x' }),
        () => ledger.cancel('beta', id, { actor: 'ops' }),
      ];
      for (const op of ops) {
        await expectRefused(db.pool, 'alpha', op, 'JOB_NOT_FOUND');
        await expectRefused(db.pool, 'beta', op, 'JOB_NOT_FOUND');
      }
    }
    // The same error as for an id that does not exist at all.
    await expectRefused(db.pool, 'beta', () => ledger.getJob('beta', '00000000-0000-4000-8000-000000000000'), 'JOB_NOT_FOUND');
    expect((await ledger.getJob('alpha', running)).state).toBe('running');
  });

  it("another tenant's workers never claim, expire or throttle alpha's jobs", async () => {
    expect(await ledger.claim('beta', { workerId: 'w9', types: ['other', 'scan'] })).toBeNull();
    expect((await ledger.getJob('alpha', queued)).state).toBe('queued');
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM okit.job_history WHERE tenant = 'beta'");
    expect(rows[0].n).toBe(0);
  });

  it("another tenant's source cannot be used", async () => {
    const src = await ledger.createSource('alpha', { name: 'reg', host: 'reg.example' });
    await expectRefused(db.pool, 'beta', () => ledger.enqueue('beta', { type: 'scan', sourceId: src.id }), 'SOURCE_NOT_FOUND');
    await expectRefused(db.pool, 'beta', () => ledger.getSource('beta', src.id), 'SOURCE_NOT_FOUND');
  });

  it('ledger positions are per tenant', async () => {
    await ledger.enqueue('gamma', { type: 'scan' });
    const { rows } = await db.pool.query("SELECT pos::text FROM okit.job_history WHERE tenant = 'gamma'");
    expect(rows).toEqual([{ pos: '1' }]);
  });
});

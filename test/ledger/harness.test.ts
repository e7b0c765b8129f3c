import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../src/ledger/ledger.js';
import { ManualClock } from '../../src/util/clock.js';
import { freshDb, type TestDb } from '../helpers/db.js';

describe('test harness', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
  });
  afterAll(async () => {
    await db.drop();
  });
  it('gives each file a fresh, migrated database on a real Postgres', async () => {
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM okit.jobs");
    expect(rows[0].n).toBe(0);
    const { rows: v } = await db.pool.query('SHOW server_version_num');
    expect(Number(v[0].server_version_num)).toBeGreaterThanOrEqual(140000);
    const ledger = new Ledger(db.pool, { clock: new ManualClock('2025-12-04T12:00:00.123456Z') });
    const { job } = await ledger.enqueue('t1', { type: 'scan', payload: { a: 1 } });
    expect(job.created_at).toBe('2025-12-04T12:00:00.123456Z');
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDb, type TestDb } from '../helpers/db.js';
import { ledgerAt } from '../helpers/ledger.js';

describe('history is append-only in the database', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
    const { ledger } = ledgerAt(db.pool);
    await ledger.enqueue('ao', { type: 'scan' });
    await ledger.configureThrottle('ao', 'h.example', { capacity: 1, refillPerSec: 1 });
  });
  afterAll(async () => {
    await db.drop();
  });

  it('UPDATE, DELETE and TRUNCATE on okit.job_history raise, even for a superuser', async () => {
    const c = await db.admin();
    try {
      await expect(c.query(`UPDATE okit.job_history SET data = '{"x":1}'`)).rejects.toThrow(/append-only/);
      await expect(c.query('DELETE FROM okit.job_history')).rejects.toThrow(/append-only/);
      await expect(c.query('TRUNCATE okit.job_history CASCADE')).rejects.toThrow(/append-only/);
      await expect(db.pool.query('UPDATE okit.job_history SET hash = hash')).rejects.toThrow(/UPDATE on okit.job_history is not allowed/);
    } finally {
      await c.end();
    }
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM okit.job_history');
    expect(rows[0].n).toBe(1);
  });

  it('UPDATE and DELETE on okit.throttle_events raise too', async () => {
    await expect(db.pool.query(`UPDATE okit.throttle_events SET data = '{}'`)).rejects.toThrow(/append-only/);
    await expect(db.pool.query('DELETE FROM okit.throttle_events')).rejects.toThrow(/append-only/);
  });
});

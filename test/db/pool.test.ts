import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../../src/db/pool.js';
import { freshDb, type TestDb } from '../helpers/db.js';

describe('withTx when the server drops the connection mid-transaction', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('rejects instead of crashing the process with an unhandled client error, and the pool recovers', async () => {
    const admin = await db.admin();
    try {
      const p = withTx(db.pool, async (c) => {
        const { rows } = await c.query('SELECT pg_backend_pid() AS pid');
        await admin.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
        await new Promise((r) => setTimeout(r, 300)); // the FATAL arrives while no query is active
        await c.query('SELECT 1');
      });
      await expect(p).rejects.toThrow();
      const { rows } = await db.pool.query('SELECT 1 AS one');
      expect(rows[0].one).toBe(1);
    } finally {
      await admin.end();
    }
  });
});

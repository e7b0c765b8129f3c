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

describe('Ledger transactions when the server drops the connection mid-transaction', () => {
  it('neither crash the process nor write twice: the batch writer retries the change once on a new connection', async () => {
    const db = await freshDb();
    const admin = await db.admin();
    try {
      const { Ledger } = await import('../../src/ledger/ledger.js');
      const ledger = new Ledger(db.pool);
      const { job } = await ledger.enqueue('acme', { type: 'x' });
      await ledger.claim('acme', { workerId: 'w', types: ['x'] });
      // Kill every pool backend as soon as the transaction holds its job row lock.
      const blocker = await db.admin();
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM okit.jobs WHERE id = $1 FOR UPDATE', [job.id]);
      const p = ledger.progress('acme', job.id, 'w', { phase: 'fetch' }).then(
        (s) => s.kind as string,
        (e: { code?: string }) => e.code ?? String(e),
      );
      await new Promise((r) => setTimeout(r, 200)); // progress now waits on the row lock
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'okit'");
      await blocker.query('ROLLBACK');
      await blocker.end();
      expect(await p).toBe('phase');
      expect((await ledger.history('acme', job.id)).map((r) => r.event)).toEqual(['enqueued', 'claimed', 'progress']);
      expect((await ledger.progress('acme', job.id, 'w', { phase: 'fetch' })).kind).toBe('phase'); // the pool recovered
    } finally {
      await admin.end();
      await db.drop();
    }
  });
});

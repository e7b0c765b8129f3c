/**
 * Finding 2, the server-side bounds: every connection okit opens carries its timeouts to
 * Postgres. `okit serve`'s pool runs with SERVE_DB_TIMEOUTS (README, Limits and timeouts); a
 * slow statement is cancelled by the server (57014) and the connection survives; a
 * transaction left idle by a stuck caller is ended by the server; sockets have TCP keepalive.
 * (The client-side query and connect bounds, which hold when the server is frozen, are shown
 * by test/http/frozen-db.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, createPool, DB_TIMEOUTS, SERVE_DB_TIMEOUTS } from '../../src/db/pool.js';
import { freshDb, type TestDb } from '../helpers/db.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (s: string) => {
  const m = /^(\d+)(ms|s|min)$/.exec(s)!;
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
};

describe('database timeouts reach Postgres', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb({ migrated: false });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("serve's pool sessions carry SERVE_DB_TIMEOUTS; other connections DB_TIMEOUTS", async () => {
    const pool = createPool(db.url, { max: 1, timeouts: SERVE_DB_TIMEOUTS });
    const client = createClient(db.url);
    await client.connect();
    try {
      const show = async (q: { query: typeof pool.query }) => {
        const r = await q.query<{ s: string; i: string }>('SELECT current_setting($1) AS s, current_setting($2) AS i', ['statement_timeout', 'idle_in_transaction_session_timeout']);
        return { statement: r.rows[0]!.s, idleInTx: r.rows[0]!.i };
      };
      const served = await show(pool);
      expect(ms(served.statement)).toBe(SERVE_DB_TIMEOUTS.statementTimeoutMs);
      expect(ms(served.idleInTx)).toBe(SERVE_DB_TIMEOUTS.idleInTransactionTimeoutMs);
      const other = await show(client);
      expect(other.statement).toBe('0'); // a CLI export may run long; its connect is still bounded
      expect(ms(other.idleInTx)).toBe(DB_TIMEOUTS.idleInTransactionTimeoutMs);
    } finally {
      await client.end();
      await pool.end();
    }
  });

  it('a statement past statement_timeout is cancelled by the server (57014), and the connection survives', async () => {
    const pool = createPool(db.url, { max: 1, timeouts: { statementTimeoutMs: 300, queryTimeoutMs: 5000 } });
    try {
      const t0 = performance.now();
      await expect(pool.query('SELECT pg_sleep(5)')).rejects.toMatchObject({ code: '57014' });
      expect(performance.now() - t0).toBeLessThan(4000);
      expect((await pool.query<{ n: number }>('SELECT 1 AS n')).rows[0]!.n).toBe(1);
      expect(pool.totalCount).toBe(1); // the same connection
    } finally {
      await pool.end();
    }
  });

  it('a transaction left idle is ended by the server (idle_in_transaction_session_timeout)', async () => {
    const pool = createPool(db.url, { max: 1, timeouts: { idleInTransactionTimeoutMs: 300 } });
    const c = await pool.connect();
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    try {
      await c.query('BEGIN');
      const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await sleep(1500);
      await expect(c.query('SELECT 1')).rejects.toThrow();
      // The backend is gone (checked from another connection).
      c.release(true);
      const check = createPool(db.url, { max: 1 });
      try {
        expect((await check.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount).toBe(0);
      } finally {
        await check.end();
      }
    } finally {
      await pool.end().catch(() => undefined);
    }
  });

  it('connections have TCP keepalive on (the kernel notices a peer gone from the network)', async () => {
    const client = createClient(db.url);
    await client.connect();
    try {
      const port = (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
      const { execFileSync } = await import('node:child_process');
      const out = execFileSync('ss', ['-tno', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
      expect(out).toMatch(/timer:\(keepalive,/);
    } finally {
      await client.end();
    }
  });
});

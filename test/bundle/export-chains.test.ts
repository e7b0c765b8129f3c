/**
 * Export's chain check (export.ts `Chains`): every exported job's rows are checked in position
 * order as they stream by, and the job rows' heads against them, in memory for a whole window
 * and in SQL for a window cut by --to. Each defect is refused as LEDGER_BROKEN naming the job
 * and what is wrong, whatever the FETCH batch size.
 */
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle } from '../../src/bundle/export.js';
import { isOkitError } from '../../src/errors.js';
import { rowHash } from '../../src/ledger/chain.js';
import { HISTORY_COLUMNS, toHistory } from '../../src/ledger/rows.js';
import { simulate } from '../../src/ledger/simulate.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { testKey, tmp } from './fixtures.js';

describe('export chain check', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
    for (const [i, t] of ['clean', 'link', 'order', 'head'].entries()) await simulate(db.pool, { seed: 60 + i, jobs: 6, tenant: t });
  });
  afterAll(async () => db.drop());

  /** A job of the tenant with at least `n` history rows. */
  const jobWith = async (tenant: string, n: number) =>
    String((await db.pool.query(`SELECT job_id::text FROM okit.job_history WHERE tenant = $1 AND n = $2 ORDER BY job_id LIMIT 1`, [tenant, n])).rows[0].job_id);
  const posOf = async (job: string, n: number) =>
    String((await db.pool.query(`SELECT pos::text FROM okit.job_history WHERE job_id = $1 AND n = $2`, [job, n])).rows[0].pos);
  const tamper = async (sql: string, params: unknown[]) => {
    const a = await db.admin();
    try {
      await a.query('ALTER TABLE okit.job_history DISABLE TRIGGER job_history_append_only');
      await a.query(sql, params);
      await a.query('ALTER TABLE okit.job_history ENABLE TRIGGER job_history_append_only');
    } finally {
      await a.end();
    }
  };
  const refusal = async (tenant: string, extra: { to?: string; batch?: number } = {}) => {
    const out = tmp();
    const err = await exportBundle(db.pool, { tenant, key: testKey, outDir: out, ...extra }).catch((e: unknown) => e);
    expect(isOkitError(err) && err.code, String(err)).toBe('LEDGER_BROKEN');
    expect(readdirSync(out)).toEqual([]);
    return (err as Error).message;
  };

  it('a clean ledger exports, in small FETCH batches too', async () => {
    for (const batch of [undefined, 1, 3]) expect((await exportBundle(db.pool, { tenant: 'clean', key: testKey, outDir: tmp(), batch })).bytes).toBeGreaterThan(0);
  });

  it('a row whose hash is right but whose prev_hash names no predecessor is a broken link, not a hash mismatch', async () => {
    const job = await jobWith('link', 3);
    const { rows } = await db.pool.query(`SELECT ${HISTORY_COLUMNS} FROM okit.job_history WHERE job_id = $1 AND n = 2`, [job]);
    const row = { ...toHistory(rows[0]), prev_hash: 'f'.repeat(64) };
    await tamper('UPDATE okit.job_history SET prev_hash = $2, hash = $3 WHERE job_id = $1 AND n = 2', [job, row.prev_hash, rowHash(row)]);
    for (const batch of [undefined, 2]) {
      const m = await refusal('link', { batch });
      expect(m).toContain(`job ${job}: row n=2 (pos ${row.pos}) does not link to row n=1`);
      expect(m).not.toContain(`row n=2 (pos ${row.pos}) does not match its hash`);
    }
  });

  it('a row out of its chain order is named, with the row it should have followed', async () => {
    const job = await jobWith('order', 3);
    const pos = await posOf(job, 3);
    await tamper('UPDATE okit.job_history SET n = 103 WHERE job_id = $1 AND n = 3', [job]);
    const m = await refusal('order');
    expect(m).toContain(`job ${job}: row n=103 (pos ${pos}) does not follow row n=2`);
  });

  it('a job row whose head disagrees with its history is refused, in a whole window and in one cut by --to', async () => {
    const job = await jobWith('head', 3);
    await db.pool.query(`UPDATE okit.jobs SET last_hash = $2 WHERE id = $1`, [job, 'e'.repeat(64)]);
    expect(await refusal('head')).toContain(`job ${job}: the job row records`);
    // Cut before the job's third row (--to is exclusive): its head lies beyond the window, so
    // the head is checked in SQL.
    const { rows } = await db.pool.query(
      `SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at FROM okit.job_history WHERE job_id = $1 AND n = 3`,
      [job],
    );
    const m = await refusal('head', { to: rows[0].at });
    expect(m).toContain(`job ${job}: the job row records`);
  });
});

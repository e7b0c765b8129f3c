import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkChain, rowHash } from '../../src/ledger/chain.js';
import { checkLedger } from '../../src/ledger/check.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { canonicalize } from '../../src/util/canonical.js';
import { sha256Hex } from '../../src/util/hash.js';
import { okit } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { ledgerAt } from '../helpers/ledger.js';

const TEN = 'chk';
const W = 'w1';

/** A job with four history rows: enqueued, claimed, progress, succeeded. */
async function finishedJob(ledger: Ledger, type = 'scan'): Promise<string> {
  const { job } = await ledger.enqueue(TEN, { type });
  await ledger.claim(TEN, { workerId: W, types: [type] });
  await ledger.progress(TEN, job.id, W, { phase: 'analyze', itemsDone: 1, itemsTotal: 2 });
  await ledger.complete(TEN, job.id, W);
  return job.id;
}

/** Runs SQL with triggers disabled, as a superuser would to tamper with the ledger. */
async function tamper(db: TestDb, sql: string, params: unknown[]): Promise<void> {
  const c = await db.admin();
  try {
    await c.query('SET session_replication_role = replica');
    const r = await c.query(sql, params);
    expect(r.rowCount).toBe(1);
  } finally {
    await c.end();
  }
}

describe('hash chain', () => {
  let db: TestDb;
  let ledger: Ledger;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger } = ledgerAt(db.pool));
  });
  afterAll(async () => {
    await db.drop();
  });

  it('each row hashes the canonical JSON of its content and links to the previous row', async () => {
    const id = await finishedJob(ledger);
    const rows = await ledger.history(TEN, id);
    expect(rows[0]!.prev_hash).toBeNull();
    for (let i = 0; i < rows.length; i++) {
      const { hash, ...content } = rows[i]!;
      expect(hash).toBe(sha256Hex(canonicalize(content)));
      expect(rowHash(content)).toBe(hash);
      if (i > 0) expect(rows[i]!.prev_hash).toBe(rows[i - 1]!.hash);
    }
    expect(checkChain(rows)).toEqual([]);
    const job = await ledger.getJob(TEN, id);
    expect([job.history_n, job.last_hash]).toEqual([4, rows[3]!.hash]);
    // Every field is covered: changing any one breaks the hash.
    for (const k of ['tenant', 'pos', 'job_id', 'n', 'at', 'event', 'from_state', 'to_state', 'data', 'prev_hash'] as const) {
      const bent = { ...rows[1]!, [k]: k === 'data' ? { x: 1 } : k === 'n' ? 9 : k === 'from_state' ? 'throttled' : k === 'prev_hash' ? 'f'.repeat(64) : k === 'pos' ? '999' : k === 'at' ? '2030-01-01T00:00:00.000000Z' : 'zz' };
      expect(checkChain([rows[0]!, bent as (typeof rows)[number], ...rows.slice(2)]).length, k).toBeGreaterThan(0);
    }
  });
});

describe('okit ledger check', () => {
  let db: TestDb;
  let ledger: Ledger;
  let edited: string;
  let truncated: string;
  let intact: string;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger } = ledgerAt(db.pool));
    intact = await finishedJob(ledger);
    edited = await finishedJob(ledger);
    truncated = await finishedJob(ledger);
    await ledger.configureThrottle(TEN, 'h.example', { capacity: 1, refillPerSec: 1 });
  });
  afterAll(async () => {
    await db.drop();
  });

  it('exits 0 on an intact ledger', async () => {
    const r = await okit(['ledger', 'check'], { DATABASE_URL: db.url });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ledger intact: 3 jobs, 12 history rows/);
  });

  it('names the job and row of a history row changed by SQL with triggers disabled, and exits 1', async () => {
    const { rows } = await db.pool.query('SELECT pos::text FROM okit.job_history WHERE job_id = $1 AND n = 3', [edited]);
    const pos = rows[0].pos as string;
    await tamper(db, `UPDATE okit.job_history SET data = jsonb_set(data, '{items_done}', '2') WHERE job_id = $1 AND n = 3`, [edited]);
    const r = await okit(['ledger', 'check'], { DATABASE_URL: db.url });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`BROKEN CHAIN_HASH_MISMATCH tenant=${TEN} job=${edited} row=3 pos=${pos}`);
    expect(r.stdout).toMatch(/ledger BROKEN: 1 problems in 1 jobs/);
    expect(r.stdout).not.toContain(intact);
    const j = await okit(['ledger', 'check', '--json', '--tenant', TEN], { DATABASE_URL: db.url });
    expect(j.code).toBe(1);
    const report = JSON.parse(j.stdout);
    expect(report).toMatchObject({ ok: false, brokenJobs: [edited] });
    expect(report.problems).toEqual([expect.objectContaining({ code: 'CHAIN_HASH_MISMATCH', job_id: edited, n: 3, pos })]);
  });

  it('catches a deleted last row of a job (chain head and ledger position)', async () => {
    const { rows } = await db.pool.query('SELECT pos::text FROM okit.job_history WHERE job_id = $1 AND n = 4', [truncated]);
    await tamper(db, 'DELETE FROM okit.job_history WHERE job_id = $1 AND n = 4', [truncated]);
    const report = await checkLedger(db.pool, { tenant: TEN });
    expect(report.brokenJobs).toEqual([edited, truncated].sort());
    expect(report.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ code: 'CHAIN_HEAD_MISMATCH', job_id: truncated, n: 3 }),
        expect.objectContaining({ code: 'POSITION_GAP', pos: rows[0].pos }),
      ]),
    );
    const r = await okit(['ledger', 'check'], { DATABASE_URL: db.url });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`BROKEN CHAIN_HEAD_MISMATCH tenant=${TEN} job=${truncated}`);
    expect(r.stdout).toContain(`BROKEN POSITION_GAP tenant=${TEN} pos=${rows[0].pos}`);
  });

  it('names a job whose every history row was deleted', async () => {
    const id = await finishedJob(ledger, 'gone');
    const c = await db.admin();
    try {
      await c.query('SET session_replication_role = replica');
      await c.query('DELETE FROM okit.job_history WHERE job_id = $1', [id]);
    } finally {
      await c.end();
    }
    const report = await checkLedger(db.pool, { tenant: TEN });
    expect(report.brokenJobs).toContain(id);
    expect(report.problems).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'CHAIN_HEAD_MISMATCH', job_id: id })]));
  });

  it('catches a job row whose state was changed behind the ledger', async () => {
    const id = await finishedJob(ledger, 'state');
    await tamper(db, "UPDATE okit.jobs SET state = 'failed' WHERE id = $1", [id]);
    const report = await checkLedger(db.pool, { tenant: TEN, jobIds: [id] });
    expect(report.problems).toEqual([expect.objectContaining({ code: 'CHAIN_HEAD_MISMATCH', job_id: id, n: 4 })]);
  });

  it('catches a row deleted from the middle of a chain, and another tenant stays intact', async () => {
    const other = ledgerAt(db.pool).ledger;
    await other.enqueue('clean', { type: 'scan' });
    const mid = await finishedJob(ledger, 'mid');
    await tamper(db, 'DELETE FROM okit.job_history WHERE job_id = $1 AND n = 2', [mid]);
    const report = await checkLedger(db.pool, { tenant: TEN });
    expect(report.problems.filter((p) => p.job_id === mid).map((p) => p.code)).toEqual(expect.arrayContaining(['CHAIN_GAP', 'CHAIN_LINK_BROKEN']));
    const clean = await okit(['ledger', 'check', '--tenant', 'clean'], { DATABASE_URL: db.url });
    expect(clean.code).toBe(0);
    const bad = await okit(['ledger', 'check', '--tenant', 'NOT A TENANT'], { DATABASE_URL: db.url });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('INVALID_INPUT');
  });
});

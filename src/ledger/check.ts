/**
 * Whole-ledger integrity check: every job's hash chain, each chain's head against the job
 * row (catches a deleted last row), and each tenant's positions against its ledger head
 * (catches any deleted or inserted row). Reads in keyset-paginated batches: memory stays flat.
 */
import type { Pool } from '../db/pool.js';
import { checkChain, type ChainProblem } from './chain.js';
import { HISTORY_COLUMNS, toHistory } from './rows.js';
import type { HistoryRow } from './types.js';

export interface LedgerProblem {
  code: ChainProblem['code'] | 'CHAIN_HEAD_MISMATCH' | 'POSITION_GAP' | 'POSITION_EXTRA';
  tenant: string;
  job_id: string | null;
  n: number | null;
  pos: string | null;
  message: string;
}

export interface LedgerReport {
  jobs: number;
  rows: number;
  problems: LedgerProblem[];
  brokenJobs: string[];
}

const BATCH = 5000;

/** Where the job row says a job's history ends. */
export interface JobHead {
  history_n: number;
  last_hash: string;
  state: string;
}

const H_COLUMNS = HISTORY_COLUMNS.split(', ')
  .map((c) => 'h.' + c)
  .join(', ');

/** Yields each job's history rows (sorted by n) with its job row's head, batch by batch. */
export async function* jobHistories(pool: Pool, tenant?: string): AsyncGenerator<{ rows: HistoryRow[]; head: JobHead | null }> {
  let after: [string, number] = ['00000000-0000-0000-0000-000000000000', 0];
  let current: HistoryRow[] = [];
  let head: JobHead | null = null;
  for (;;) {
    const params: unknown[] = [after[0], after[1], BATCH];
    if (tenant) params.push(tenant);
    // The job row comes along (LEFT JOIN: a missing job row must not hide its history).
    const { rows } = await pool.query(
      `SELECT ${H_COLUMNS}, j.history_n AS head_n, j.last_hash AS head_hash, j.state AS head_state
       FROM okit.job_history h LEFT JOIN okit.jobs j ON j.id = h.job_id
       WHERE (h.job_id, h.n) > ($1::uuid, $2::int) ${tenant ? 'AND h.tenant = $4' : ''}
       ORDER BY h.job_id, h.n LIMIT $3`,
      params,
    );
    for (const raw of rows) {
      const r = toHistory(raw);
      if (current.length && current[0]!.job_id !== r.job_id) {
        yield { rows: current, head };
        current = [];
      }
      if (!current.length) head = raw.head_n === null ? null : { history_n: Number(raw.head_n), last_hash: String(raw.head_hash), state: String(raw.head_state) };
      current.push(r);
    }
    if (rows.length < BATCH) break;
    const last = rows[rows.length - 1];
    after = [String(last.job_id), Number(last.n)];
  }
  if (current.length) yield { rows: current, head };
}

export async function checkLedger(pool: Pool, opts: { tenant?: string; jobIds?: Iterable<string> } = {}): Promise<LedgerReport> {
  const problems: LedgerProblem[] = [];
  let jobs = 0;
  let rows = 0;
  const only = opts.jobIds ? new Set(opts.jobIds) : null;
  for await (const { rows: hist, head } of jobHistories(pool, opts.tenant)) {
    const first = hist[0]!;
    if (only && !only.has(first.job_id)) continue;
    jobs++;
    rows += hist.length;
    for (const p of checkChain(hist)) problems.push({ ...p, tenant: first.tenant });
    const last = hist[hist.length - 1]!;
    // The job row must be where its history ends: same length, same last hash, same state.
    if (head && (head.history_n !== last.n || head.last_hash !== last.hash || head.state !== last.to_state))
      problems.push({
        code: 'CHAIN_HEAD_MISMATCH',
        tenant: first.tenant,
        job_id: first.job_id,
        n: last.n,
        pos: last.pos,
        message: `job ${first.job_id} records ${head.history_n} rows ending in ${head.last_hash.slice(0, 12)}… in state ${head.state}, its history ends at n=${last.n} (${last.hash.slice(0, 12)}…) in state ${last.to_state}`,
      });
  }
  // A job whose every history row is gone has no chain to walk: find it from the job rows.
  const { rows: bare } = await pool.query(
    `SELECT j.id, j.tenant, j.history_n FROM okit.jobs j
     WHERE NOT EXISTS (SELECT 1 FROM okit.job_history h WHERE h.job_id = j.id) ${opts.tenant ? 'AND j.tenant = $1' : ''}
     ORDER BY j.id`,
    opts.tenant ? [opts.tenant] : [],
  );
  for (const j of bare) {
    if (only && !only.has(j.id)) continue;
    jobs++;
    problems.push({
      code: 'CHAIN_HEAD_MISMATCH',
      tenant: j.tenant,
      job_id: j.id,
      n: null,
      pos: null,
      message: `job ${j.id} records ${j.history_n} history rows but has none`,
    });
  }
  if (!only) problems.push(...(await positionGaps(pool, opts.tenant)));
  const brokenJobs = [...new Set(problems.filter((p) => p.job_id).map((p) => p.job_id!))].sort();
  return { jobs, rows, problems, brokenJobs };
}

/** Positions 1..head must each be used exactly once by a history row, a throttle event or a queue event. */
async function positionGaps(pool: Pool, tenant?: string): Promise<LedgerProblem[]> {
  const { rows } = await pool.query(
    `WITH used AS (
       SELECT tenant, pos FROM okit.job_history UNION ALL SELECT tenant, pos FROM okit.throttle_events UNION ALL SELECT tenant, pos FROM okit.queue_events
     ), stats AS (
       SELECT h.tenant, h.pos AS head, count(u.pos) AS used, coalesce(max(u.pos), 0) AS maxpos
       FROM okit.ledger_heads h LEFT JOIN used u ON u.tenant = h.tenant
       ${tenant ? 'WHERE h.tenant = $1' : ''} GROUP BY h.tenant, h.pos
     )
     SELECT tenant, head, used, maxpos FROM stats WHERE used <> head OR maxpos <> head ORDER BY tenant`,
    tenant ? [tenant] : [],
  );
  const out: LedgerProblem[] = [];
  for (const r of rows) {
    const { rows: missing } = await pool.query(
      `SELECT p::text AS pos FROM generate_series(1::bigint, $2::bigint) p
       WHERE NOT EXISTS (SELECT 1 FROM okit.job_history WHERE tenant = $1 AND pos = p)
         AND NOT EXISTS (SELECT 1 FROM okit.throttle_events WHERE tenant = $1 AND pos = p)
         AND NOT EXISTS (SELECT 1 FROM okit.queue_events WHERE tenant = $1 AND pos = p)
       ORDER BY p LIMIT 20`,
      [r.tenant, r.head],
    );
    for (const m of missing)
      out.push({ code: 'POSITION_GAP', tenant: r.tenant, job_id: null, n: null, pos: m.pos, message: `tenant ${r.tenant}: ledger position ${m.pos} is missing` });
    if (BigInt(r.maxpos) > BigInt(r.head))
      out.push({ code: 'POSITION_EXTRA', tenant: r.tenant, job_id: null, n: null, pos: String(r.maxpos), message: `tenant ${r.tenant}: rows beyond the ledger head ${r.head}` });
  }
  return out;
}

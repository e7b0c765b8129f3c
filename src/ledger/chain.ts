import { canonicalize } from '../util/canonical.js';
import { sha256Hex } from '../util/hash.js';
import type { HistoryRow } from './types.js';

/** The hashed content of a history row: every field but the hash itself. */
export function rowHash(row: Omit<HistoryRow, 'hash'>): string {
  return sha256Hex(
    canonicalize({
      tenant: row.tenant,
      pos: row.pos,
      job_id: row.job_id,
      n: row.n,
      at: row.at,
      event: row.event,
      from_state: row.from_state,
      to_state: row.to_state,
      data: row.data,
      prev_hash: row.prev_hash,
    }),
  );
}

export interface ChainProblem {
  job_id: string;
  n: number;
  pos: string;
  code: 'CHAIN_HASH_MISMATCH' | 'CHAIN_LINK_BROKEN' | 'CHAIN_GAP' | 'CHAIN_ORDER';
  message: string;
}

/**
 * Checks one job's rows (sorted by n): numbering from 1 without gaps, each row's prev_hash
 * equal to the previous row's hash, each hash equal to the hash of its content, positions
 * increasing. Returns every problem found (empty when intact).
 */
export function checkChain(rows: readonly HistoryRow[]): ChainProblem[] {
  const problems: ChainProblem[] = [];
  let prev: HistoryRow | undefined;
  rows.forEach((r, i) => {
    const at = { job_id: r.job_id, n: r.n, pos: r.pos };
    if (r.n !== i + 1) problems.push({ ...at, code: 'CHAIN_GAP', message: `row ${i + 1} of job ${r.job_id} is numbered ${r.n}` });
    const expectedPrev = prev ? prev.hash : null;
    if (r.prev_hash !== expectedPrev)
      problems.push({ ...at, code: 'CHAIN_LINK_BROKEN', message: `row n=${r.n} of job ${r.job_id} does not link to the row before it` });
    if (prev && BigInt(r.pos) <= BigInt(prev.pos))
      problems.push({ ...at, code: 'CHAIN_ORDER', message: `row n=${r.n} of job ${r.job_id} has position ${r.pos} not after ${prev.pos}` });
    let actual: string;
    try {
      actual = rowHash(r);
    } catch {
      actual = '';
    }
    if (actual !== r.hash)
      problems.push({ ...at, code: 'CHAIN_HASH_MISMATCH', message: `row n=${r.n} (pos ${r.pos}) of job ${r.job_id}: content does not match its hash` });
    prev = r;
  });
  return problems;
}

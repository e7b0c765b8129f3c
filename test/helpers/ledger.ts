import { expect } from 'vitest';
import { isOkitError } from '../../src/errors.js';
import type { Pool } from '../../src/db/pool.js';
import { Ledger, type LedgerOptions } from '../../src/ledger/ledger.js';
import { ManualClock } from '../../src/util/clock.js';

export const T0 = '2025-12-04T12:00:00.000000Z';

export function ledgerAt(pool: Pool, opts: LedgerOptions = {}): { ledger: Ledger; clock: ManualClock } {
  const clock = new ManualClock(T0);
  return { ledger: new Ledger(pool, { clock, ...opts }), clock };
}

/** What a refused operation must leave untouched: the tenant's history and ledger head. */
export async function ledgerState(pool: Pool, tenant: string): Promise<{ rows: number; head: string; jobs: string }> {
  const { rows } = await pool.query(
    `SELECT (SELECT count(*)::int FROM okit.job_history WHERE tenant = $1) AS rows,
            (SELECT coalesce(max(pos), 0)::text FROM okit.ledger_heads WHERE tenant = $1) AS head,
            (SELECT coalesce(string_agg(id || ':' || state || ':' || history_n || ':' || coalesce(lease_owner, '-') || ':' || not_before::text, ',' ORDER BY id), '') FROM okit.jobs WHERE tenant = $1) AS jobs`,
    [tenant],
  );
  return rows[0];
}

/** Asserts fn rejects with an OkitError of `code`, and returns it. */
export async function expectCode(fn: () => Promise<unknown>, code: string): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    expect(isOkitError(e), String(e)).toBe(true);
    expect((e as { code: string }).code, (e as Error).message).toBe(code);
    return e as Error;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

/** Asserts the operation fails with `code` and writes nothing. */
export async function expectRefused(pool: Pool, tenant: string, fn: () => Promise<unknown>, code: string): Promise<void> {
  const before = await ledgerState(pool, tenant);
  await expectCode(fn, code);
  expect(await ledgerState(pool, tenant)).toEqual(before);
}

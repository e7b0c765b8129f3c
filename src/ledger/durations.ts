/**
 * Per {tenant, type} run durations (migration 012, docs/eta.md): the last DURATION_SAMPLES
 * successes, kept by a trigger in the transaction of the `succeeded` row. This module reads
 * them and reduces them to the ETA input written on history rows.
 */
import type { Pool, PoolClient } from 'pg';

/** N: how many recent successes per {tenant, type} the p50 is over (the migration's CHECK). */
export const DURATION_SAMPLES = 50;

/** p50 by nearest rank (an observed value, no interpolation): deterministic integer microseconds. */
export function p50Micros(durationsUs: readonly bigint[]): bigint | null {
  if (durationsUs.length === 0) return null;
  const sorted = [...durationsUs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted[Math.ceil(sorted.length / 2) - 1]!;
}

export interface TypeDurations {
  /** Oldest first, at most DURATION_SAMPLES. */
  durationsUs: bigint[];
  p50Us: bigint | null;
}

/** One primary-key read; bigint[] comes back as text so no microsecond is rounded. */
export async function typeDurations(db: Pool | PoolClient, tenant: string, type: string): Promise<TypeDurations> {
  const { rows } = await db.query<{ d: string[] }>('SELECT durations_us::text[] AS d FROM okit.type_durations WHERE tenant = $1 AND type = $2', [tenant, type]);
  const durationsUs = (rows[0]?.d ?? []).map((x) => BigInt(x));
  return { durationsUs, p50Us: p50Micros(durationsUs) };
}

/**
 * The ETA inputs a history row carries (`data.eta`, docs/eta.md), from the type's durations.
 * Seconds with microsecond decimals; `workers` only where the row is a queued one.
 */
export function etaInputs(durationsUs: readonly bigint[], workers?: number): { [k: string]: number | null } {
  const p50 = p50Micros(durationsUs);
  return { p50_seconds: p50 === null ? null : Number(p50) / 1e6, samples: durationsUs.length, ...(workers === undefined ? {} : { workers }) };
}

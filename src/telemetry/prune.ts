/**
 * Telemetry retention: deletes okit.ttfs_events rows older than a cut-off, in chunks so that
 * a large prune never holds a long lock or one huge transaction. Only telemetry: the ledger's
 * history, snapshots and throttle events are append-only and never pruned.
 */
import type { Pool } from '../db/pool.js';
import { formatMicros, type Micros } from '../util/time.js';

const CHUNK = 10_000;

export async function pruneTelemetry(pool: Pool, before: Micros): Promise<number> {
  const cutoff = formatMicros(before);
  let total = 0;
  for (;;) {
    const r = await pool.query(
      `DELETE FROM okit.ttfs_events WHERE id IN (SELECT id FROM okit.ttfs_events WHERE ts < $1 ORDER BY ts LIMIT ${CHUNK})`,
      [cutoff],
    );
    total += r.rowCount ?? 0;
    if ((r.rowCount ?? 0) < CHUNK) return total;
  }
}

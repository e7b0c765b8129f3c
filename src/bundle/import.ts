/**
 * `okit replay --into`: loads a verified bundle into an empty database so an auditor can
 * query it with SQL, and so that exporting again with the same arguments and key gives the
 * same bytes. Rows outside the window are absent; what the export needs to know about them
 * (the hash of a continued job's row before the window, and of a job's latest row beyond
 * it) is recorded in okit.bundle_anchors (migration 003).
 *
 * Sources and runs are not part of a bundle: placeholder rows satisfy the foreign keys.
 */
import type pg from 'pg';
import { withTx, type Pool } from '../db/pool.js';
import { OkitError } from '../errors.js';
import { writeSnapshot } from '../ledger/rows.js';
import { canonicalize } from '../util/canonical.js';
import type { Manifest } from './format.js';
import type { BundleData } from './verify.js';
import { historyParams, INSERT_HISTORY } from '../ledger/rows.js';

async function isEmpty(c: pg.PoolClient): Promise<boolean> {
  const { rows } = await c.query(
    `SELECT (SELECT count(*) FROM okit.jobs) + (SELECT count(*) FROM okit.job_history) + (SELECT count(*) FROM okit.ledger_heads)
          + (SELECT count(*) FROM okit.throttle_events) + (SELECT count(*) FROM okit.sources) AS n`,
  );
  return Number(rows[0].n) === 0;
}

export interface ImportResult {
  jobs: number;
  history: number;
  throttles: number;
  snapshots: number;
  anchors: number;
}

export async function importBundle(pool: Pool, manifest: Manifest, manifestSha256: string, d: BundleData): Promise<ImportResult> {
  return withTx(pool, async (c) => {
    if (!(await isEmpty(c))) throw new OkitError('INVALID_INPUT', '--into needs an empty okit database (no jobs, history, sources or ledger heads)');
    const t = manifest.tenant;
    const firstAt = new Map<string, string>();
    for (const j of d.jobs) {
      for (const id of [j.source_id, j.run_id]) if (id && (!firstAt.has(id) || j.created_at < firstAt.get(id)!)) firstAt.set(id, j.created_at);
    }
    for (const id of new Set(d.jobs.map((j) => j.source_id).filter((x): x is string => !!x)))
      await c.query(`INSERT INTO okit.sources (id, tenant, name, host, created_at) VALUES ($1, $2, $3, 'imported.invalid', $4)`, [id, t, `imported-${id}`, firstAt.get(id)]);
    for (const id of new Set(d.jobs.map((j) => j.run_id).filter((x): x is string => !!x)))
      await c.query(`INSERT INTO okit.runs (id, tenant, source_id, created_at) VALUES ($1, $2, NULL, $3)`, [id, t, firstAt.get(id)]);
    for (const j of d.jobs)
      await c.query(
        `INSERT INTO okit.jobs (id, tenant, run_id, source_id, type, payload, payload_sha256, idempotency_key, priority, max_attempts, attempt,
           state, not_before, lease_owner, lease_expires_at, created_at, updated_at, history_n, last_hash)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)`,
        [j.id, j.tenant, j.run_id, j.source_id, j.type, canonicalize(j.payload), j.payload_sha256, j.idempotency_key, j.priority, j.max_attempts,
          j.attempt, j.state, j.not_before, j.lease_owner, j.lease_expires_at, j.created_at, j.updated_at, j.history_n, j.last_hash],
      );
    const seen = new Map<string, number>();
    let anchors = 0;
    const anchor = async (job: string, n: number, hash: string) => {
      await c.query('INSERT INTO okit.bundle_anchors (tenant, job_id, n, hash) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [t, job, n, hash]);
      anchors++;
    };
    for (const r of d.history) {
      if (!seen.has(r.job_id) && r.n > 1 && r.prev_hash) await anchor(r.job_id, r.n - 1, r.prev_hash);
      seen.set(r.job_id, r.n);
      await c.query(INSERT_HISTORY, historyParams(r));
    }
    // Jobs whose latest row lies beyond the window (cut by --to).
    for (const j of d.jobs) if ((seen.get(j.id) ?? 0) < j.history_n) await anchor(j.id, j.history_n, j.last_hash);
    for (const e of d.throttles)
      await c.query('INSERT INTO okit.throttle_events (tenant, pos, host, at, event, data) VALUES ($1,$2,$3,$4,$5,$6)', [
        e.tenant, e.pos, e.host, e.at, e.event, canonicalize(e.data as never),
      ]);
    for (const s of d.snapshots) await writeSnapshot(c, s);
    if (BigInt(manifest.window.to_pos) > 0n)
      await c.query('INSERT INTO okit.ledger_heads (tenant, pos) VALUES ($1, $2)', [t, manifest.window.to_pos]);
    await c.query('INSERT INTO okit.bundle_imports (manifest_sha256, tenant, from_pos, to_pos, manifest) VALUES ($1,$2,$3,$4,$5)', [
      manifestSha256, t, manifest.window.from_pos, manifest.window.to_pos, canonicalize(manifest),
    ]);
    return { jobs: d.jobs.length, history: d.history.length, throttles: d.throttles.length, snapshots: d.snapshots.length, anchors };
  });
}

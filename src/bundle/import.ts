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
import { canonicalize } from '../util/canonical.js';
import type { Manifest } from './format.js';
import type { BundleData } from './verify.js';
import { HISTORY_COLUMNS, JOB_COLUMNS, SNAPSHOT_COLUMNS } from '../ledger/rows.js';
import type { HistoryRow, Job, Snapshot } from '../ledger/types.js';
import { entryValues, type BundleRef } from './replay.js';
import type { QueueEvent, Throttle } from './verify.js';

async function isEmpty(c: pg.PoolClient): Promise<boolean> {
  const { rows } = await c.query(
    `SELECT (SELECT count(*) FROM okit.jobs) + (SELECT count(*) FROM okit.job_history) + (SELECT count(*) FROM okit.ledger_heads)
          + (SELECT count(*) FROM okit.throttle_events) + (SELECT count(*) FROM okit.queue_events) + (SELECT count(*) FROM okit.sources) AS n`,
  );
  return Number(rows[0].n) === 0;
}

export interface ImportResult {
  jobs: number;
  history: number;
  throttles: number;
  queues: number;
  snapshots: number;
  anchors: number;
}

/** Where the rows come from: in memory (tests, small bundles) or streamed from a verified file. */
interface Rows {
  jobs(): AsyncIterable<Job>;
  history(): AsyncIterable<HistoryRow>;
  throttles(): AsyncIterable<Throttle>;
  queues(): AsyncIterable<QueueEvent>;
  snapshots(): AsyncIterable<Snapshot>;
}

async function* each<T>(xs: readonly T[]): AsyncGenerator<T> {
  yield* xs;
}

export function importBundle(pool: Pool, manifest: Manifest, manifestSha256: string, d: BundleData): Promise<ImportResult> {
  return load(pool, manifest, manifestSha256, { jobs: () => each(d.jobs), history: () => each(d.history), throttles: () => each(d.throttles), queues: () => each(d.queues ?? []), snapshots: () => each(d.snapshots) });
}

/** Streams a verified bundle into an empty database (jobs.jsonl is read twice: once for the placeholders). */
export function importVerified(pool: Pool, ref: BundleRef): Promise<ImportResult> {
  const r = ref.report;
  if (!r.ok || !r.manifest || !r.manifestSha256) throw new OkitError('INVALID_INPUT', 'only a verified bundle can be loaded');
  const of = <T>(f: 'jobs.jsonl' | 'history.jsonl' | 'throttles.jsonl' | 'queues.jsonl' | 'snapshots.jsonl') => () =>
    (f === 'queues.jsonl' && r.manifest!.version < 3 ? each([]) : entryValues(ref, f)) as AsyncIterable<T>;
  return load(pool, r.manifest, r.manifestSha256, { jobs: of<Job>('jobs.jsonl'), history: of<HistoryRow>('history.jsonl'), throttles: of<Throttle>('throttles.jsonl'), queues: of<QueueEvent>('queues.jsonl'), snapshots: of<Snapshot>('snapshots.jsonl') });
}

/** Rows per INSERT: each statement carries one array per column (unnest), not one row. */
export const IMPORT_BATCH = 2000;

/**
 * A multi-row INSERT … SELECT FROM unnest($1::type[], …): `types` are the columns' array
 * types, `row` gives a row's values in that order.
 */
class Inserter<T> {
  private readonly rows: T[] = [];
  private readonly sql: string;

  constructor(
    private readonly c: pg.PoolClient,
    table: string,
    columns: string,
    types: readonly string[],
    private readonly row: (r: T) => unknown[],
    suffix = '',
  ) {
    this.sql = `INSERT INTO ${table} (${columns}) SELECT * FROM unnest(${types.map((t, i) => `$${i + 1}::${t}[]`).join(', ')}) ${suffix}`;
  }

  async add(r: T): Promise<void> {
    this.rows.push(r);
    if (this.rows.length >= IMPORT_BATCH) await this.flush();
  }

  async flush(): Promise<void> {
    if (!this.rows.length) return;
    const vals = this.rows.map(this.row);
    const cols = vals[0]!.map((_, k) => vals.map((v) => v[k]));
    this.rows.length = 0;
    await this.c.query(this.sql, cols);
  }
}

const json = (v: unknown) => (v === null ? null : canonicalize(v as never));

async function load(pool: Pool, manifest: Manifest, manifestSha256: string, d: Rows): Promise<ImportResult> {
  const n = { jobs: 0, history: 0, throttles: 0, queues: 0, snapshots: 0 };
  return withTx(pool, async (c) => {
    if (!(await isEmpty(c))) throw new OkitError('INVALID_INPUT', '--into needs an empty okit database (no jobs, history, sources or ledger heads)');
    const t = manifest.tenant;
    const firstAt = new Map<string, string>();
    const sources = new Set<string>();
    const runs = new Set<string>();
    for await (const j of d.jobs()) {
      for (const id of [j.source_id, j.run_id]) if (id && (!firstAt.has(id) || j.created_at < firstAt.get(id)!)) firstAt.set(id, j.created_at);
      if (j.source_id) sources.add(j.source_id);
      if (j.run_id) runs.add(j.run_id);
    }
    const src = new Inserter<string>(c, 'okit.sources', 'id, tenant, name, host, created_at', ['uuid', 'text', 'text', 'text', 'timestamptz'], (id) => [id, t, `imported-${id}`, 'imported.invalid', firstAt.get(id)]);
    for (const id of sources) await src.add(id);
    await src.flush();
    const run = new Inserter<string>(c, 'okit.runs', 'id, tenant, source_id, created_at', ['uuid', 'text', 'uuid', 'timestamptz'], (id) => [id, t, null, firstAt.get(id)]);
    for (const id of runs) await run.add(id);
    await run.flush();
    firstAt.clear();
    const historyN = new Map<string, { want: number; hash: string }>();
    const jobs = new Inserter<Job>(
      c, 'okit.jobs', JOB_COLUMNS,
      ['uuid', 'text', 'uuid', 'uuid', 'text', 'jsonb', 'text', 'text', 'int', 'int', 'int', 'text', 'timestamptz', 'text', 'timestamptz', 'timestamptz', 'timestamptz', 'int', 'text'],
      (j) => [j.id, j.tenant, j.run_id, j.source_id, j.type, canonicalize(j.payload), j.payload_sha256, j.idempotency_key, j.priority, j.max_attempts,
        j.attempt, j.state, j.not_before, j.lease_owner, j.lease_expires_at, j.created_at, j.updated_at, j.history_n, j.last_hash],
    );
    for await (const j of d.jobs()) {
      n.jobs++;
      historyN.set(j.id, { want: j.history_n, hash: j.last_hash });
      await jobs.add(j);
    }
    await jobs.flush();
    const seen = new Map<string, number>();
    const anchors = new Inserter<[string, number, string]>(
      c, 'okit.bundle_anchors', 'tenant, job_id, n, hash', ['text', 'uuid', 'int', 'text'], ([job, k, hash]) => [t, job, k, hash], 'ON CONFLICT DO NOTHING',
    );
    let anchored = 0;
    const anchor = async (job: string, k: number, hash: string) => {
      await anchors.add([job, k, hash]);
      anchored++;
    };
    const history = new Inserter<HistoryRow>(
      c, 'okit.job_history', HISTORY_COLUMNS, ['text', 'bigint', 'uuid', 'int', 'timestamptz', 'text', 'text', 'text', 'jsonb', 'text', 'text'],
      (r) => [r.tenant, r.pos, r.job_id, r.n, r.at, r.event, r.from_state, r.to_state, canonicalize(r.data), r.prev_hash, r.hash],
    );
    for await (const r of d.history()) {
      n.history++;
      if (!seen.has(r.job_id) && r.n > 1 && r.prev_hash) await anchor(r.job_id, r.n - 1, r.prev_hash);
      seen.set(r.job_id, r.n);
      await history.add(r);
    }
    await history.flush();
    // Jobs whose latest row lies beyond the window (cut by --to).
    for (const [id, j] of historyN) if ((seen.get(id) ?? 0) < j.want) await anchor(id, j.want, j.hash);
    await anchors.flush();
    historyN.clear();
    seen.clear();
    const throttles = new Inserter<Throttle>(
      c, 'okit.throttle_events', 'tenant, pos, host, at, event, data', ['text', 'bigint', 'text', 'timestamptz', 'text', 'jsonb'],
      (e) => [e.tenant, e.pos, e.host, e.at, e.event, canonicalize(e.data as never)],
    );
    for await (const e of d.throttles()) {
      n.throttles++;
      await throttles.add(e);
    }
    await throttles.flush();
    // Queue events, and the pause state they leave (the last event of each type).
    const queues = new Inserter<QueueEvent>(
      c, 'okit.queue_events', 'tenant, pos, type, at, event, data', ['text', 'bigint', 'text', 'timestamptz', 'text', 'jsonb'],
      (e) => [e.tenant, e.pos, e.type, e.at, e.event, canonicalize(e.data as never)],
    );
    const paused = new Map<string, { actor: string; reason: string | null; at: string } | null>();
    for await (const e of d.queues()) {
      n.queues++;
      await queues.add(e);
      paused.set(e.type, e.event === 'paused' ? { actor: String(e.data.actor ?? 'unknown'), reason: (e.data.reason ?? null) as string | null, at: e.at } : null);
    }
    await queues.flush();
    for (const [type, p] of paused)
      if (p) await c.query('INSERT INTO okit.queue_pauses (tenant, type, actor, reason, paused_at) VALUES ($1,$2,$3,$4,$5)', [t, type, p.actor, p.reason, p.at]);
    const snapshots = new Inserter<Snapshot>(
      c, 'okit.first_signal_snapshots', SNAPSHOT_COLUMNS,
      ['uuid', 'text', 'uuid', 'text', 'text', 'text', 'bigint', 'jsonb', 'jsonb', 'jsonb', 'text', 'int', 'text', 'timestamptz', 'timestamptz'],
      (s) => [s.job_id, s.tenant, s.run_id, s.kind, s.phase, s.summary, s.eta_seconds, json(s.last_known_outcome), json(s.next_actions), canonicalize(s.diagnostics),
        s.source, s.history_n, s.history_hash, s.created_at, s.updated_at],
    );
    for await (const s of d.snapshots()) {
      n.snapshots++;
      await snapshots.add(s);
    }
    await snapshots.flush();
    if (BigInt(manifest.window.to_pos) > 0n)
      await c.query('INSERT INTO okit.ledger_heads (tenant, pos) VALUES ($1, $2)', [t, manifest.window.to_pos]);
    await c.query('INSERT INTO okit.bundle_imports (manifest_sha256, tenant, from_pos, to_pos, manifest) VALUES ($1,$2,$3,$4,$5)', [
      manifestSha256, t, manifest.window.from_pos, manifest.window.to_pos, canonicalize(manifest),
    ]);
    return { ...n, anchors: anchored };
  });
}

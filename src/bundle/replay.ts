/**
 * Replay: folds each job's history through the live ledger's projection (`project`) and
 * compares the result with snapshots.jsonl and jobs.jsonl. A divergence names the first
 * event at which it arises: the earliest row from which the replayed value of a differing
 * field stays equal to its final value (the row that set the value the bundle disagrees with).
 */
import type { HistoryRow, Job, Snapshot } from '../ledger/types.js';
import { project } from '../signals/projection.js';
import { canonicalize } from '../util/canonical.js';
import type { BundleData } from './verify.js';

export interface Divergence {
  job_id: string;
  /** The first diverging event. */
  n: number;
  pos: string;
  event: string;
  fields: Array<{ field: string; bundle: unknown; replay: unknown }>;
}

export interface ReplayResult {
  jobs: number;
  compared: number;
  identical: number;
  /** Continued jobs whose earlier rows are in no supplied bundle: not replayable. */
  skipped: string[];
  /** Jobs whose latest row lies beyond the window: no snapshot to compare. */
  open: number;
  divergences: Divergence[];
  snapshots: Snapshot[];
}

const SNAPSHOT_FIELDS = ['kind', 'phase', 'summary', 'eta_seconds', 'next_actions', 'run_id', 'source', 'history_n', 'history_hash', 'created_at', 'updated_at', 'tenant'] as const;
/** Compared key by key, so a divergence names the sub-field (and its first event) precisely. */
const OBJECT_FIELDS = ['diagnostics', 'last_known_outcome'] as const;

type Views = Record<string, unknown>;

function snapshotViews(s: Snapshot, v: Views): void {
  for (const f of SNAPSHOT_FIELDS) v[`snapshot.${f}`] = canonicalize(s[f] as never);
  for (const f of OBJECT_FIELDS) {
    const o = s[f];
    if (o === null) v[`snapshot.${f}`] = 'null';
    else for (const [k, x] of Object.entries(o)) v[`snapshot.${f}.${k}`] = canonicalize(x);
  }
}

/** The compared values: the snapshot's fields and the job row's fields the projection determines. */
function views(s: Snapshot, job: Job | undefined): Views {
  const v: Views = {};
  snapshotViews(s, v);
  if (job) {
    v['job.state'] = job.state;
    v['job.type'] = job.type;
    v['job.run_id'] = job.run_id;
    v['job.attempt'] = job.attempt;
    v['job.max_attempts'] = job.max_attempts;
    v['job.history_n'] = job.history_n;
    v['job.last_hash'] = job.last_hash;
  }
  return v;
}

function replayViews(s: Snapshot, job: Job | undefined): Views {
  const v: Views = {};
  snapshotViews(s, v);
  if (job) {
    const d = s.diagnostics;
    v['job.state'] = d.state;
    v['job.type'] = d.job_type;
    v['job.run_id'] = s.run_id;
    v['job.attempt'] = d.attempt;
    v['job.max_attempts'] = d.max_attempts;
    v['job.history_n'] = s.history_n;
    v['job.last_hash'] = s.history_hash;
  }
  return v;
}

export function replay(d: BundleData, earlier: readonly HistoryRow[] = []): ReplayResult {
  const byJob = new Map<string, HistoryRow[]>();
  for (const r of [...earlier, ...d.history]) {
    const a = byJob.get(r.job_id);
    if (a) a.push(r);
    else byJob.set(r.job_id, [r]);
  }
  const jobs = new Map(d.jobs.map((j) => [j.id, j]));
  const res: ReplayResult = { jobs: d.jobs.length, compared: 0, identical: 0, skipped: [], open: 0, divergences: [], snapshots: [] };
  const inBundle = new Set(d.history.map((r) => r.job_id));
  for (const id of [...inBundle].sort()) {
    const rows = byJob.get(id)!;
    if (rows[0]!.n !== 1) {
      res.skipped.push(id);
      continue;
    }
    const replayed = project(rows);
    res.snapshots.push(replayed);
  }
  const snaps = new Map(d.snapshots.map((s) => [s.job_id, s]));
  for (const s of res.snapshots) {
    const live = snaps.get(s.job_id);
    if (!live) {
      res.open++;
      continue;
    }
    res.compared++;
    const job = jobs.get(s.job_id);
    const want = views(live, job);
    const got = replayViews(s, job);
    const fields = [...new Set([...Object.keys(want), ...Object.keys(got)])].sort().filter((k) => want[k] !== got[k]);
    if (fields.length === 0) {
      res.identical++;
      continue;
    }
    res.divergences.push(firstDivergence(byJob.get(s.job_id)!, job, want, fields));
  }
  return res;
}

function firstDivergence(rows: HistoryRow[], job: Job | undefined, want: Views, fields: string[]): Divergence {
  const finals = replayViews(project(rows), job);
  // For each differing field, walk back while the prefix projection still yields the final value.
  let first = rows.length - 1;
  for (const f of fields) {
    let k = rows.length - 1;
    while (k > 0 && replayViews(project(rows.slice(0, k)), job)[f] === finals[f]) k--;
    first = Math.min(first, k);
  }
  const r = rows[first]!;
  return {
    job_id: r.job_id,
    n: r.n,
    pos: r.pos,
    event: r.event,
    fields: fields.map((f) => ({ field: f, bundle: want[f], replay: finals[f] })),
  };
}

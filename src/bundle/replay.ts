/**
 * Replay: folds each job's history through the live ledger's projection (`project`) and
 * compares the result with snapshots.jsonl and jobs.jsonl. A divergence names the first
 * event at which it arises: the earliest row from which the replayed value of a differing
 * field stays equal to its final value (the row that set the value the bundle disagrees with).
 */
import type { HistoryRow, Job, Snapshot } from '../ledger/types.js';
import { project } from '../ledger/projection.js';
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

/** The job-row fields the projection determines, read from a job row… */
function jobFacts(job: Job): Views {
  return { state: job.state, type: job.type, run_id: job.run_id, attempt: job.attempt, max_attempts: job.max_attempts, history_n: job.history_n, last_hash: job.last_hash };
}

/** …and the same facts as a re-projected snapshot states them. */
function projectedFacts(s: Snapshot): Views {
  const d = s.diagnostics;
  return { state: d.state, type: d.job_type, run_id: s.run_id, attempt: d.attempt, max_attempts: d.max_attempts, history_n: s.history_n, last_hash: s.history_hash };
}

/** The compared values: the snapshot's fields, plus the job row's when the bundle has the job. */
function views(s: Snapshot, facts: Views | undefined): Views {
  const v: Views = {};
  snapshotViews(s, v);
  if (facts) for (const [k, x] of Object.entries(facts)) v[`job.${k}`] = x;
  return v;
}

const replayViews = (s: Snapshot, job: Job | undefined): Views => views(s, job && projectedFacts(s));

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
    const want = views(live, job && jobFacts(job));
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

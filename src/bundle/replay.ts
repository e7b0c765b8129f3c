/**
 * Replay: folds each job's history through the live ledger's projection (`project`) and
 * compares the result with snapshots.jsonl and jobs.jsonl. A divergence names the first
 * event at which it arises: the earliest row from which the replayed value of a differing
 * field stays equal to its final value (the row that set the value the bundle disagrees with).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ndjson from 'ndjson';
import { OkitError } from '../errors.js';
import type { HistoryRow, Job, Snapshot } from '../ledger/types.js';
import { finishProjection, project, projectStep, startProjection, type Projection } from '../ledger/projection.js';
import { canonicalize } from '../util/canonical.js';
import type { DataFile } from './format.js';
import { ID_BYTES, JobTable, sameHash, writeId } from './jobtable.js';
import { PIECE_BYTES } from './segments.js';
import type { BundleData, BundleSource, VerifyReport } from './verify.js';

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
  return firstDivergenceOf(rows, job && jobFacts(job), want, fields);
}

function firstDivergenceOf(rows: HistoryRow[], facts: Views | undefined, want: Views, fields: string[]): Divergence {
  const at = (k: number) => {
    const s = project(rows.slice(0, k));
    return views(s, facts && projectedFacts(s));
  };
  const finals = at(rows.length);
  // For each differing field, walk back while the prefix projection still yields the final value.
  let first = rows.length - 1;
  for (const f of fields) {
    let k = rows.length - 1;
    while (k > 0 && at(k)[f] === finals[f]) k--;
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

/* ------------------------------------------------------------------------------------------
 * Streaming replay of a verified bundle (the CLI's): entries are read again from the file by
 * their place, each re-hashed against the verified manifest; history is folded job by job as
 * it streams, keeping only the fold state of jobs whose rows are still arriving. A finished
 * job's replayed snapshot goes to a temporary file (its offset kept), compared when
 * snapshots.jsonl streams by. Memory: per job of jobs.jsonl a few dozen bytes of facts, per
 * open job its fold; never the rows.
 * ---------------------------------------------------------------------------------------- */

export interface BundleRef {
  src: BundleSource;
  report: VerifyReport;
}

export interface StreamReplayResult extends Omit<ReplayResult, 'snapshots'> {
  /** Jobs re-projected (written to `out` when given). */
  replayed: number;
  /** Divergent jobs beyond MAX_DETAILED: counted, their first event not searched. */
  moreDivergences: number;
}

/** Divergent jobs whose first diverging event is searched (each needs its rows again). */
export const MAX_DETAILED = 1000;

/**
 * Parsed lines of one entry, read again by its place, a chunk's worth at a time (ndjson
 * emits a chunk's lines as it is written); its sha256 must still be the manifest's. Chunks of
 * 64 KiB: ndjson decodes each into one string, and V8 makes strings past ~128 KiB slowly.
 */
export async function* entryBatches(ref: BundleRef, name: DataFile): AsyncGenerator<unknown[]> {
  const place = ref.report.places.find((p) => p.name === name);
  const listed = ref.report.manifest?.files.find((f) => f.name === name);
  if (!place || !listed) throw new OkitError('IO_ERROR', `${name}: not located in the verified bundle`);
  const hash = createHash('sha256');
  if (place.size > 0) {
    const input = Buffer.isBuffer(ref.src)
      ? [ref.src.subarray(place.offset, place.offset + place.size)]
      : createReadStream(ref.src, { start: place.offset, end: place.offset + place.size - 1, highWaterMark: PIECE_BYTES });
    const nd = ndjson.parse({ strict: true });
    let batch: unknown[] = [];
    let failure: Error | null = null;
    nd.on('data', (v: unknown) => batch.push(v));
    nd.on('error', (e: Error) => (failure ??= e));
    for await (const c of input) {
      const b = c as Buffer;
      hash.update(b);
      for (let o = 0; o < b.length; o += PIECE_BYTES) nd.write(b.subarray(o, o + PIECE_BYTES));
      if (failure) throw new OkitError('IO_ERROR', `${ref.report.label}: ${name} changed after it was verified`);
      if (batch.length) {
        yield batch;
        batch = [];
      }
    }
    nd.end();
    if (batch.length) yield batch;
    if (failure) throw new OkitError('IO_ERROR', `${ref.report.label}: ${name} changed after it was verified`);
  }
  if (hash.digest('hex') !== listed.sha256) throw new OkitError('IO_ERROR', `${ref.report.label}: ${name} changed after it was verified`);
}

/** entryBatches, one value at a time. */
export async function* entryValues(ref: BundleRef, name: DataFile): AsyncGenerator<unknown> {
  for await (const b of entryBatches(ref, name)) yield* b;
}

// Per-job flags of the replay's JobTable.
const SKIPPED = 1;
const IN_BUNDLE = 2;
const REPLAYED = 4;
const FACTS_OK = 8;
const WITH_SNAPSHOT = 16;

const digestInto = (text: string, out: Uint8Array, i: number) => out.set(createHash('sha256').update(text).digest(), i * 32);
const factsText = (v: Views) => canonicalize(v as never);

/** A job id as a JobTable key. */
class IdKey {
  private readonly b = Buffer.alloc(ID_BYTES);
  readonly w = new Uint32Array(this.b.buffer, this.b.byteOffset, ID_BYTES / 4);
  of(id: string): this {
    writeId(id, this.b, 0);
    return this;
  }
}

export async function replayBundle(current: BundleRef, previous: readonly BundleRef[], opts: { out?: string } = {}): Promise<StreamReplayResult> {
  // Per job of jobs.jsonl, in typed arrays (jobtable.ts): sha256 of its row's projected facts,
  // history_n, sha256 of its replayed snapshot, where the replayed line lies in the spool, flags.
  const jobs = new JobTable();
  const facts = jobs.hashes();
  const historyN = jobs.float();
  const snap = jobs.hashes();
  const off = jobs.float();
  const len = jobs.float();
  const flags = jobs.int();
  const key = new IdKey();
  const scratch = new Uint8Array(32);
  const scratch32 = new Uint32Array(scratch.buffer);
  for await (const b of entryBatches(current, 'jobs.jsonl'))
    for (const v of b) {
      const j = v as Job;
      const i = jobs.insert(key.of(j.id).w, 0);
      digestInto(factsText(jobFacts(j)), facts.a, i);
      historyN.a[i] = j.history_n;
      off.a[i] = -1;
    }
  // Opened first: a bad --out fails before any work. Only --out needs the replayed lines kept.
  const outFh = opts.out ? await open(opts.out, 'w') : null;
  const dir = outFh ? await mkdtemp(join(tmpdir(), 'okit-replay-')) : null;
  const fh = dir ? await open(join(dir, 'replayed.jsonl'), 'w+') : null;
  try {
    let written = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      if (!pendingBytes || !fh) return;
      const b = Buffer.concat(pending);
      await fh.write(b, 0, b.length, written - pendingBytes);
      pending = [];
      pendingBytes = 0;
    };
    const folds = new Map<string, { i: number; p: Projection }>();
    const finish = (id: string, i: number, p: Projection) => {
      const s = finishProjection(p);
      const text = canonicalize(s);
      digestInto(text, snap.a, i);
      digestInto(factsText(projectedFacts(s)), scratch, 0);
      flags.a[i]! |= REPLAYED | (sameHash(scratch32, 0, facts.w, i) ? FACTS_OK : 0);
      folds.delete(id);
      if (!fh) return;
      const line = Buffer.from(text + '\n');
      off.a[i] = written;
      len.a[i] = line.length - 1;
      written += line.length;
      pending.push(line);
      pendingBytes += line.length;
    };
    const fold = (r: HistoryRow, current: boolean) => {
      let f = folds.get(r.job_id);
      if (!f) {
        const i = jobs.find(key.of(r.job_id).w, 0);
        if (i === -1 || flags.a[i]! & SKIPPED) return;
        if (current) flags.a[i]! |= IN_BUNDLE;
        if (r.n !== 1) {
          if (current) flags.a[i]! |= SKIPPED;
          return;
        }
        f = { i, p: startProjection() };
        folds.set(r.job_id, f);
      } else if (current) flags.a[f.i]! |= IN_BUNDLE;
      projectStep(f.p, r);
      if (current && r.n === historyN.a[f.i]) finish(r.job_id, f.i, f.p);
    };
    for (const ref of previous) for await (const b of entryBatches(ref, 'history.jsonl')) for (const v of b) fold(v as HistoryRow, false);
    for await (const b of entryBatches(current, 'history.jsonl')) {
      for (const v of b) fold(v as HistoryRow, true);
      if (pendingBytes > 1 << 20) await flush();
    }
    // Jobs whose history goes on beyond the window: replayed as far as the bundle goes.
    for (const [id, f] of folds) if (flags.a[f.i]! & IN_BUNDLE) finish(id, f.i, f.p);
    await flush();
    folds.clear();

    const res: StreamReplayResult = { jobs: jobs.count, compared: 0, identical: 0, skipped: [], open: 0, divergences: [], replayed: 0, moreDivergences: 0 };
    const diverging = new Map<string, Snapshot>();
    for await (const b of entryBatches(current, 'snapshots.jsonl'))
      for (const v of b) {
        const live = v as Snapshot;
        const i = jobs.find(key.of(live.job_id).w, 0);
        if (i === -1 || !(flags.a[i]! & REPLAYED)) continue;
        flags.a[i]! |= WITH_SNAPSHOT;
        res.compared++;
        digestInto(canonicalize(live), scratch, 0);
        if (flags.a[i]! & FACTS_OK && sameHash(scratch32, 0, snap.w, i)) res.identical++;
        else if (diverging.size < MAX_DETAILED) diverging.set(live.job_id, live);
        else res.moreDivergences++;
      }
    for (let i = 0; i < jobs.count; i++) {
      const fl = flags.a[i]!;
      if (fl & SKIPPED) res.skipped.push(jobs.id(i));
      else if (fl & REPLAYED) {
        res.replayed++;
        if (!(fl & WITH_SNAPSHOT)) res.open++;
      }
    }
    res.skipped.sort();
    if (diverging.size) {
      // Naming the first diverging event needs each diverging job's row and its rows: read them once more.
      const facts = new Map<string, Views>();
      for await (const v of entryValues(current, 'jobs.jsonl')) if (diverging.has((v as Job).id)) facts.set((v as Job).id, jobFacts(v as Job));
      const rows = new Map<string, HistoryRow[]>([...diverging.keys()].map((id) => [id, []]));
      for (const ref of [...previous, current]) for await (const v of entryValues(ref, 'history.jsonl')) rows.get((v as HistoryRow).job_id)?.push(v as HistoryRow);
      for (const [id, live] of [...diverging].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
        const rs = rows.get(id)!;
        const got = project(rs);
        const want = views(live, facts.get(id));
        const have = views(got, projectedFacts(got));
        const fields = [...new Set([...Object.keys(want), ...Object.keys(have)])].sort().filter((k) => want[k] !== have[k]);
        res.divergences.push(firstDivergenceOf(rs, facts.get(id), want, fields));
      }
    }
    if (outFh && fh) {
      // In job id order, as snapshots.jsonl (jobs.jsonl is sorted by id: the table is in that order); in batches.
      let batch: Buffer[] = [];
      let size = 0;
      for (let i = 0; i < jobs.count; i++) {
        if (off.a[i]! < 0) continue;
        const b = Buffer.alloc(len.a[i]! + 1);
        await fh.read(b, 0, b.length, off.a[i]!);
        batch.push(b);
        size += b.length;
        if (size > 1 << 20) {
          await outFh.write(Buffer.concat(batch));
          batch = [];
          size = 0;
        }
      }
      if (batch.length) await outFh.write(Buffer.concat(batch));
    }
    return res;
  } finally {
    await outFh?.close();
    await fh?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

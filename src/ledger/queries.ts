/**
 * Read side of the control plane: listing and searching jobs (filters, sort, keyset cursor,
 * per-state totals) and runs (counts, items, a run-level signal). Reads only: nothing here
 * takes a ledger position. Every query is scoped by tenant, so another tenant's job, run or
 * source is simply absent.
 */
import { createHash } from 'node:crypto';
import { OkitError } from '../errors.js';
import type { Pool } from '../db/pool.js';
import { canonicalize, type Json } from '../util/canonical.js';
import type { Clock } from '../util/clock.js';
import { formatMicros, parseMicros as parseTs } from '../util/time.js';
import { json, ts, tsOrNull } from './rows.js';
import { JOB_STATES, type JobState } from './states.js';
import { SIGNAL_KINDS, type Phase, type SignalKind } from './types.js';
import * as v from './validate.js';

export const MAX_LIST_LIMIT = 500;
export const DEFAULT_LIST_LIMIT = 50;

export interface JobFilters {
  state?: string[] | string | null;
  kind?: string[] | string | null;
  type?: string | null;
  runId?: string | null;
  sourceId?: string | null;
  errorCode?: string | null;
  createdAfter?: string | null;
  createdBefore?: string | null;
  updatedAfter?: string | null;
  updatedBefore?: string | null;
  /** created (default) or updated. */
  sort?: string | null;
  /** desc (default, newest first) or asc. */
  order?: string | null;
  limit?: number | null;
  cursor?: string | null;
}

/** One job as a list shows it: the row without its payload, its signal, and for a failed or dead-lettered job the last error and matched signature. */
export interface JobListItem {
  id: string;
  type: string;
  state: JobState;
  priority: number;
  attempt: number;
  max_attempts: number;
  run_id: string | null;
  source_id: string | null;
  idempotency_key: string | null;
  not_before: string;
  created_at: string;
  updated_at: string;
  signal: { kind: SignalKind; phase: Phase; summary: string; eta_seconds: number | null } | null;
  last_error: { code: string; message: string } | null;
  signature: { [k: string]: Json } | null;
}

export interface JobList {
  jobs: JobListItem[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
  /** Jobs matching every filter but `state`, per state (all seven states, zeros included). */
  totals: Record<JobState, number>;
}

function bad(field: string, why: string): never {
  throw new OkitError('INVALID_INPUT', `${field}: ${why}`, { field });
}

function listOf(x: string[] | string | null | undefined): string[] {
  if (x === undefined || x === null) return [];
  const xs = Array.isArray(x) ? x : x.split(',');
  return xs.map((s) => s.trim()).filter((s) => s !== '');
}

interface Normalized {
  states: JobState[];
  kinds: SignalKind[];
  type: string | null;
  runId: string | null;
  sourceId: string | null;
  errorCode: string | null;
  createdAfter: string | null;
  createdBefore: string | null;
  updatedAfter: string | null;
  updatedBefore: string | null;
  sort: 'created' | 'updated';
  order: 'asc' | 'desc';
  limit: number;
}

function normalize(f: JobFilters): Normalized {
  const states = listOf(f.state);
  for (const s of states) if (!(JOB_STATES as readonly string[]).includes(s)) bad('state', `must be one or more (comma-separated) of ${JOB_STATES.join(', ')}`);
  const kinds = listOf(f.kind);
  for (const k of kinds) if (!(SIGNAL_KINDS as readonly string[]).includes(k)) bad('kind', `must be one or more (comma-separated) of ${SIGNAL_KINDS.join(', ')}`);
  const time = (x: string | null | undefined, field: string) => (x == null || x === '' ? null : formatMicros(parseTs(v.timestamp(x, field))));
  const sort = f.sort == null || f.sort === '' ? 'created' : f.sort;
  if (sort !== 'created' && sort !== 'updated') bad('sort', 'must be created or updated');
  const order = f.order == null || f.order === '' ? 'desc' : f.order;
  if (order !== 'asc' && order !== 'desc') bad('order', 'must be asc or desc');
  let errorCode: string | null = null;
  if (f.errorCode != null && f.errorCode !== '') {
    try {
      errorCode = v.errorCode(f.errorCode);
    } catch {
      bad('error_code', 'must match ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$');
    }
  }
  return {
    states: [...new Set(states)].sort() as JobState[],
    kinds: [...new Set(kinds)].sort() as SignalKind[],
    type: f.type == null || f.type === '' ? null : v.jobType(f.type),
    runId: f.runId == null || f.runId === '' ? null : v.uuid(f.runId, 'run_id'),
    sourceId: f.sourceId == null || f.sourceId === '' ? null : v.uuid(f.sourceId, 'source_id'),
    errorCode,
    createdAfter: time(f.createdAfter, 'created_after'),
    createdBefore: time(f.createdBefore, 'created_before'),
    updatedAfter: time(f.updatedAfter, 'updated_after'),
    updatedBefore: time(f.updatedBefore, 'updated_before'),
    sort,
    order,
    limit: f.limit == null ? DEFAULT_LIST_LIMIT : v.int(f.limit, 'limit', 1, MAX_LIST_LIMIT),
  };
}

/** What a cursor is bound to: the filters and sort (not the limit), so a cursor cannot be reused for another query. */
function fingerprint(n: Normalized): string {
  const { limit: _l, ...rest } = n;
  return createHash('sha256').update(canonicalize(rest as unknown as Json)).digest('base64url').slice(0, 16);
}

function encodeCursor(n: Normalized, at: string, id: string): string {
  return Buffer.from(canonicalize({ v: 1, f: fingerprint(n), at, id })).toString('base64url');
}

function decodeCursor(n: Normalized, cursor: string): { at: string; id: string } {
  const fail = (why: string): never => {
    throw new OkitError('INVALID_INPUT', `cursor: ${why}`, { field: 'cursor' });
  };
  if (!/^[A-Za-z0-9_-]{1,400}$/.test(cursor)) fail('not a cursor this server made');
  let c: { v?: unknown; f?: unknown; at?: unknown; id?: unknown };
  try {
    c = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as typeof c;
  } catch {
    return fail('not a cursor this server made');
  }
  if (!c || typeof c !== 'object' || c.v !== 1 || typeof c.at !== 'string' || !v.isUuid(c.id)) fail('not a cursor this server made');
  try {
    v.timestamp(c.at, 'cursor');
  } catch {
    fail('not a cursor this server made');
  }
  if (c.f !== fingerprint(n)) fail('it was made for other filters or another sort: start again without a cursor');
  return { at: c.at as string, id: c.id as string };
}

/** SQL conditions (over jobs j and snapshots s) and their parameters, numbered from `start`. */
function where(n: Normalized, params: unknown[], withState: boolean): string {
  const conds = ['j.tenant = $1'];
  const p = (x: unknown) => {
    params.push(x);
    return `$${params.length}`;
  };
  if (withState && n.states.length) conds.push(`j.state = ANY(${p(n.states)}::text[])`);
  if (n.kinds.length) conds.push(`s.kind = ANY(${p(n.kinds)}::text[])`);
  if (n.type) conds.push(`j.type = ${p(n.type)}`);
  if (n.runId) conds.push(`j.run_id = ${p(n.runId)}::uuid`);
  if (n.sourceId) conds.push(`j.source_id = ${p(n.sourceId)}::uuid`);
  if (n.errorCode) conds.push(`s.diagnostics->>'last_error_code' = ${p(n.errorCode)}`);
  if (n.createdAfter) conds.push(`j.created_at >= ${p(n.createdAfter)}::timestamptz`);
  if (n.createdBefore) conds.push(`j.created_at < ${p(n.createdBefore)}::timestamptz`);
  if (n.updatedAfter) conds.push(`j.updated_at >= ${p(n.updatedAfter)}::timestamptz`);
  if (n.updatedBefore) conds.push(`j.updated_at < ${p(n.updatedBefore)}::timestamptz`);
  return conds.join(' AND ');
}

const LIST_COLUMNS = `j.id, j.type, j.state, j.priority, j.attempt, j.max_attempts, j.run_id, j.source_id, j.idempotency_key, j.not_before,
  j.created_at, j.updated_at, s.kind, s.phase, s.summary, s.eta_seconds, h.event AS last_event, h.data AS last_data`;

function lastError(r: Record<string, unknown>): { code: string; message: string } | null {
  if (r.state !== 'failed' && r.state !== 'dead_letter') return null;
  const d = json<{ [k: string]: Json } | null>(r.last_data);
  if (r.last_event === 'lease_expired') return { code: 'LEASE_EXPIRED', message: `the lease on ${String(d?.worker_id ?? 'its worker')} expired on the last attempt` };
  const e = d?.error as { code?: unknown; message?: unknown } | undefined;
  return e && typeof e.code === 'string' ? { code: e.code, message: typeof e.message === 'string' ? e.message : '' } : null;
}

function toItem(r: Record<string, unknown>): JobListItem {
  const d = json<{ [k: string]: Json } | null>(r.last_data);
  const sig = r.state === 'failed' || r.state === 'dead_letter' ? (d?.signature as { [k: string]: Json } | undefined) : undefined;
  return {
    id: String(r.id),
    type: String(r.type),
    state: r.state as JobState,
    priority: Number(r.priority),
    attempt: Number(r.attempt),
    max_attempts: Number(r.max_attempts),
    run_id: (r.run_id ?? null) as string | null,
    source_id: (r.source_id ?? null) as string | null,
    idempotency_key: (r.idempotency_key ?? null) as string | null,
    not_before: ts(r.not_before),
    created_at: ts(r.created_at),
    updated_at: ts(r.updated_at),
    signal:
      r.kind == null
        ? null
        : { kind: r.kind as SignalKind, phase: r.phase as Phase, summary: String(r.summary), eta_seconds: r.eta_seconds == null ? null : Number(r.eta_seconds) },
    last_error: lastError(r),
    signature: sig && typeof sig === 'object' ? sig : null,
  };
}

export class QueryOps {
  constructor(private readonly l: { pool: Pool; clock: Clock; ids: () => string }) {}

  /**
   * Jobs of the tenant, filtered, newest first by default. Pages are cut by (created_at, id) or
   * (updated_at, id) after the cursor's row, so a job that exists throughout is listed exactly
   * once while other jobs come, go or change; with sort=updated, a job that changes moves.
   */
  async listJobs(tenant: string, filters: JobFilters = {}): Promise<JobList> {
    v.tenant(tenant);
    const n = normalize(filters);
    const after = filters.cursor == null || filters.cursor === '' ? null : decodeCursor(n, filters.cursor);
    const col = n.sort === 'created' ? 'j.created_at' : 'j.updated_at';
    const dir = n.order === 'desc' ? 'DESC' : 'ASC';
    const params: unknown[] = [tenant];
    let cond = where(n, params, true);
    if (after) {
      params.push(after.at, after.id);
      cond += ` AND (${col}, j.id) ${n.order === 'desc' ? '<' : '>'} ($${params.length - 1}::timestamptz, $${params.length}::uuid)`;
    }
    params.push(n.limit + 1);
    const { rows } = await this.l.pool.query(
      `SELECT ${LIST_COLUMNS}
       FROM okit.jobs j LEFT JOIN okit.first_signal_snapshots s ON s.job_id = j.id
         LEFT JOIN okit.job_history h ON h.job_id = j.id AND h.n = j.history_n AND j.state IN ('failed', 'dead_letter')
       WHERE ${cond}
       ORDER BY ${col} ${dir}, j.id ${dir} LIMIT $${params.length}`,
      params,
    );
    const page = rows.slice(0, n.limit);
    const last = page[page.length - 1];
    const next = rows.length > n.limit && last ? encodeCursor(n, ts(n.sort === 'created' ? last.created_at : last.updated_at), String(last.id)) : null;
    const tp: unknown[] = [tenant];
    const tcond = where(n, tp, false);
    const { rows: t } = await this.l.pool.query(
      `SELECT j.state, count(*)::int AS n FROM okit.jobs j LEFT JOIN okit.first_signal_snapshots s ON s.job_id = j.id WHERE ${tcond} GROUP BY j.state`,
      tp,
    );
    const totals = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
    for (const r of t) totals[r.state as JobState] = Number(r.n);
    return { jobs: page.map(toItem), next_cursor: next, totals };
  }

  // ---------------------------------------------------------------- runs

  /** Creates a run (optionally of a source); an existing run of the same id answers created: false. */
  async createRun(tenant: string, input: { id?: string | null; sourceId?: string | null } = {}): Promise<{ run: Run; created: boolean }> {
    v.tenant(tenant);
    const id = input.id != null ? v.uuid(input.id, 'id') : this.l.ids();
    const sourceId = input.sourceId != null ? v.uuid(input.sourceId, 'source_id') : null;
    if (sourceId) {
      const { rows } = await this.l.pool.query('SELECT 1 FROM okit.sources WHERE tenant = $1 AND id = $2', [tenant, sourceId]);
      if (!rows[0]) throw new OkitError('SOURCE_NOT_FOUND', `source ${sourceId} not found`);
    }
    const { rows } = await this.l.pool.query(
      `INSERT INTO okit.runs (id, tenant, source_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, id) DO NOTHING RETURNING id`,
      [id, tenant, sourceId, formatMicros(this.l.clock.now())],
    );
    const run = await this.runRow(tenant, id);
    if (!rows[0] && input.sourceId != null && run.source_id !== sourceId)
      throw new OkitError('INVALID_INPUT', `run ${id} already exists with ${run.source_id ? `source ${run.source_id}` : 'no source'}`, { field: 'source_id' });
    return { run, created: rows.length > 0 };
  }

  private async runRow(tenant: string, id: string): Promise<Run> {
    const { rows } = await this.l.pool.query('SELECT id, tenant, source_id, created_at FROM okit.runs WHERE tenant = $1 AND id = $2', [tenant, id]);
    if (!rows[0]) throw new OkitError('RUN_NOT_FOUND', `run ${id} not found`, { run_id: id });
    return { id: String(rows[0].id), tenant: String(rows[0].tenant), source_id: (rows[0].source_id ?? null) as string | null, created_at: ts(rows[0].created_at) };
  }

  /** The run with its jobs' counts by state and kind, items (jobs) done of total, and its run-level signal. */
  async getRun(tenant: string, id: string): Promise<RunStatus> {
    v.tenant(tenant);
    v.uuid(id, 'run_id');
    const run = await this.runRow(tenant, id);
    const { rows } = await this.l.pool.query(
      `SELECT j.state, s.kind, count(*)::int AS n, max(s.eta_seconds) FILTER (WHERE j.state = 'running') AS eta,
         count(*) FILTER (WHERE j.state = 'running' AND s.eta_seconds IS NULL)::int AS no_eta, max(j.updated_at) AS updated
       FROM okit.jobs j LEFT JOIN okit.first_signal_snapshots s ON s.job_id = j.id
       WHERE j.tenant = $1 AND j.run_id = $2 GROUP BY j.state, s.kind`,
      [tenant, id],
    );
    const byState = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
    const byKind = Object.fromEntries(SIGNAL_KINDS.map((k) => [k, 0])) as Record<SignalKind, number>;
    let eta = 0;
    let etaKnown = true;
    let updated: string | null = null;
    for (const r of rows) {
      byState[r.state as JobState] += Number(r.n);
      if (r.kind) byKind[r.kind as SignalKind] += Number(r.n);
      if (r.state === 'running') {
        if (Number(r.no_eta) > 0) etaKnown = false;
        if (r.eta != null) eta = Math.max(eta, Number(r.eta));
      }
      const u = tsOrNull(r.updated);
      if (u && (!updated || u > updated)) updated = u;
    }
    // The worst finished outcome: dead_letter, then failed, then canceled, then succeeded; its latest job.
    const { rows: worst } = await this.l.pool.query(
      `SELECT j.id, j.state, s.diagnostics->>'last_error_code' AS error_code, j.updated_at FROM okit.jobs j LEFT JOIN okit.first_signal_snapshots s ON s.job_id = j.id
       WHERE j.tenant = $1 AND j.run_id = $2 AND j.state IN ('dead_letter', 'failed', 'canceled', 'succeeded')
       ORDER BY array_position(ARRAY['dead_letter', 'failed', 'canceled', 'succeeded'], j.state), j.updated_at DESC, j.id DESC LIMIT 1`,
      [tenant, id],
    );
    const { rows: first } = await this.l.pool.query('SELECT id FROM okit.jobs WHERE tenant = $1 AND run_id = $2 ORDER BY created_at, id LIMIT 1', [tenant, id]);
    const w = worst[0];
    const worstOutcome = w ? { state: String(w.state), job_id: String(w.id), error_code: (w.error_code ?? null) as string | null, finished_at: ts(w.updated_at) } : null;
    const signal = runSignal(byState, byKind, etaKnown ? eta : null, worstOutcome);
    const total = Object.values(byState).reduce((a, b) => a + b, 0);
    const done = byState.succeeded + byState.failed + byState.dead_letter + byState.canceled;
    const body = { run, counts: { by_state: byState, by_kind: byKind }, items: { done, total }, signal };
    const etag = `"r-${createHash('sha256').update(canonicalize(body as unknown as Json)).digest('hex').slice(0, 20)}"`;
    return { ...body, etag, first_job_id: first[0] ? String(first[0].id) : null, updated_at: updated };
  }
}

export interface Run {
  id: string;
  tenant: string;
  source_id: string | null;
  created_at: string;
}

export interface RunSignal {
  kind: SignalKind;
  summary: string;
  eta_seconds: number | null;
  worst_outcome: { state: string; job_id: string; error_code: string | null; finished_at: string } | null;
}

export interface RunStatus {
  run: Run;
  counts: { by_state: Record<JobState, number>; by_kind: Record<SignalKind, number> };
  /** A run's items are its jobs: done (finished, whatever the outcome) of total. */
  items: { done: number; total: number };
  signal: RunSignal;
  /** Changes whenever any of the above does. */
  etag: string;
  /** The run's first job (a TTFS report names a job of the run). */
  first_job_id: string | null;
  updated_at: string | null;
}

/** The run-level signal: a kind, "7 of 10 jobs done, 1 failed", an ETA from its running jobs, the worst outcome. */
export function runSignal(
  s: Record<JobState, number>,
  k: Record<SignalKind, number>,
  runningEta: number | null,
  worst: RunSignal['worst_outcome'],
): RunSignal {
  const total = Object.values(s).reduce((a, b) => a + b, 0);
  const failed = s.failed + s.dead_letter;
  const done = s.succeeded + failed + s.canceled;
  const parts = [`${done} of ${total} job${total === 1 ? '' : 's'} done`];
  if (failed) parts.push(`${failed} failed`);
  if (s.canceled) parts.push(`${s.canceled} canceled`);
  if (s.running) parts.push(`${s.running} running`);
  if (k.blocked) parts.push(`${k.blocked} blocked`);
  let kind: SignalKind;
  if (total === 0) kind = 'queued';
  else if (done === total) kind = failed > 0 ? 'failed' : s.canceled === total ? 'canceled' : 'succeeded';
  else if (s.running > 0 || done > 0) kind = 'started';
  else if (k.blocked === total - done) kind = 'blocked';
  else kind = 'queued';
  const waiting = total - done - s.running;
  const eta = done === total ? 0 : waiting === 0 ? runningEta : null;
  return { kind, summary: total === 0 ? 'No jobs yet' : parts.join(', '), eta_seconds: eta, worst_outcome: worst };
}

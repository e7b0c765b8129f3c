/** Mapping raw Postgres text (see db/pool.ts exactTypes) to ledger types. */
import { canonicalize, type Json } from '../util/canonical.js';
import type { Queryable } from '../db/pool.js';
import { normalizeTimestamp } from '../util/time.js';
import type { HistoryRow, Job, Snapshot } from './types.js';

type Raw = Record<string, unknown>;

export const ts = (v: unknown): string => normalizeTimestamp(String(v));
export const tsOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : ts(v));
export const json = <T = Json>(v: unknown): T => (v === null || v === undefined ? (null as T) : (JSON.parse(String(v)) as T));

export const HISTORY_COLUMNS = 'tenant, pos, job_id, n, at, event, from_state, to_state, data, prev_hash, hash';

/** Inserts one history row; parameters from historyParams(). */
export const INSERT_HISTORY = `INSERT INTO okit.job_history (${HISTORY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`;

export function historyParams(row: HistoryRow): unknown[] {
  return [row.tenant, row.pos, row.job_id, row.n, row.at, row.event, row.from_state, row.to_state, canonicalize(row.data), row.prev_hash, row.hash];
}

export function toHistory(r: Raw): HistoryRow {
  return {
    tenant: String(r.tenant),
    pos: String(r.pos),
    job_id: String(r.job_id),
    n: Number(r.n),
    at: ts(r.at),
    event: r.event as HistoryRow['event'],
    from_state: (r.from_state ?? null) as HistoryRow['from_state'],
    to_state: r.to_state as HistoryRow['to_state'],
    data: json(r.data),
    prev_hash: (r.prev_hash ?? null) as string | null,
    hash: String(r.hash),
  };
}

export const JOB_COLUMNS =
  'id, tenant, run_id, source_id, type, payload, payload_sha256, idempotency_key, priority, max_attempts, attempt, state, not_before, lease_owner, lease_expires_at, created_at, updated_at, history_n, last_hash';

export function toJob(r: Raw): Job {
  return {
    id: String(r.id),
    tenant: String(r.tenant),
    run_id: (r.run_id ?? null) as string | null,
    source_id: (r.source_id ?? null) as string | null,
    type: String(r.type),
    payload: json(r.payload),
    payload_sha256: String(r.payload_sha256),
    idempotency_key: (r.idempotency_key ?? null) as string | null,
    priority: Number(r.priority),
    max_attempts: Number(r.max_attempts),
    attempt: Number(r.attempt),
    state: r.state as Job['state'],
    not_before: ts(r.not_before),
    lease_owner: (r.lease_owner ?? null) as string | null,
    lease_expires_at: tsOrNull(r.lease_expires_at),
    created_at: ts(r.created_at),
    updated_at: ts(r.updated_at),
    history_n: Number(r.history_n),
    last_hash: String(r.last_hash),
  };
}

export const SNAPSHOT_COLUMNS =
  'job_id, tenant, run_id, kind, phase, summary, eta_seconds, last_known_outcome, next_actions, diagnostics, source, history_n, history_hash, created_at, updated_at';

export function toSnapshot(r: Raw): Snapshot {
  return {
    job_id: String(r.job_id),
    tenant: String(r.tenant),
    run_id: (r.run_id ?? null) as string | null,
    kind: r.kind as Snapshot['kind'],
    phase: r.phase as Snapshot['phase'],
    summary: String(r.summary),
    eta_seconds: r.eta_seconds === null || r.eta_seconds === undefined ? null : Number(r.eta_seconds),
    last_known_outcome: json(r.last_known_outcome),
    next_actions: json(r.next_actions),
    diagnostics: json(r.diagnostics),
    source: r.source as Snapshot['source'],
    history_n: Number(r.history_n),
    history_hash: String(r.history_hash),
    created_at: ts(r.created_at),
    updated_at: ts(r.updated_at),
  };
}

const UPSERT_SNAPSHOT = `INSERT INTO okit.first_signal_snapshots (${SNAPSHOT_COLUMNS})
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
  ON CONFLICT (job_id) DO UPDATE SET kind = $4, phase = $5, summary = $6, eta_seconds = $7, last_known_outcome = $8,
    next_actions = $9, diagnostics = $10, source = $11, history_n = $12, history_hash = $13, updated_at = $15`;

function snapshotParams(s: Snapshot): unknown[] {
  return [
    s.job_id,
    s.tenant,
    s.run_id,
    s.kind,
    s.phase,
    s.summary,
    s.eta_seconds,
    s.last_known_outcome === null ? null : canonicalize(s.last_known_outcome),
    s.next_actions === null ? null : canonicalize(s.next_actions as unknown as Json),
    canonicalize(s.diagnostics),
    s.source,
    s.history_n,
    s.history_hash,
    s.created_at,
    s.updated_at,
  ];
}

/** Writes one snapshot as it is (the bundle importer; the ledger writes its own in batches). */
export async function writeSnapshot(c: Queryable, s: Snapshot): Promise<void> {
  await c.query(UPSERT_SNAPSHOT, snapshotParams(s));
}

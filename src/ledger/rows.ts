/** Mapping raw Postgres text (see db/pool.ts exactTypes) to ledger types. */
import { canonicalize, type Json } from '../util/canonical.js';
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

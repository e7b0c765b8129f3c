import type { Json } from '../util/canonical.js';
import type { JobEvent, JobState } from './states.js';

/** One row of okit.job_history, exactly as stored and exported. */
export interface HistoryRow {
  tenant: string;
  /** Ledger position: per tenant, dense and in commit order. A decimal string (int8). */
  pos: string;
  job_id: string;
  /** 1-based index of this row within its job's chain. */
  n: number;
  /** RFC 3339 UTC with microseconds. */
  at: string;
  event: JobEvent;
  from_state: JobState | null;
  to_state: JobState;
  data: { [k: string]: Json };
  prev_hash: string | null;
  hash: string;
}

export const SIGNAL_KINDS = ['queued', 'started', 'phase', 'blocked', 'failed', 'succeeded', 'canceled', 'unavailable'] as const;
export type SignalKind = (typeof SIGNAL_KINDS)[number];
export const PHASES = ['resolve', 'fetch', 'restore', 'analyze', 'policy', 'report', 'unknown'] as const;
export type Phase = (typeof PHASES)[number];

export interface NextAction {
  label: string;
  command?: string;
  href?: string;
}

/** The first-signal body served to clients. */
export interface Signal {
  kind: SignalKind;
  phase: Phase;
  summary: string;
  eta_seconds: number | null;
  last_known_outcome: { [k: string]: Json } | null;
  next_actions: NextAction[] | null;
  diagnostics: { [k: string]: Json };
}

/** A projected snapshot: the signal plus what identifies the history it came from. */
export interface Snapshot extends Signal {
  job_id: string;
  tenant: string;
  run_id: string | null;
  /** 'failure_index' when a failure signature shaped the signal. */
  source: 'snapshot' | 'failure_index';
  history_n: number;
  history_hash: string;
  created_at: string;
  updated_at: string;
}

export interface Job {
  id: string;
  tenant: string;
  run_id: string | null;
  source_id: string | null;
  type: string;
  payload: Json;
  payload_sha256: string;
  idempotency_key: string | null;
  priority: number;
  max_attempts: number;
  attempt: number;
  state: JobState;
  not_before: string;
  lease_owner: string | null;
  lease_expires_at: string | null;
  created_at: string;
  updated_at: string;
  history_n: number;
  last_hash: string;
}

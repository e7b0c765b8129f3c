/**
 * How a snapshot is shown: the client-facing signal body, its ETag, the CLI line. Pure helpers
 * over the ledger's projected snapshots (src/ledger/projection.ts).
 */
import type { Signal, SignalKind, Snapshot } from '../ledger/types.js';

/** The client-facing body of a snapshot. */
export function signalOf(s: Snapshot): Signal {
  return {
    kind: s.kind,
    phase: s.phase,
    summary: s.summary,
    eta_seconds: s.eta_seconds,
    last_known_outcome: s.last_known_outcome,
    next_actions: s.next_actions,
    diagnostics: s.diagnostics,
  };
}

/** The opaque ETag of a snapshot: changes with every history row, so two changes in a millisecond differ. */
export function etagOf(s: Pick<Snapshot, 'history_n' | 'history_hash'>): string {
  return `"${s.history_n}-${s.history_hash.slice(0, 16)}"`;
}

/** One CLI line per signal: `[queued] Waiting in queue (position: 3)`. */
export function signalLine(s: Pick<Signal, 'kind' | 'phase' | 'summary'>): string {
  const tag = s.kind === 'phase' ? `phase:${s.phase}` : s.kind;
  return `[${tag}] ${s.summary}`;
}

export const TERMINAL_KINDS: ReadonlySet<SignalKind> = new Set(['succeeded', 'failed', 'canceled']);

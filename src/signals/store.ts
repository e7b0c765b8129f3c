/**
 * Reading a job's current first signal: the per-process cache (≤ 1 s), then the
 * first_signal_snapshots row, then, if that row is missing but history exists, a projection
 * of the history on the fly (`cold_start`).
 */
import { isOkitError, OkitError } from '../errors.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Snapshot } from '../ledger/types.js';
import { SnapshotCache } from './cache.js';
import { etagOf, project, TERMINAL_KINDS } from './projection.js';

export type SignalSource = 'snapshot' | 'cold_start' | 'failure_index';

export interface Current {
  snapshot: Snapshot;
  etag: string;
  source: SignalSource;
}

export function isTerminal(c: Current): boolean {
  return TERMINAL_KINDS.has(c.snapshot.kind);
}

export class SignalStore {
  readonly cache: SnapshotCache<Current>;
  constructor(
    private readonly ledger: Ledger,
    cacheTtlMs = 1000,
  ) {
    this.cache = new SnapshotCache<Current>(cacheTtlMs);
  }

  async read(tenant: string, jobId: string): Promise<Current> {
    const hit = this.cache.get(tenant, jobId);
    if (hit) return hit;
    const ticket = this.cache.ticket(tenant, jobId);
    const cur = await this.load(tenant, jobId);
    this.cache.set(tenant, jobId, cur, ticket);
    return cur;
  }

  private async load(tenant: string, jobId: string): Promise<Current> {
    try {
      const snapshot = await this.ledger.getSnapshot(tenant, jobId);
      return { snapshot, etag: etagOf(snapshot), source: snapshot.source === 'failure_index' ? 'failure_index' : 'snapshot' };
    } catch (e) {
      if (!isOkitError(e) || e.code !== 'JOB_NOT_FOUND') throw e;
    }
    // No snapshot row: the job may still exist (say, restored from history). history() is
    // tenant-scoped and throws JOB_NOT_FOUND for a missing or foreign job.
    const rows = await this.ledger.history(tenant, jobId);
    if (rows.length === 0) throw new OkitError('JOB_NOT_FOUND', `job ${jobId} not found`, { job_id: jobId });
    const snapshot = project(rows);
    return { snapshot, etag: etagOf(snapshot), source: 'cold_start' };
  }
}

/**
 * Known jobs: the running jobs this process wrote last, as its own commits left them. A worker's
 * progress, complete or fail of a job it claimed through this process then needs no read round:
 * the batch takes the job from here, and okit.write_batch locks the row and checks that it is
 * still exactly so (history length and hash, state, attempt, lease) before it writes anything.
 * If another process, a heartbeat or anything else changed it meanwhile, nothing is written and
 * the batch runs again with reads. The table stays the truth; this is a guess it confirms.
 */
import type { Slot } from './batch.js';

/** Jobs remembered, at most, over all tenants (the oldest are forgotten first). */
export const MAX_KNOWN_JOBS = 4096;
/** A job with a longer history is not remembered (its reads are the cheaper part of its batch). */
const MAX_KNOWN_HISTORY = 256;

export class KnownJobs {
  private readonly jobs = new Map<string, Slot>();

  constructor(private readonly max = MAX_KNOWN_JOBS) {}

  /** After a commit: remembers the running jobs among the slots the batch changed, forgets the others. */
  remember(tenant: string, slots: Slot[]): void {
    for (const s of slots) {
      const k = key(tenant, s.job.id);
      this.jobs.delete(k);
      if (s.job.state !== 'running' || s.history.length > MAX_KNOWN_HISTORY) continue;
      this.jobs.set(k, { job: s.job, isNew: false, host: s.host, history: s.history.slice(), rows: [], lastHash: s.lastHash, leaseToken: s.leaseToken });
      if (this.jobs.size > this.max) this.jobs.delete(this.jobs.keys().next().value!);
    }
  }

  forget(tenant: string, ids: Iterable<string>): void {
    for (const id of ids) this.jobs.delete(key(tenant, id));
  }

  /** A slot of the known job for one batch, with the row it expects (null when unknown). */
  take(tenant: string, id: string): Slot | null {
    const e = this.jobs.get(key(tenant, id));
    if (!e) return null;
    const j = e.job;
    return {
      ...e,
      history: e.history.slice(),
      rows: [],
      knownAs: {
        n: j.history_n,
        hash: j.last_hash,
        state: j.state,
        attempt: j.attempt,
        owner: j.lease_owner,
        lease: j.lease_expires_at,
        token: e.leaseToken,
        notBefore: j.not_before,
      },
    };
  }

  /** A heartbeat of this process moved the lease: the known row moves with it. */
  leaseExtended(tenant: string, id: string, until: string): void {
    const k = key(tenant, id);
    const e = this.jobs.get(k);
    if (e) this.jobs.set(k, { ...e, job: { ...e.job, lease_expires_at: until } });
  }

  get size(): number {
    return this.jobs.size;
  }
}

const key = (tenant: string, id: string) => `${tenant}\n${id}`;

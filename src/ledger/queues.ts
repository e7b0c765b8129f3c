/**
 * Pausing and resuming a job type (a queue) per tenant. A pause is a queue event at the
 * tenant's next ledger position (okit.queue_events, like a throttle event) and a row in
 * okit.queue_pauses, which claims read: from its commit on, no claim hands out a job of the type
 * (the batch writer re-checks every claim's assumption under the head lock). Then every waiting
 * (queued or throttled) job of the type gets a `paused` history row, in sweeps of SWEEP jobs per
 * transaction, so its signal says "Paused by token:…: reason"; a job that starts waiting while
 * the type is paused (enqueued, retried, requeued) gets its `paused` row in the same
 * transaction. Resume is the mirror image: a `resumed` event, the row deleted, and a `resumed`
 * history row for every paused job, which restores the signal it had before.
 */
import type { Json } from '../util/canonical.js';
import { formatMicros, type Micros } from '../util/time.js';
import type { PauseRow, Slot, UnitView } from './batch.js';
import { pauseData, type LedgerCore } from './jobs.js';
import { ts as formatTs } from './rows.js';
import type { HistoryRow } from './types.js';
import * as v from './validate.js';

/** Jobs marked per sweep transaction. */
export const SWEEP = 500;

export interface PauseResult {
  type: string;
  /** false: the type already was (for pause) or was not (for resume) paused; no queue event was written. */
  changed: boolean;
  paused: PauseRow | null;
  /** Waiting jobs whose signal this call changed. */
  jobs: number;
}

export interface QueueInfo {
  type: string;
  paused: PauseRow | null;
  counts: { queued: number; throttled: number; running: number };
}

/** Rows after which a job waits as it did before a pause (the pause, if any, came before them). */
const UNPAUSING: ReadonlySet<string> = new Set(['resumed', 'enqueued', 'retry_scheduled', 'lease_expired', 'retried', 'claimed', 'throttled']);

/** Whether the job's signal is paused now: its latest pause-relevant row is a `paused` row. */
export function isMarkedPaused(slot: Slot): boolean {
  const rows: Array<Pick<HistoryRow, 'event'>> = [...slot.history, ...slot.rows];
  for (let i = rows.length - 1; i >= 0; i--) {
    const e = rows[i]!.event;
    if (e === 'paused') return true;
    if (UNPAUSING.has(e)) return false;
  }
  return false;
}

export class QueueOps {
  constructor(private readonly l: LedgerCore) {}

  async pause(tenant: string, type: string, input: { actor: string; reason?: string | null }): Promise<PauseResult> {
    v.tenant(tenant);
    const t = v.jobType(type);
    const { actor, reason } = v.actorInput(input);
    const now = this.l.clock.now();
    const first = await this.l.writer.submit(tenant, {
      weight: 1,
      async run(b) {
        await b.pausedTypes();
        const cur = b.pauseNow(t);
        if (cur) return () => ({ changed: false, paused: cur });
        const row: PauseRow = { type: t, actor, reason, paused_at: formatMicros(now) };
        b.setPause(t, row);
        b.queueEvent(t, 'paused', { actor, reason }, now);
        return () => ({ changed: true, paused: row });
      },
    });
    // Mark the waiting jobs (also after a repeated pause: it completes an interrupted sweep).
    const jobs = await this.sweep(tenant, t, now, 'paused');
    return { type: t, changed: first.changed, paused: first.paused, jobs };
  }

  async resume(tenant: string, type: string, input: { actor: string; reason?: string | null }): Promise<PauseResult> {
    v.tenant(tenant);
    const t = v.jobType(type);
    const { actor, reason } = v.actorInput(input);
    const now = this.l.clock.now();
    const first = await this.l.writer.submit(tenant, {
      weight: 1,
      async run(b) {
        await b.pausedTypes();
        if (!b.pauseNow(t)) return () => false;
        b.setPause(t, null);
        b.queueEvent(t, 'resumed', { actor, reason }, now);
        // Claim waiters of every process look again (the NOTIFY's `+type` hint); the sweep's rows add theirs.
        b.wakeClaims(t);
        return () => true;
      },
    });
    const jobs = await this.sweep(tenant, t, now, 'resumed', { actor, reason });
    return { type: t, changed: first, paused: null, jobs };
  }

  /** Marks (or unmarks) the type's waiting jobs, SWEEP per transaction, while the type stays paused (or resumed). */
  private async sweep(tenant: string, type: string, now: Micros, event: 'paused' | 'resumed', by?: { actor: string; reason: string | null }): Promise<number> {
    let after: string | null = null;
    let total = 0;
    for (;;) {
      const r: { marked: number; last: string | null; more: boolean } = await this.l.writer.submit(tenant, {
        weight: SWEEP + 1,
        async run(b: UnitView) {
          await b.pausedTypes();
          const slots = await b.jobsWhere(type, ['queued', 'throttled'], after, SWEEP);
          const pause = b.pauseNow(type);
          // Resumed (or paused again) meanwhile: that call's own sweep takes over.
          if ((event === 'paused') !== (pause !== null)) return () => ({ marked: 0, last: null, more: false });
          let marked = 0;
          for (const s of slots) {
            const state = s.job.state;
            if (state !== 'queued' && state !== 'throttled') continue;
            if (isMarkedPaused(s) === (event === 'paused')) continue;
            const data: { [k: string]: Json } = event === 'paused' ? pauseData(pause!) : { actor: by!.actor, reason: by!.reason };
            b.transition(s, event, state, data, now);
            marked++;
          }
          const last = slots.length > 0 ? slots[slots.length - 1]!.job.id : null;
          const more = slots.length === SWEEP;
          // The last sweep of a resume wakes claim waiters again: while it held the waiting jobs'
          // rows (FOR UPDATE), a claim woken by the resume's own hint skipped them (SKIP LOCKED),
          // and jobs the pause never marked get no row here, so no hint of their own.
          if (event === 'resumed' && !more) b.wakeClaims(type);
          return () => ({ marked, last, more });
        },
      });
      total += r.marked;
      if (!r.more || r.last === null) return total;
      after = r.last;
    }
  }

  /** Every type that has waiting or running jobs or is paused: its pause and job counts. */
  async list(tenant: string): Promise<QueueInfo[]> {
    v.tenant(tenant);
    const { rows } = await this.l.pool.query(
      `WITH c AS (SELECT type, count(*) FILTER (WHERE state = 'queued')::int AS queued, count(*) FILTER (WHERE state = 'throttled')::int AS throttled,
           count(*) FILTER (WHERE state = 'running')::int AS running
         FROM okit.jobs WHERE tenant = $1 AND state IN ('queued', 'throttled', 'running') GROUP BY type)
       SELECT coalesce(c.type, p.type) AS type, coalesce(c.queued, 0) AS queued, coalesce(c.throttled, 0) AS throttled, coalesce(c.running, 0) AS running,
         p.actor, p.reason, p.paused_at
       FROM c FULL JOIN (SELECT * FROM okit.queue_pauses WHERE tenant = $1) p ON p.type = c.type ORDER BY 1`,
      [tenant],
    );
    return rows.map((r) => ({
      type: String(r.type),
      paused: r.actor == null ? null : { type: String(r.type), actor: String(r.actor), reason: (r.reason ?? null) as string | null, paused_at: formatTs(r.paused_at) },
      counts: { queued: Number(r.queued), throttled: Number(r.throttled), running: Number(r.running) },
    }));
  }
}

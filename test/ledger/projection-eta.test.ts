/**
 * ETAs for every non-terminal kind, from the inputs the ledger writes on the rows (docs/eta.md),
 * and the bad-input cases. Pure: no database.
 */
import { describe, expect, it } from 'vitest';
import { rowHash } from '../../src/ledger/chain.js';
import { MAX_ETA_SECONDS, project } from '../../src/ledger/projection.js';
import type { JobEvent, JobState } from '../../src/ledger/states.js';
import type { HistoryRow } from '../../src/ledger/types.js';
import { signalLine } from '../../src/signals/signal.js';
import { canonicalize, type Json } from '../../src/util/canonical.js';
import { formatMicros, parseMicros } from '../../src/util/time.js';

const JOB = '00000000-0000-4000-8000-0000000000ee';
const T0 = parseMicros('2025-12-04T12:00:00.000000Z');
type D = { [k: string]: Json };

/** ETA inputs as the ledger writes them: `data.eta`. */
const eta = (p50: number | null, workers: number | null = null, samples = 20): D => ({
  eta: { p50_seconds: p50, samples, ...(workers === null ? {} : { workers }) },
});

class H {
  rows: HistoryRow[] = [];
  add(event: JobEvent, from: JobState | null, to: JobState, data: D, atSeconds: number): this {
    const prev = this.rows.at(-1);
    const base = {
      tenant: 't',
      pos: String(this.rows.length + 1),
      job_id: JOB,
      n: this.rows.length + 1,
      at: formatMicros(T0 + BigInt(Math.round(atSeconds * 1e6))),
      event,
      from_state: from,
      to_state: to,
      data,
      prev_hash: prev ? prev.hash : null,
    };
    this.rows.push({ ...base, hash: rowHash(base) });
    return this;
  }
  enqueued(position: number | null, extra: D = {}, at = 0) {
    return this.add('enqueued', null, 'queued', { type: 'scan', max_attempts: 3, queue_position: position, run_id: null, last_known_outcome: null, ...extra }, at);
  }
  claimed(at: number, attempt = 1, extra: D = {}) {
    return this.add('claimed', this.rows.at(-1)!.to_state, 'running', { worker_id: 'w1', attempt, lease_expires_at: formatMicros(T0 + BigInt((at + 30) * 1e6)), ...extra }, at);
  }
  progress(at: number, phase: string, done?: number, total?: number) {
    const d: D = { worker_id: 'w1', phase };
    if (done !== undefined) d.items_done = done;
    if (total !== undefined) d.items_total = total;
    return this.add('progress', 'running', 'running', d, at);
  }
  retry(at: number, backoff: number, extra: D = {}) {
    const retryAt = formatMicros(T0 + BigInt(Math.round((at + backoff) * 1e6)));
    return this.add('retry_scheduled', 'running', 'queued', { worker_id: 'w1', attempt: 1, error: { code: 'TIMEOUT', message: 'slow' }, retry_at: retryAt, backoff_seconds: backoff, ...extra }, at);
  }
  get snap() {
    return project(this.rows);
  }
}

describe('ETA for every non-terminal kind (inputs on the rows)', () => {
  it('queued: jobs ahead ÷ active workers × p50, plus the wait, plus its own run', () => {
    // Position 5: 4 ahead, shared by 2 workers → 2 runs of 120 s, then its own: 360 s.
    let s = new H().enqueued(5, eta(120, 2)).snap;
    expect(s.eta_seconds).toBe(360);
    expect(signalLine(s)).toBe('[queued] Waiting in queue (position: 5)');
    // A not-before wait comes first.
    expect(new H().enqueued(5, { ...eta(120, 2), wait_seconds: 10.5 }).snap.eta_seconds).toBe(371);
    // First in line: its own p50.
    expect(new H().enqueued(1, eta(42.2, 3)).snap.eta_seconds).toBe(43);
    // No worker active on the type lately: counted as one, not a division by zero.
    expect(new H().enqueued(3, eta(10, 0)).snap.eta_seconds).toBe(30);
    // Counts down to the snapshot's updated_at (a later row, here a priority change at +100 s).
    s = new H().enqueued(5, eta(120, 2)).add('prioritized', 'queued', 'queued', { priority: 5, actor: 'op' }, 100).snap;
    expect(s.eta_seconds).toBe(260);
  });

  it('queued behind a capped count: no ETA, rather than a lower bound passed off as one', () => {
    const s = new H().enqueued(null, { ...eta(120, 2), queue_ahead_at_least: 1000 }).snap;
    expect(s.eta_seconds).toBeNull();
    expect(signalLine(s)).toBe('[queued] Waiting in queue (more than 1000 ahead)');
  });

  it('a type with no history: ETA null and a summary that says so, never a made-up number', () => {
    let s = new H().enqueued(3, eta(null, 2, 0)).snap;
    expect(s.eta_seconds).toBeNull();
    expect(signalLine(s)).toBe('[queued] Waiting in queue (position: 3); no ETA yet: no scan job has succeeded');
    s = new H().enqueued(3, eta(null, 2, 0)).claimed(5, 1, eta(null, null, 0)).snap;
    expect(s.eta_seconds).toBeNull();
    expect(signalLine(s)).toBe('[started] Job started on w1; no ETA yet: no scan job has succeeded');
    // A row without its own inputs says nothing of history: the enqueue's may be stale (a success since).
    s = new H().enqueued(3, eta(null, 2, 0)).claimed(5).snap;
    expect(s).toMatchObject({ eta_seconds: null, summary: 'Job started on w1' });
    // Item counts need no history: the rate answers.
    s = new H().enqueued(3, eta(null, 2, 0)).claimed(0).progress(10, 'analyze', 0, 400).progress(20, 'analyze', 100, 400).snap;
    expect(s.eta_seconds).toBe(30);
    expect(s.summary).toBe('Working on analyze (25%)');
    // One sample: no rate yet, but one is coming, so no "no history" note either.
    s = new H().enqueued(3, eta(null, 2, 0)).claimed(0).progress(10, 'analyze', 0, 400).snap;
    expect(s).toMatchObject({ eta_seconds: null, summary: 'Working on analyze (0%)' });
  });

  it('the no-history note: kept through a pause and its resume, dropped by a later row without inputs', () => {
    const h = new H().enqueued(3, eta(null, 1, 0));
    const note = 'Waiting in queue (position: 3); no ETA yet: no scan job has succeeded';
    h.add('paused', 'queued', 'queued', { actor: 'op' }, 1);
    expect(h.snap.summary).toBe('Paused by op');
    h.add('resumed', 'queued', 'queued', { actor: 'op' }, 2);
    expect(h.snap.summary).toBe(note);
    h.add('prioritized', 'queued', 'queued', { priority: 9, actor: 'op' }, 3);
    expect(h.snap).toMatchObject({ eta_seconds: null, summary: 'Waiting in queue (priority 9, set by op)' });
  });

  it('started without counts: p50 minus elapsed, then 0 and "taking longer than usual"', () => {
    const h = new H().enqueued(1, eta(130, 1)).claimed(10);
    expect(h.snap.eta_seconds).toBe(130);
    expect(h.progress(70, 'fetch').snap.eta_seconds).toBe(70);
    expect(h.snap.summary).toBe('Working on fetch');
    // Exactly at p50: 0, not yet "longer".
    expect(h.progress(140, 'fetch').snap).toMatchObject({ eta_seconds: 0, summary: 'Working on fetch' });
    const s = h.progress(150, 'analyze').snap;
    expect(s.eta_seconds).toBe(0);
    expect(signalLine(s)).toBe('[phase:analyze] Working on analyze; taking longer than usual (p50 2m 10s)');
    // A claim row's own inputs win over the enqueue's (the newest p50).
    expect(new H().enqueued(1, eta(130, 1)).claimed(10, 1, eta(50)).snap.eta_seconds).toBe(50);
  });

  it('elapsed counts from this attempt\'s claim, not the first', () => {
    const h = new H().enqueued(1, eta(100, 1)).claimed(0).retry(50, 5).claimed(60, 2).progress(90, 'fetch');
    expect(h.snap.eta_seconds).toBe(70);
  });

  it('phase with counts: the rolling rate; before two samples, the p50 rule', () => {
    const h = new H().enqueued(1, eta(300, 1)).claimed(0).progress(10, 'analyze', 0, 400);
    expect(h.snap.eta_seconds).toBe(290);
    expect(h.progress(20, 'analyze', 100, 400).snap.eta_seconds).toBe(30);
  });

  it('after a retryable failure: the backoff plus the p50, or the signature\'s MTTR', () => {
    const h = new H().enqueued(1, eta(60, 1)).claimed(0).retry(7, 4);
    expect(h.snap.eta_seconds).toBe(64);
    expect(h.snap.kind).toBe('queued');
    const sig = { id: 'sig-timeout', likely_cause: 'registry slow', mttr_p50_seconds: 300 };
    expect(new H().enqueued(1, eta(60, 1)).claimed(0).retry(7, 4, { signature: sig }).snap.eta_seconds).toBe(300);
    // No history and no signature: null, said in the summary.
    const none = new H().enqueued(1, eta(null, 1, 0)).claimed(0).retry(7, 4, eta(null, null, 0)).snap;
    expect(none.eta_seconds).toBeNull();
    expect(none.summary.endsWith('; no ETA yet: no scan job has succeeded')).toBe(true);
  });

  it('blocked: the throttle wait plus the p50; paused: null; resumed: the ETA again, counted down', () => {
    const throttled = new H()
      .enqueued(1, eta(60, 1))
      .add('throttled', 'queued', 'throttled', { host: 'reg.example', throttled_until: '2025-12-04T12:00:12.200000Z', wait_seconds: 11.2, tokens: '0.5' }, 1);
    expect(throttled.snap).toMatchObject({ kind: 'blocked', eta_seconds: 72 });
    throttled.add('paused', 'throttled', 'throttled', { actor: 'op' }, 2);
    expect(throttled.snap).toMatchObject({ kind: 'blocked', eta_seconds: null });
    throttled.add('resumed', 'throttled', 'throttled', { actor: 'op' }, 11);
    expect(throttled.snap).toMatchObject({ kind: 'blocked', eta_seconds: 62 });
  });

  it('a claim, a retry, a throttle carry their own inputs: the newest p50 wins over the enqueue\'s', () => {
    // Enqueued with p50 60; the claim's row says 100 now (successes since): started counts down from 100.
    let h = new H().enqueued(1, eta(60, 1)).claimed(0, 1, eta(100));
    expect(h.progress(30, 'fetch').snap.eta_seconds).toBe(70);
    // The retry's own p50 (80) after its backoff (5).
    h = h.retry(40, 5, eta(80));
    expect(h.snap).toMatchObject({ kind: 'queued', eta_seconds: 85 });
    // A throttle row's p50 (20) after its wait (3.5 s).
    const t = new H()
      .enqueued(1, eta(60, 1))
      .add('throttled', 'queued', 'throttled', { host: 'reg.example', throttled_until: '2025-12-04T12:00:04.500000Z', wait_seconds: 3.5, tokens: '0', ...eta(20) }, 1);
    expect(t.snap).toMatchObject({ kind: 'blocked', eta_seconds: 24 });
    // No history on the throttle row: null, said so.
    const none = new H()
      .enqueued(1, eta(null, 1, 0))
      .add('throttled', 'queued', 'throttled', { host: 'reg.example', throttled_until: '2025-12-04T12:00:04.500000Z', wait_seconds: 3.5, tokens: '0', ...eta(null, null, 0) }, 1).snap;
    expect(none).toMatchObject({ kind: 'blocked', eta_seconds: null, summary: 'Throttled by reg.example: next slot in 4s; no ETA yet: no scan job has succeeded' });
  });

  it('requeued (retried by an operator, lease expired): its new place in the queue, as for an enqueue', () => {
    const failed = () => new H().enqueued(1, eta(60, 1)).claimed(0).add('dead_lettered', 'running', 'dead_letter', { error: { code: 'X', message: 'x' }, retryable: true }, 10);
    // Position 4 behind 2 workers: 3 ahead ÷ 2 × 50 + 50 = 125.
    let s = failed().add('retried', 'dead_letter', 'queued', { actor: 'op', reason: null, attempts_given_back: 1, queue_position: 4, ...eta(50, 2) }, 20).snap;
    expect(s).toMatchObject({ kind: 'queued', eta_seconds: 125 });
    expect(s.diagnostics.queue_position).toBe(4);
    // Capped: null, not a lower bound.
    s = failed().add('retried', 'dead_letter', 'queued', { actor: 'op', reason: null, attempts_given_back: 1, queue_position: null, queue_ahead_at_least: 1000, ...eta(50, 2) }, 20).snap;
    expect(s.eta_seconds).toBeNull();
    const lease = (extra: D) =>
      new H().enqueued(1, eta(60, 1)).claimed(0).add('lease_expired', 'running', 'queued', { worker_id: 'w1', attempt: 1, lease_expires_at: formatMicros(T0 + 30_000_000n), ...extra }, 30).snap;
    s = lease({ queue_position: 3, ...eta(40, 1) });
    expect(s).toMatchObject({ kind: 'queued', eta_seconds: 120, summary: 'Lease on w1 expired; requeued (attempt 1 of 3 used)' });
    expect(s.diagnostics.queue_position).toBe(3);
    // Rows written before the requeue carried inputs: the enqueue's p50 alone, as before.
    expect(lease({}).eta_seconds).toBe(60);
    // No history on the requeue's row: null, said so.
    expect(lease({ queue_position: 1, ...eta(null, 0, 0) })).toMatchObject({ eta_seconds: null, summary: 'Lease on w1 expired; requeued (attempt 1 of 3 used); no ETA yet: no scan job has succeeded' });
  });

  it('histories written before ETA inputs existed project exactly as before', () => {
    const s = new H().enqueued(3).claimed(5).progress(9, 'fetch').snap;
    expect(s).toMatchObject({ eta_seconds: null, summary: 'Working on fetch' });
    expect(new H().enqueued(3).snap).toMatchObject({ eta_seconds: null, summary: 'Waiting in queue (position: 3)' });
  });
});

describe('ETA bad input', () => {
  it('items_done beyond items_total: pinned at ETA 0 and 100 %', () => {
    const s = new H().enqueued(1, eta(300, 1)).claimed(0).progress(5, 'fetch', 10, 100).progress(6, 'fetch', 150, 100).snap;
    expect(s.eta_seconds).toBe(0);
    expect(s.summary).toBe('Working on fetch (100%)');
    // Even on the first sample, and with no history.
    expect(new H().enqueued(1, eta(null, 1, 0)).claimed(0).progress(5, 'fetch', 150, 100).snap.eta_seconds).toBe(0);
  });

  it('a clock that goes backwards: the rate window restarts, never a negative or infinite ETA', () => {
    // 100 items in 10 s, then a sample 5 s *before* the last: the rate over the window would be nonsense.
    let h = new H().enqueued(1, eta(300, 1)).claimed(0).progress(10, 'analyze', 0, 1000).progress(20, 'analyze', 100, 1000).progress(15, 'analyze', 200, 1000);
    // Window restarted at the backwards sample: one sample, so the p50 rule (300 − 15 elapsed).
    expect(h.snap.eta_seconds).toBe(285);
    h.progress(25, 'analyze', 300, 1000);
    expect(h.snap.eta_seconds).toBe(70); // 100 items in 10 s since the restart, 700 to go
    // Without ETA inputs the old rule (rate only) gives null, not a negative.
    h = new H().enqueued(1).claimed(0).progress(10, 'analyze', 0, 1000).progress(20, 'analyze', 100, 1000).progress(15, 'analyze', 200, 1000);
    expect(h.snap.eta_seconds).toBeNull();
    // A progress row stamped before the claim: elapsed is 0, not negative.
    expect(new H().enqueued(1, eta(300, 1)).claimed(50).progress(40, 'fetch').snap.eta_seconds).toBe(300);
    // A queued ETA whose later row is stamped earlier does not grow past its own value.
    expect(new H().enqueued(5, eta(120, 2), 100).add('prioritized', 'queued', 'queued', { priority: 1, actor: 'op' }, 50).snap.eta_seconds).toBe(360);
  });

  it('absurd inputs are ignored or null: negative p50, beyond MAX_ETA_SECONDS', () => {
    expect(new H().enqueued(1, eta(-5, 1)).snap.eta_seconds).toBeNull();
    expect(new H().enqueued(1e9, eta(86400, 1)).snap.eta_seconds).toBeNull();
    expect(new H().enqueued(1, { eta: 'not an object' }).snap).toMatchObject({ eta_seconds: null, summary: 'Waiting in queue (position: 1)' });
  });

  it('any sequence of samples, clocks and counts: an integer ETA in [0, MAX] or null, and replay is byte-identical', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let trial = 0; trial < 300; trial++) {
      const h = new H().enqueued(Math.floor(rnd() * 20) + 1, rnd() < 0.2 ? {} : eta(rnd() < 0.2 ? null : rnd() * 500, Math.floor(rnd() * 4)));
      let t = 10;
      h.claimed(t);
      const total = Math.floor(rnd() * 1000);
      for (let i = 0; i < 8; i++) {
        t += Math.floor(rnd() * 40) - 10; // sometimes backwards
        if (rnd() < 0.3) h.progress(t, 'analyze');
        else h.progress(t, rnd() < 0.8 ? 'analyze' : 'fetch', Math.floor(rnd() * 1200), total);
        const s = h.snap;
        if (s.eta_seconds !== null) {
          expect(Number.isInteger(s.eta_seconds)).toBe(true);
          expect(s.eta_seconds).toBeGreaterThanOrEqual(0);
          expect(s.eta_seconds).toBeLessThanOrEqual(MAX_ETA_SECONDS);
          expect(Object.is(s.eta_seconds, -0)).toBe(false);
        }
      }
      expect(canonicalize(project(h.rows) as unknown as Json)).toBe(canonicalize(project(structuredClone(h.rows)) as unknown as Json));
    }
  });
});

import { describe, expect, it } from 'vitest';
import { rowHash } from '../../src/ledger/chain.js';
import type { JobEvent, JobState } from '../../src/ledger/states.js';
import type { HistoryRow } from '../../src/ledger/types.js';
import { ETA_WINDOW, formatDuration, project } from '../../src/ledger/projection.js';
import { etagOf, signalLine, signalOf, TERMINAL_KINDS } from '../../src/signals/signal.js';
import type { Json } from '../../src/util/canonical.js';
import { formatMicros, parseMicros, SECOND } from '../../src/util/time.js';

const JOB = '00000000-0000-4000-8000-0000000000aa';
const T0 = parseMicros('2025-12-04T12:00:00.000000Z');

/** Builds a job's history the way the ledger does (positions, chain, hashes). */
class H {
  rows: HistoryRow[] = [];
  add(event: JobEvent, from: JobState | null, to: JobState, data: { [k: string]: Json }, atSeconds: number): this {
    const prev = this.rows.at(-1);
    const base = {
      tenant: 't',
      pos: String(this.rows.length + 1),
      job_id: JOB,
      n: this.rows.length + 1,
      at: formatMicros(T0 + BigInt(atSeconds * 1e6)),
      event,
      from_state: from,
      to_state: to,
      data,
      prev_hash: prev ? prev.hash : null,
    };
    this.rows.push({ ...base, hash: rowHash(base) });
    return this;
  }
  enqueued(position = 3, extra: { [k: string]: Json } = {}) {
    return this.add('enqueued', null, 'queued', { type: 'scan', max_attempts: 3, queue_position: position, run_id: null, last_known_outcome: null, ...extra }, 0);
  }
  claimed(at: number, attempt = 1) {
    return this.add('claimed', this.rows.at(-1)!.to_state, 'running', { worker_id: 'w1', attempt, lease_expires_at: formatMicros(T0 + BigInt((at + 30) * 1e6)) }, at);
  }
  progress(at: number, phase: string, done?: number, total?: number, summary?: string) {
    const d: { [k: string]: Json } = { worker_id: 'w1', phase };
    if (summary) d.summary = summary;
    if (done !== undefined) d.items_done = done;
    if (total !== undefined) d.items_total = total;
    return this.add('progress', 'running', 'running', d, at);
  }
  get snap() {
    return project(this.rows);
  }
}

describe('project: history → first signal (pure)', () => {
  it('queued: position in the queue and the last known outcome of the type', () => {
    const lko = { job_id: 'x', status: 'succeeded', finished_at: '2025-12-04T11:00:00.000000Z' };
    const s = new H().enqueued(3, { last_known_outcome: lko }).snap;
    expect(signalLine(s)).toBe('[queued] Waiting in queue (position: 3)');
    expect(s).toMatchObject({ kind: 'queued', phase: 'unknown', eta_seconds: null, last_known_outcome: lko, next_actions: null, source: 'snapshot', history_n: 1 });
    expect(s.diagnostics).toMatchObject({ job_type: 'scan', state: 'queued', queue_position: 3, attempt: 0, max_attempts: 3 });
    expect(s.created_at).toBe('2025-12-04T12:00:00.000000Z');
  });

  it('queued behind a long queue: the capped count reads as "more than N ahead"', () => {
    const s = new H().add('enqueued', null, 'queued', { type: 'scan', max_attempts: 3, queue_position: null, queue_ahead_at_least: 1000, run_id: null, last_known_outcome: null }, 0).snap;
    expect(signalLine(s)).toBe('[queued] Waiting in queue (more than 1000 ahead)');
    expect(s.diagnostics.queue_position).toBeNull();
  });

  it('throttled: blocked, with the host and when the next slot comes', () => {
    const s = new H().enqueued().add('throttled', 'queued', 'throttled', { host: 'reg.example', throttled_until: '2025-12-04T12:00:12.000000Z', wait_seconds: 11.2, tokens: '0.5' }, 1).snap;
    expect(signalLine(s)).toBe('[blocked] Throttled by reg.example: next slot in 12s');
    expect(s.diagnostics).toMatchObject({ throttled_host: 'reg.example', throttled_until: '2025-12-04T12:00:12.000000Z' });
    expect(s.next_actions).toEqual([{ label: "Wait for reg.example's rate limit; the job resumes by itself" }]);
  });

  it('claimed: started, on which worker and attempt', () => {
    expect(signalLine(new H().enqueued().claimed(5).snap)).toBe('[started] Job started on w1');
    const retry = new H().enqueued().claimed(5).add('retry_scheduled', 'running', 'queued', { worker_id: 'w1', attempt: 1, error: { code: 'TIMEOUT', message: 'slow' }, retry_at: '2025-12-04T12:00:09.000000Z', backoff_seconds: 2 }, 7);
    expect(signalLine(retry.snap)).toBe('[queued] Retry 2 of 3 at 2025-12-04T12:00:09.000000Z after TIMEOUT: slow');
    expect(retry.snap.diagnostics).toMatchObject({ retry_at: '2025-12-04T12:00:09.000000Z', last_error_code: 'TIMEOUT', worker_id: null });
    expect(signalLine(retry.claimed(9, 2).snap)).toBe('[started] Job started on w1 (attempt 2 of 3)');
  });

  it('progress: phase, summary and percentage', () => {
    const s = new H().enqueued().claimed(1).progress(2, 'analyze', 47, 100, 'Scanning image layers').snap;
    expect(signalLine(s)).toBe('[phase:analyze] Scanning image layers (47%)');
    expect(s).toMatchObject({ kind: 'phase', phase: 'analyze' });
    expect(s.diagnostics).toMatchObject({ items_done: 47, items_total: 100 });
    expect(signalLine(new H().enqueued().claimed(1).progress(2, 'fetch').snap)).toBe('[phase:fetch] Working on fetch');
    expect(new H().enqueued().claimed(1).progress(2, 'nonsense').snap.phase).toBe('unknown');
  });

  it('item counts belong to their phase: a new phase without counts shows none of the old ones', () => {
    const s = new H().enqueued().claimed(0).progress(5, 'fetch', 100, 100, 'Pulling').progress(6, 'analyze', undefined, undefined, 'Scanning').snap;
    expect(signalLine(s)).toBe('[phase:analyze] Scanning');
    expect(s.eta_seconds).toBeNull();
    expect(s.diagnostics).toMatchObject({ items_done: null, items_total: null });
    // Within one phase, a row without counts keeps the last ones.
    const t = new H().enqueued().claimed(0).progress(5, 'fetch', 10, 100).progress(6, 'fetch', undefined, undefined, 'Still pulling').snap;
    expect(signalLine(t)).toBe('[phase:fetch] Still pulling (10%)');
  });

  it('ETA from the rolling window of progress samples, pinned at 0 when done >= total', () => {
    // 10 items/s: 100 of 400 done after 10 s → 30 s to go.
    let h = new H().enqueued().claimed(0).progress(10, 'analyze', 0, 400).progress(20, 'analyze', 100, 400);
    expect(h.snap.eta_seconds).toBe(30);
    // Only the last ETA_WINDOW samples count: a slow start is forgotten.
    h = new H().enqueued().claimed(0).progress(0, 'analyze', 0, 1000);
    for (let i = 1; i <= 3; i++) h.progress(1000 * i, 'analyze', i, 1000); // 1 item per 1000 s
    let t = 3000;
    let done = 3;
    for (let i = 0; i < ETA_WINDOW; i++) h.progress((t += 1), 'analyze', (done += 10), 1000); // 10 items/s
    expect(h.snap.eta_seconds).toBe(Math.ceil((1000 - done) / 10));
    // A single sample gives no rate yet; a new phase restarts the window.
    expect(new H().enqueued().claimed(0).progress(5, 'fetch', 10, 100).snap.eta_seconds).toBeNull();
    expect(new H().enqueued().claimed(0).progress(5, 'fetch', 10, 100).progress(6, 'fetch', 20, 100).progress(7, 'analyze', 1, 100).snap.eta_seconds).toBeNull();
    // No progress at all between samples: no ETA rather than infinity.
    expect(new H().enqueued().claimed(0).progress(5, 'fetch', 10, 100).progress(6, 'fetch', 10, 100).snap.eta_seconds).toBeNull();
    // Done >= total: 0, whatever the rate.
    expect(new H().enqueued().claimed(0).progress(5, 'fetch', 100, 100).snap.eta_seconds).toBe(0);
    expect(new H().enqueued().claimed(0).progress(5, 'fetch', 120, 100).snap.eta_seconds).toBe(0);
    expect(signalLine(new H().enqueued().claimed(0).progress(5, 'fetch', 120, 100, 'Pulling').snap)).toBe('[phase:fetch] Pulling (100%)');
  });

  it('succeeded: the duration since the first claim', () => {
    const h = new H().enqueued().claimed(10).progress(60, 'report', 1, 2).add('succeeded', 'running', 'succeeded', { worker_id: 'w1', result: { findings: 3 } }, 164);
    const s = h.snap;
    expect(signalLine(s)).toBe('[succeeded] Completed in 2m 34s');
    expect(s).toMatchObject({ kind: 'succeeded', eta_seconds: 0, next_actions: null });
    expect(s.last_known_outcome).toEqual({ status: 'succeeded', finished_at: h.rows.at(-1)!.at, result: { findings: 3 } });
    expect(TERMINAL_KINDS.has(s.kind)).toBe(true);
  });

  it('failed, dead-lettered and failure signatures', () => {
    const err = { code: 'SCHEMA_MISMATCH', message: 'bad doc' };
    const f = new H().enqueued().claimed(1).add('failed', 'running', 'failed', { worker_id: 'w1', attempt: 1, error: err, retryable: false }, 2).snap;
    expect(signalLine(f)).toBe('[failed] Failed: bad doc (SCHEMA_MISMATCH)');
    expect(f.last_known_outcome).toMatchObject({ status: 'failed', error_code: 'SCHEMA_MISMATCH' });
    expect(f.next_actions).toEqual([{ label: 'Inspect the job history', command: `okit job history ${JOB}` }]);
    expect(f.source).toBe('snapshot');

    const sig = { id: 'sig-1', likely_cause: 'Truncated layer', suggested_action: 'Resync the mirror', mttr_p50_seconds: 300 };
    const g = new H().enqueued().claimed(1).add('failed', 'running', 'failed', { worker_id: 'w1', attempt: 1, error: err, retryable: false, signature: sig }, 2).snap;
    expect(g.source).toBe('failure_index');
    expect(g.last_known_outcome).toMatchObject({ likely_cause: 'Truncated layer', mttr_p50_seconds: 300, signature_id: 'sig-1' });
    expect(g.next_actions![0]).toEqual({ label: 'Resync the mirror' });

    const d = new H().enqueued().claimed(1).add('dead_lettered', 'running', 'dead_letter', { worker_id: 'w1', attempt: 1, error: err, retryable: true }, 2).snap;
    expect(signalLine(d)).toBe('[failed] Dead-lettered after 1 of 3 attempts: bad doc (SCHEMA_MISMATCH)');
    expect(d.last_known_outcome).toMatchObject({ status: 'dead_letter' });
  });

  it('lease expiry: requeued, or dead-lettered on the last attempt', () => {
    const h = new H().enqueued().claimed(1).add('lease_expired', 'running', 'queued', { worker_id: 'w1', attempt: 1, lease_expires_at: 'x' }, 40);
    expect(signalLine(h.snap)).toBe('[queued] Lease on w1 expired; requeued (attempt 1 of 3 used)');
    expect(signalLine(h.claimed(41, 2).snap)).toBe('[started] Job started on w1 (attempt 2 of 3)');
    const last = new H().enqueued(1, { max_attempts: 1 }).claimed(1).add('lease_expired', 'running', 'dead_letter', { worker_id: 'w1', attempt: 1, lease_expires_at: 'x' }, 40).snap;
    expect(signalLine(last)).toBe('[failed] Dead-lettered: lease on w1 expired on the last of 1 attempts');
    expect(last.last_known_outcome).toMatchObject({ status: 'dead_letter', error_code: 'LEASE_EXPIRED' });
  });

  it('canceled', () => {
    expect(signalLine(new H().enqueued().add('canceled', 'queued', 'canceled', { actor: 'ops', reason: 'dup' }, 1).snap)).toBe('[canceled] Canceled by ops: dup');
    expect(signalLine(new H().enqueued().add('canceled', 'queued', 'canceled', { actor: 'ops', reason: null }, 1).snap)).toBe('[canceled] Canceled by ops');
  });

  it('is pure: the same rows give the same snapshot, and the input is not modified', () => {
    const h = new H().enqueued().claimed(1).progress(2, 'analyze', 1, 4);
    const copy = JSON.parse(JSON.stringify(h.rows));
    expect(project(h.rows)).toEqual(project(copy));
    expect(h.rows).toEqual(copy);
    expect(() => project([])).toThrow(RangeError);
  });

  it('etagOf changes with every row, even rows at the same instant; signalOf strips the identity', () => {
    const h = new H().enqueued().claimed(1);
    const tags = new Set([etagOf(h.snap)]);
    for (let i = 0; i < 5; i++) {
      h.progress(1, 'analyze', i, 10); // same microsecond every time
      tags.add(etagOf(h.snap));
    }
    expect(tags.size).toBe(6);
    const s = h.snap;
    expect(etagOf(s)).toBe(`"${s.history_n}-${s.history_hash.slice(0, 16)}"`);
    expect(Object.keys(signalOf(s)).sort()).toEqual(['diagnostics', 'eta_seconds', 'kind', 'last_known_outcome', 'next_actions', 'phase', 'summary']);
  });

  it('formats durations', () => {
    expect(formatDuration(59n * SECOND)).toBe('59s');
    expect(formatDuration(154n * SECOND)).toBe('2m 34s');
    expect(formatDuration(3723n * SECOND)).toBe('1h 2m 3s');
  });
});

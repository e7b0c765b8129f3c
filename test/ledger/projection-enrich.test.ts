// Issue 14 items 3-5, the pure side: stalled marks, learned signatures shown from the confidence
// floor up (cause, MTTR, confidence; the retry ETA from the MTTR), and next_actions links.
import { describe, expect, it } from 'vitest';
import { rowHash } from '../../src/ledger/chain.js';
import { project, SIGNATURE_CONFIDENCE_FLOOR } from '../../src/ledger/projection.js';
import { signatureConfidence } from '../../src/ledger/signatures.js';
import type { JobEvent, JobState } from '../../src/ledger/states.js';
import type { HistoryRow } from '../../src/ledger/types.js';
import type { Json } from '../../src/util/canonical.js';
import { formatMicros, parseMicros } from '../../src/util/time.js';

const JOB = '00000000-0000-4000-8000-0000000000bb';
const PREV = '00000000-0000-4000-8000-0000000000aa';
const SIG = '00000000-0000-4000-8000-00000000051f';
const T0 = parseMicros('2025-12-04T12:00:00.000000Z');
const at = (s: number) => formatMicros(T0 + BigInt(Math.round(s * 1e6)));

class H {
  rows: HistoryRow[] = [];
  add(event: JobEvent, from: JobState | null, to: JobState, data: { [k: string]: Json }, s: number): this {
    const prev = this.rows.at(-1);
    const base = { tenant: 't', pos: String(this.rows.length + 1), job_id: JOB, n: this.rows.length + 1, at: at(s), event, from_state: from, to_state: to, data, prev_hash: prev ? prev.hash : null };
    this.rows.push({ ...base, hash: rowHash(base) });
    return this;
  }
  enqueued(extra: { [k: string]: Json } = {}) {
    return this.add('enqueued', null, 'queued', { type: 'scan', max_attempts: 3, queue_position: 1, run_id: null, last_known_outcome: null, eta: { p50_seconds: 100, samples: 5, workers: 1 }, ...extra }, 0);
  }
  claimed(s: number, attempt = 1) {
    return this.add('claimed', this.rows.at(-1)!.to_state, 'running', { worker_id: 'w7', attempt, lease_expires_at: at(s + 30) }, s);
  }
  progress(s: number, phase: string, done?: number, total?: number) {
    const d: { [k: string]: Json } = { worker_id: 'w7', phase };
    if (done !== undefined) d.items_done = done;
    if (total !== undefined) d.items_total = total;
    return this.add('progress', 'running', 'running', d, s);
  }
  stalled(s: number) {
    return this.add('stalled', 'running', 'running', { stall_after_seconds: 60, last_progress_at: this.rows.at(-1)!.at }, s);
  }
  get snap() {
    return project(this.rows);
  }
}

const learned = (n: number, confidence: number, extra: { [k: string]: Json } = {}): { [k: string]: Json } => ({
  id: SIG,
  sample_count: n,
  last_seen: at(0),
  confidence,
  mttr_samples: 3,
  learned: { type: 'scan', phase: 'fetch', error_code: 'E_FETCH' },
  ...extra,
});

describe('stalled (projection)', () => {
  it('keeps the kind, says how long and the last progress, and sets diagnostics.is_stalled', () => {
    const h = new H().enqueued().claimed(1).progress(10, 'analyze', 47, 100).stalled(85);
    const s = h.snap;
    expect(s.kind).toBe('phase');
    expect(s.phase).toBe('analyze');
    expect(s.summary).toBe('No progress for 1m 15s (last: analyze 47%)');
    expect(s.diagnostics).toMatchObject({ is_stalled: true, stalled_for_seconds: 75, last_progress_at: at(10), items_done: 47, items_total: 100 });
  });

  it('a job stalled before any progress names its worker', () => {
    const s = new H().enqueued().claimed(1).stalled(62).snap;
    expect(s.kind).toBe('started');
    expect(s.summary).toBe('No progress for 1m 1s (last: started on w7)');
    expect(s.diagnostics.is_stalled).toBe(true);
  });

  it('the next progress clears it; a second silence is a new mark', () => {
    const h = new H().enqueued().claimed(1).progress(10, 'analyze', 47, 100).stalled(85).progress(90, 'analyze', 50, 100);
    expect(h.snap.summary).toBe('Working on analyze (50%)');
    expect(h.snap.diagnostics.is_stalled).toBeUndefined();
    expect(h.snap.diagnostics.stalled_for_seconds).toBeUndefined();
    h.stalled(200);
    expect(h.snap.summary).toBe('No progress for 1m 50s (last: analyze 50%)');
  });

  it('finishing clears it', () => {
    const h = new H().enqueued().claimed(1).stalled(70).add('succeeded', 'running', 'succeeded', { worker_id: 'w7' }, 80);
    expect(h.snap.kind).toBe('succeeded');
    expect(h.snap.diagnostics.is_stalled).toBeUndefined();
  });
});

describe('learned signatures (projection)', () => {
  const fail = (sig: { [k: string]: Json }) =>
    new H().enqueued().claimed(1).progress(5, 'fetch').add('failed', 'running', 'failed', { worker_id: 'w7', attempt: 1, error: { code: 'E_FETCH', message: 'timeout' }, retryable: false, signature: sig }, 20).snap;

  it('a learned signature from the floor up shows MTTR, confidence and sample count', () => {
    const c = signatureConfidence(8, 0);
    expect(c).toBeGreaterThanOrEqual(SIGNATURE_CONFIDENCE_FLOOR);
    const s = fail(learned(8, c, { mttr_p50_seconds: 240 }));
    expect(s.source).toBe('failure_index');
    expect(s.summary).toBe('Failed: timeout (E_FETCH)');
    expect(s.last_known_outcome).toMatchObject({ signature_id: SIG, mttr_p50_seconds: 240, confidence: c, sample_count: 8 });
    expect(s.diagnostics.failure_signature).toEqual({ id: SIG, likely_cause: null, mttr_p50_seconds: 240, confidence: c, sample_count: 8, learned: true });
  });

  it('below the floor it is not shown', () => {
    const c = signatureConfidence(2, 0);
    expect(c).toBeLessThan(SIGNATURE_CONFIDENCE_FLOOR);
    const s = fail(learned(2, c, { mttr_p50_seconds: 240 }));
    expect(s.source).toBe('snapshot');
    expect(s.summary).toBe('Failed: timeout (E_FETCH)');
    expect(s.diagnostics.failure_signature).toBeUndefined();
    expect(s.last_known_outcome).not.toHaveProperty('signature_id');
  });

  it("an operator's signature is shown at any confidence, with its own cause and action", () => {
    const s = fail({ id: SIG, likely_cause: 'mirror out of sync', suggested_action: 'Resync the mirror', mttr_p50_seconds: 90, sample_count: 1, last_seen: at(20), confidence: 0.181, mttr_samples: 0 });
    expect(s.summary).toBe('Failed: timeout (E_FETCH)');
    expect(s.last_known_outcome).toMatchObject({ likely_cause: 'mirror out of sync', mttr_p50_seconds: 90, confidence: 0.181 });
    expect(s.next_actions![0]).toEqual({ label: 'Resync the mirror' });
  });

  it("a retry's ETA is the signature's MTTR when shown, else backoff + p50", () => {
    const retry = (sig: { [k: string]: Json } | null) =>
      new H()
        .enqueued()
        .claimed(1)
        .add('retry_scheduled', 'running', 'queued', { worker_id: 'w7', attempt: 1, error: { code: 'E_FETCH', message: 'timeout' }, retry_at: at(14), backoff_seconds: 4, ...(sig ? { signature: sig } : {}) }, 10).snap;
    const shown = retry(learned(6, signatureConfidence(6, 0), { mttr_p50_seconds: 300 }));
    expect(shown.eta_seconds).toBe(300);
    expect(shown.diagnostics.failure_signature).toMatchObject({ mttr_p50_seconds: 300, sample_count: 6 });
    expect(shown.summary).toContain('; seen 6 times, MTTR 5m 0s');
    expect(retry(learned(1, signatureConfidence(1, 0), { mttr_p50_seconds: 300 })).eta_seconds).toBe(104);
    expect(retry(null).eta_seconds).toBe(104);
    const op = retry({ id: SIG, likely_cause: 'mirror out of sync', mttr_p50_seconds: 90, sample_count: 1, last_seen: at(10), confidence: 0.181, mttr_samples: 0 });
    expect(op.summary).toMatch(/ after E_FETCH: timeout; likely cause: mirror out of sync \(seen 1 time, MTTR 1m 30s\)$/);
    expect(op.eta_seconds).toBe(90);
  });

  it('the confidence formula: (1 − e^(−n/5)) × 2^(−age_days/14), 3 decimals', () => {
    expect(signatureConfidence(1, 0)).toBe(0.181);
    expect(signatureConfidence(5, 0)).toBe(0.632);
    expect(signatureConfidence(15, 0)).toBe(0.95);
    expect(signatureConfidence(15, 14)).toBe(0.475);
    expect(signatureConfidence(0, 0)).toBe(0);
  });
});

describe('links (projection)', () => {
  it('next_actions carry href: the job history, the run, and the previous run of the type', () => {
    const h = new H().enqueued({ run_id: 'r-1', last_known_outcome: { job_id: PREV, status: 'succeeded', finished_at: at(-5) } });
    expect(h.snap.next_actions).toEqual([
      { label: 'View the run', href: '/runs/r-1' },
      { label: 'View previous run', command: `okit job get ${PREV}`, href: `/jobs/${PREV}` },
    ]);
    h.claimed(1).add('failed', 'running', 'failed', { worker_id: 'w7', attempt: 1, error: { code: 'E', message: 'x' }, retryable: false }, 3);
    expect(h.snap.next_actions).toEqual([
      { label: 'Inspect the job history', command: `okit job history ${JOB}`, href: `/jobs/${JOB}` },
      { label: 'View the run', href: '/runs/r-1' },
      { label: 'View previous run', command: `okit job get ${PREV}`, href: `/jobs/${PREV}` },
    ]);
  });

  it('rows written before issue 14 (no `eta` on the enqueued row) get no links: old bundles replay unchanged', () => {
    const h = new H().enqueued({ eta: null, run_id: 'r-1', last_known_outcome: { job_id: PREV, status: 'succeeded', finished_at: at(-5) } });
    expect(h.snap.next_actions).toBeNull();
    h.claimed(1).add('failed', 'running', 'failed', { worker_id: 'w7', attempt: 1, error: { code: 'E', message: 'x' }, retryable: false }, 3);
    expect(h.snap.next_actions).toEqual([{ label: 'Inspect the job history', command: `okit job history ${JOB}` }]);
  });

  it('no run and no previous job: no links added', () => {
    expect(new H().enqueued().claimed(1).snap.next_actions).toBeNull();
  });
});

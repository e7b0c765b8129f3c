import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../src/ledger/ledger.js';
import type { ManualClock } from '../../src/util/clock.js';
import { formatMicros, parseMicros, SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { ledgerAt } from '../helpers/ledger.js';

const TEN = 'retry';
const W = 'w1';

describe('retries with backoff and jitter', () => {
  let db: TestDb;
  let ledger: Ledger;
  let clock: ManualClock;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger, clock } = ledgerAt(db.pool, { backoffBaseSeconds: 2, backoffCapSeconds: 60 }));
  });
  afterAll(async () => {
    await db.drop();
  });

  it('backoff is base·2^(attempt-1), capped, within ±10 % jitter, the same for the same job and attempt', () => {
    const id = '00000000-0000-4000-8000-000000000042';
    const other = new Ledger(db.pool, { backoffBaseSeconds: 2, backoffCapSeconds: 60 });
    const seen = new Set<bigint>();
    for (let attempt = 1; attempt <= 8; attempt++) {
      const raw = Math.min(60, 2 * 2 ** (attempt - 1)) * 1e6;
      const d = ledger.backoffMicros(id, attempt);
      expect(Number(d)).toBeGreaterThanOrEqual(raw * 0.9);
      expect(Number(d)).toBeLessThanOrEqual(raw * 1.1);
      expect(other.backoffMicros(id, attempt)).toBe(d);
      seen.add(d);
    }
    expect(seen.size).toBe(8);
    // Different jobs get different jitter on the same attempt.
    const jitters = new Set(Array.from({ length: 20 }, (_, i) => ledger.backoffMicros(`00000000-0000-4000-8000-0000000000${String(i).padStart(2, '0')}`, 1)));
    expect(jitters.size).toBeGreaterThan(15);
  });

  it('a retryable failure requeues with retry_at = now + backoff; not claimable before retry_at, claimable at it', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'r', maxAttempts: 3 });
    await ledger.claim(TEN, { workerId: W, types: ['r'] });
    for (let attempt = 1; attempt <= 2; attempt++) {
      const now = clock.now();
      const snap = await ledger.fail(TEN, job.id, W, { code: 'FETCH_TIMEOUT', message: 'timed out' });
      const delay = ledger.backoffMicros(job.id, attempt);
      const retryAt = formatMicros(now + delay);
      const row = (await ledger.history(TEN, job.id)).at(-1)!;
      expect(row).toMatchObject({ event: 'retry_scheduled', from_state: 'running', to_state: 'queued' });
      expect(row.data).toEqual({
        worker_id: W,
        attempt,
        error: { code: 'FETCH_TIMEOUT', message: 'timed out' },
        retry_at: retryAt,
        backoff_seconds: Number(delay) / 1e6,
        // Issue 14: every failure learns; no operator signature matches, so a learned one (below the floor: not shown).
        signature: expect.objectContaining({ sample_count: attempt, learned: { type: 'r', phase: 'unknown', error_code: 'FETCH_TIMEOUT' } }),
        eta: { p50_seconds: null, samples: 0 },
      });
      expect(Math.abs(Number(delay) - 2 * 2 ** (attempt - 1) * 1e6)).toBeLessThanOrEqual(0.1 * 2 * 2 ** (attempt - 1) * 1e6);
      expect(snap).toMatchObject({ kind: 'queued', summary: `Retry ${attempt + 1} of 3 at ${retryAt} after FETCH_TIMEOUT: timed out; no ETA yet: no r job has succeeded`, eta_seconds: null });
      expect((await ledger.getJob(TEN, job.id)).not_before).toBe(retryAt);

      clock.set(parseMicros(retryAt) - 1n);
      expect(await ledger.claim(TEN, { workerId: W, types: ['r'] })).toBeNull();
      clock.set(parseMicros(retryAt));
      const c = await ledger.claim(TEN, { workerId: W, types: ['r'] });
      expect(c).toMatchObject({ attempt: attempt + 1 });
    }
    // The third attempt was the last: a retryable failure now dead-letters.
    const last = await ledger.fail(TEN, job.id, W, { code: 'FETCH_TIMEOUT', message: 'timed out' });
    expect((await ledger.getJob(TEN, job.id)).state).toBe('dead_letter');
    expect(last.summary).toBe('Dead-lettered after 3 of 3 attempts: timed out (FETCH_TIMEOUT)');
    expect((await ledger.history(TEN, job.id)).at(-1)!.data.retryable).toBe(true);
  });

  it('a non-retryable failure is terminal at once', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'nr', maxAttempts: 5 });
    await ledger.claim(TEN, { workerId: W, types: ['nr'] });
    const s = await ledger.fail(TEN, job.id, W, { code: 'SCHEMA_MISMATCH', message: 'bad doc', retryable: false });
    expect(s).toMatchObject({ kind: 'failed', source: 'snapshot', summary: 'Failed: bad doc (SCHEMA_MISMATCH)' });
    expect(s.last_known_outcome).toMatchObject({ status: 'failed', error_code: 'SCHEMA_MISMATCH' });
    expect((await ledger.getJob(TEN, job.id))).toMatchObject({ state: 'failed', attempt: 1 });
  });

  it('a failure matching a signature gets the likely cause (snapshot source failure_index)', async () => {
    const sigId = await ledger.addFailureSignature(TEN, {
      pattern: { error_code: 'LAYER_EXTRACT_FAILED', phase: 'fetch' },
      outcome: { likely_cause: 'Registry returned a truncated layer', suggested_action: 'Retry after the mirror resyncs', mttr_p50_seconds: 300 },
      confidence: 0.9,
    });
    const { job } = await ledger.enqueue(TEN, { type: 'sig' });
    await ledger.claim(TEN, { workerId: W, types: ['sig'] });
    await ledger.progress(TEN, job.id, W, { phase: 'fetch', summary: 'Pulling layers' });
    const s = await ledger.fail(TEN, job.id, W, { code: 'LAYER_EXTRACT_FAILED', message: 'layer 3', retryable: false });
    expect(s.source).toBe('failure_index');
    expect(s.last_known_outcome).toMatchObject({ likely_cause: 'Registry returned a truncated layer', mttr_p50_seconds: 300, signature_id: sigId });
    expect(s.next_actions?.[0]).toEqual({ label: 'Retry after the mirror resyncs' });
    expect((await ledger.getSnapshot(TEN, job.id)).source).toBe('failure_index');

    // Same code in another phase: the pattern does not match.
    const { job: j2 } = await ledger.enqueue(TEN, { type: 'sig' });
    await ledger.claim(TEN, { workerId: W, types: ['sig'] });
    await ledger.progress(TEN, j2.id, W, { phase: 'analyze' });
    const s2 = await ledger.fail(TEN, j2.id, W, { code: 'LAYER_EXTRACT_FAILED', message: 'layer 3', retryable: false });
    expect(s2.source).toBe('snapshot');
  });

  it('adding a known pattern again updates that signature and returns its id', async () => {
    const pattern = { error_code: 'DISK_FULL' };
    const first = await ledger.addFailureSignature(TEN, { pattern, outcome: { likely_cause: 'disk full' } });
    const again = await ledger.addFailureSignature(TEN, { pattern, outcome: { likely_cause: 'the scratch disk is full' } });
    expect(again).toBe(first);
    const { rows } = await db.pool.query('SELECT id, outcome FROM okit.failure_signatures WHERE tenant = $1 AND pattern = $2::jsonb', [TEN, JSON.stringify(pattern)]);
    expect(rows).toHaveLength(1);
    expect(rows[0].id).toBe(first);
    expect(JSON.parse(rows[0].outcome).likely_cause).toBe('the scratch disk is full');
  });
});

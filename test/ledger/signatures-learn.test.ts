// Issue 14 item 3: failure signatures learn from every failure; what they learn is on the
// failure's history row, and migration 015's triggers keep okit.failure_signatures in step.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import { learnedSignatureId, learnSignature, MAX_LEARNED_SIGNATURES, signatureConfidence } from '../../src/ledger/signatures.js';
import type { SignatureRow } from '../../src/ledger/batch.js';
import type { ManualClock } from '../../src/util/clock.js';
import { SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { ledgerAt } from '../helpers/ledger.js';

const TEN = 'learn';
const W = 'w1';
const DAY = 86_400n * SECOND;

describe('failure signatures that learn', () => {
  let db: TestDb;
  let ledger: Ledger;
  let clock: ManualClock;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger, clock } = ledgerAt(db.pool, { defaultLeaseSeconds: 3600 }));
  });
  afterAll(async () => {
    await db.drop();
  });

  /** One job of `type` that fails once in `phase` with `code` (retryable: it is requeued); answers its job id. */
  const failOnce = async (type: string, code: string, phase = 'fetch', maxAttempts = 3) => {
    await ledger.enqueue(TEN, { type, maxAttempts });
    // The oldest claimable job of the type (an earlier one's retry, once due, comes first).
    const { job } = (await ledger.claim(TEN, { workerId: W, types: [type] }))!;
    await ledger.progress(TEN, job.id, W, { phase });
    await ledger.fail(TEN, job.id, W, { code, message: 'upstream timed out' });
    return job.id;
  };
  const succeedOne = async (type: string) => {
    await ledger.enqueue(TEN, { type });
    const { job } = (await ledger.claim(TEN, { workerId: W, types: [type] }))!;
    await ledger.complete(TEN, job.id, W);
    return job.id;
  };

  it('with no signature matching, learns one keyed type:phase:error_code: count, last_seen, confidence, MTTR', async () => {
    const key = { type: 'fetcher', phase: 'fetch', error_code: 'E_TIMEOUT' };
    const id = learnedSignatureId(TEN, key);
    const first = await failOnce('fetcher', 'E_TIMEOUT');
    let row = (await ledger.history(TEN, first)).at(-1)!;
    expect(row.event).toBe('retry_scheduled');
    expect(row.data.signature).toEqual({ id, sample_count: 1, last_seen: row.at, confidence: 0.181, mttr_samples: 0, learned: key });
    // The table follows the row (trigger), with no operator text.
    let sig = await ledger.getSignature(TEN, id);
    expect(sig).toMatchObject({ learned_key: key, sample_count: 1, last_seen: row.at, confidence: 0.181, learned_confidence: 0.181, mttr_p50_seconds: null, outcome: {} });

    // A success of the same type 120 s after the failure: one MTTR sample of 120 s.
    clock.advance(120n * SECOND);
    await succeedOne('fetcher');
    expect((await ledger.getSignature(TEN, id)).mttr_p50_seconds).toBe(120);

    // Three more failures: count 4 (0.551, above the floor), the MTTR on the row, the retry ETA from it.
    let last = '';
    for (let i = 0; i < 3; i++) {
      clock.advance(SECOND);
      last = await failOnce('fetcher', 'E_TIMEOUT');
    }
    row = (await ledger.history(TEN, last)).at(-1)!;
    expect(row.data.signature).toMatchObject({ id, sample_count: 4, confidence: signatureConfidence(4, 0), mttr_p50_seconds: 120, mttr_samples: 1 });
    const snap = await ledger.getSnapshot(TEN, last);
    expect(snap.kind).toBe('queued');
    expect(snap.eta_seconds).toBe(120);
    expect(snap.diagnostics.failure_signature).toEqual({ id, likely_cause: null, mttr_p50_seconds: 120, confidence: 0.551, sample_count: 4, learned: true });
    expect(snap.summary).toContain('; seen 4 times, MTTR 2m 0s');
    sig = await ledger.getSignature(TEN, id);
    expect(sig).toMatchObject({ sample_count: 4, confidence: 0.551 });

    // Recency: seen again after 14 days of silence, the confidence halves (then recovers).
    clock.advance(14n * DAY);
    const late = await failOnce('fetcher', 'E_TIMEOUT');
    expect((await ledger.history(TEN, late)).at(-1)!.data.signature).toMatchObject({ sample_count: 5, confidence: signatureConfidence(5, 14) });
    expect(signatureConfidence(5, 14)).toBe(0.316);
  });

  it("an operator's signature learns counts and MTTR; its text and ranking are never overwritten", async () => {
    const { signature: op } = await ledger.addSignature(TEN, {
      pattern: { type: 'builder', error_code: 'E_DISK' },
      outcome: { likely_cause: 'the build disk is full', suggested_action: 'Prune the build cache', mttr_p50_seconds: 600 },
      confidence: 0.9,
    });
    const { job } = await ledger.enqueue(TEN, { type: 'builder', maxAttempts: 1 });
    await ledger.claim(TEN, { workerId: W, types: ['builder'] });
    const s1 = await ledger.fail(TEN, job.id, W, { code: 'E_DISK', message: 'no space left' });
    // Before any learned MTTR, the operator's.
    expect(s1.source).toBe('failure_index');
    expect(s1.last_known_outcome).toMatchObject({ signature_id: op.id, likely_cause: 'the build disk is full', mttr_p50_seconds: 600, sample_count: 1, confidence: 0.181 });
    expect(s1.summary).toBe('Dead-lettered after 1 of 1 attempts: no space left (E_DISK)');
    expect(s1.next_actions![0]).toEqual({ label: 'Prune the build cache' });
    clock.advance(30n * SECOND);
    await succeedOne('builder');
    clock.advance(SECOND);
    const { job: j2 } = await ledger.enqueue(TEN, { type: 'builder', maxAttempts: 1 });
    await ledger.claim(TEN, { workerId: W, types: ['builder'] });
    const s2 = await ledger.fail(TEN, j2.id, W, { code: 'E_DISK', message: 'no space left' });
    // The learned MTTR (30 s) now, the operator's text as written.
    expect(s2.last_known_outcome).toMatchObject({ likely_cause: 'the build disk is full', mttr_p50_seconds: 30, sample_count: 2 });
    const stored = await ledger.getSignature(TEN, op.id);
    expect(stored).toMatchObject({
      outcome: { likely_cause: 'the build disk is full', suggested_action: 'Prune the build cache', mttr_p50_seconds: 600 },
      confidence: 0.9,
      learned_confidence: 0.33,
      sample_count: 2,
      mttr_p50_seconds: 30,
      learned_key: null,
    });
  });

  it('failures in one batch each count (the batch keeps its in-memory copy in step)', async () => {
    const jobs = await ledger.enqueueMany(TEN, Array.from({ length: 5 }, () => ({ type: 'burst', maxAttempts: 3 })));
    const claimed = await ledger.claim(TEN, { workerId: W, types: ['burst'], limit: 5 });
    expect(claimed).toHaveLength(5);
    await Promise.all(claimed.map((c) => ledger.fail(TEN, c.job.id, W, { code: 'E_BURST', message: 'x' })));
    const counts = await Promise.all(jobs.map(async (j) => (await ledger.history(TEN, j.job.id)).at(-1)!.data.signature as { sample_count: number }));
    expect(counts.map((c) => c.sample_count).sort()).toEqual([1, 2, 3, 4, 5]);
    const id = learnedSignatureId(TEN, { type: 'burst', phase: 'unknown', error_code: 'E_BURST' });
    expect((await ledger.getSignature(TEN, id)).sample_count).toBe(5);
  });

  it('a retired learned signature is not learned again', async () => {
    const id = learnedSignatureId(TEN, { type: 'retiring', phase: 'unknown', error_code: 'E_GONE' });
    const failNoPhase = async () => {
      await ledger.enqueue(TEN, { type: 'retiring', maxAttempts: 1 });
      const c = (await ledger.claim(TEN, { workerId: W, types: ['retiring'] }))!;
      await ledger.fail(TEN, c.job.id, W, { code: 'E_GONE', message: 'x' });
      return (await ledger.history(TEN, c.job.id)).at(-1)!;
    };
    expect((await failNoPhase()).data.signature).toMatchObject({ id, sample_count: 1 });
    await ledger.retireSignature(TEN, id, 'token:ops');
    expect((await failNoPhase()).data.signature).toBeUndefined();
    expect(await ledger.getSignature(TEN, id)).toMatchObject({ sample_count: 1, enabled: false });
  });

  it('learned signatures are bounded per tenant: past the cap a new failure kind is recorded without one', () => {
    const facts = (code: string) => ({ type: 't', phase: 'unknown', error_code: code, payload: {} });
    const sigs: SignatureRow[] = [];
    for (let i = 0; i < MAX_LEARNED_SIGNATURES; i++) expect(learnSignature(sigs, TEN, facts(`E${i}`), 1n, 'x')).not.toBeNull();
    expect(learnSignature(sigs, TEN, facts('E_NEW'), 2n, 'x')).toBeNull();
    // A known one still learns.
    expect(learnSignature(sigs, TEN, facts('E7'), 3n, 'x')).toMatchObject({ sample_count: 2 });
    expect(sigs).toHaveLength(MAX_LEARNED_SIGNATURES);
  });
});

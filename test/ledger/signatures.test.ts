/** Failure signatures: validation (RE2, bounds), matching by type, phase, error code and payload regexes, retire. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import { patternMatches, validatePattern } from '../../src/ledger/signatures.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectCode, ledgerAt } from '../helpers/ledger.js';

const TEN = 'acme';
const W = 'w1';

describe('failure signatures', () => {
  let db: TestDb;
  let ledger: Ledger;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger } = ledgerAt(db.pool));
  });
  afterAll(async () => db.drop());

  it('refuses invalid and unsafe patterns with the RE2 error, and unknown fields', async () => {
    const e = await expectCode(async () => validatePattern({ payload: { image: '(a' } }), 'INVALID_INPUT');
    expect(e.message).toContain('pattern.payload.image: not a valid RE2 regex: missing ): (a');
    expect((await expectCode(async () => validatePattern({ payload: { image: '(a)\\1' } }), 'INVALID_INPUT')).message).toContain('invalid escape sequence');
    expect((await expectCode(async () => validatePattern({ payload: { image: '(?=a)' } }), 'INVALID_INPUT')).message).toContain('RE2');
    await expectCode(async () => validatePattern({ payload: { image: 'a'.repeat(257) } }), 'INVALID_INPUT');
    await expectCode(async () => validatePattern({}), 'INVALID_INPUT');
    await expectCode(async () => validatePattern({ image_pattern: 'x' }), 'INVALID_INPUT');
    await expectCode(async () => validatePattern({ phase: 'nope' }), 'INVALID_INPUT');
    await expectCode(async () => validatePattern({ payload: { 'a..b': 'x' } }), 'INVALID_INPUT');
  });

  it('a catastrophic-backtracking pattern matches in linear time (RE2)', () => {
    const p = validatePattern({ payload: { s: '^(a+)+$' } }) as Record<string, never>;
    const t0 = performance.now();
    expect(patternMatches(p, { type: 't', phase: 'unknown', error_code: 'E', payload: { s: 'a'.repeat(50_000) + '!' } })).toBe(false);
    // A backtracking engine takes longer than the age of the universe on this input; RE2 is linear.
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('matches type, phase, error code and payload regexes (dotted paths); the most confident wins; retired ones never match', async () => {
    const { signature: broad } = await ledger.addSignature(TEN, { pattern: { error_code: 'LAYER' }, outcome: { likely_cause: 'broad' }, confidence: 0.3 });
    const { signature: narrow, created } = await ledger.addSignature(TEN, {
      pattern: { type: 'scan', error_code: 'LAYER', payload: { 'image.ref': '^registry\\.example/legacy:' } },
      outcome: { likely_cause: 'legacy image', suggested_action: 'rebuild it', mttr_p50_seconds: 60 },
      confidence: 0.9,
      actor: 'token:x',
    });
    expect(created).toBe(true);
    const fail = async (image: string) => {
      const { job } = await ledger.enqueue(TEN, { type: 'scan', payload: { image: { ref: image } }, maxAttempts: 1 });
      await ledger.claim(TEN, { workerId: W, types: ['scan'] });
      await ledger.progress(TEN, job.id, W, { phase: 'analyze' });
      const s = await ledger.fail(TEN, job.id, W, { code: 'LAYER', message: 'bad layer', retryable: false });
      return s.last_known_outcome;
    };
    expect(await fail('registry.example/legacy:0.9')).toMatchObject({ signature_id: narrow.id, likely_cause: 'legacy image', mttr_p50_seconds: 60 });
    expect(await fail('registry.example/app:1.0')).toMatchObject({ signature_id: broad.id });
    await ledger.retireSignature(TEN, narrow.id, 'token:x');
    expect(await fail('registry.example/legacy:1.0')).toMatchObject({ signature_id: broad.id });
    const list = await ledger.listSignatures(TEN);
    expect(list.map((s) => s.id)).toEqual([broad.id]);
    const all = await ledger.listSignatures(TEN, { includeRetired: true });
    // It learned from its one match; its operator confidence (the ranking) is kept.
    expect(all.find((s) => s.id === narrow.id)).toMatchObject({ retired_by: 'token:x', enabled: false, sample_count: 1, confidence: 0.9, learned_confidence: 0.181, learned_key: null });
    // The same pattern again brings it back with its id.
    const again = await ledger.addSignature(TEN, { pattern: narrow.pattern, outcome: { likely_cause: 'legacy image, again' } });
    expect(again).toMatchObject({ created: false, signature: { id: narrow.id, retired_at: null } });
    await expectCode(() => ledger.retireSignature('other', narrow.id, 'token:y'), 'SIGNATURE_NOT_FOUND');
    await expectCode(() => ledger.getSignature('other', narrow.id), 'SIGNATURE_NOT_FOUND');
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import { MAX_PAYLOAD_BYTES } from '../../src/ledger/validate.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectRefused, ledgerAt } from '../helpers/ledger.js';

const TEN = 'bad';
const W = 'w1';

describe('bad input: typed errors, never a crash, never half-written', () => {
  let db: TestDb;
  let ledger: Ledger;
  let jobId: string;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger } = ledgerAt(db.pool));
    jobId = (await ledger.enqueue(TEN, { type: 'scan' })).job.id;
    await ledger.claim(TEN, { workerId: W, types: ['scan'] });
  });
  afterAll(async () => {
    await db.drop();
  });

  const refused = (fn: () => Promise<unknown>, code = 'INVALID_INPUT') => expectRefused(db.pool, TEN, fn, code);

  it('malformed and unknown job ids', async () => {
    for (const id of ['nope', '', 'ABCDEF00-0000-4000-8000-000000000000', "'; DROP TABLE okit.jobs; --", jobId + 'x']) {
      await refused(() => ledger.getJob(TEN, id));
      await refused(() => ledger.progress(TEN, id, W, { phase: 'fetch' }));
      await refused(() => ledger.cancel(TEN, id, { actor: 'ops' }));
      await refused(() => ledger.heartbeat(TEN, id, W));
    }
    const unknown = '11111111-1111-4111-8111-111111111111';
    await refused(() => ledger.complete(TEN, unknown, W), 'JOB_NOT_FOUND');
    await refused(() => ledger.cancel(TEN, unknown, { actor: 'ops' }), 'JOB_NOT_FOUND');
    await refused(() => ledger.getSnapshot(TEN, unknown), 'JOB_NOT_FOUND');
  });

  it('malformed tenants, types, workers, phases, numbers', async () => {
    await refused(() => ledger.enqueue('Bad Tenant', { type: 'scan' }));
    await refused(() => ledger.enqueue(TEN, { type: '' }));
    await refused(() => ledger.enqueue(TEN, { type: 'has space' }));
    await refused(() => ledger.enqueue(TEN, { type: 'scan', priority: 1.5 }));
    await refused(() => ledger.enqueue(TEN, { type: 'scan', priority: 5000 }));
    await refused(() => ledger.enqueue(TEN, { type: 'scan', maxAttempts: 0 }));
    await refused(() => ledger.enqueue(TEN, { type: 'scan', notBefore: 'tomorrow' }));
    await refused(() => ledger.enqueue(TEN, { type: 'scan', notBefore: '2025-02-30T00:00:00Z' }));
    await refused(() => ledger.enqueue(TEN, { type: 'scan', sourceId: 'x' }));
    await refused(() => ledger.enqueue(TEN, { type: 'scan', sourceId: '11111111-1111-4111-8111-111111111111' }), 'SOURCE_NOT_FOUND');
    await refused(() => ledger.claim(TEN, { workerId: 'bad worker', types: ['scan'] }));
    await refused(() => ledger.claim(TEN, { workerId: W, types: [] }));
    await refused(() => ledger.claim(TEN, { workerId: W, types: ['scan'], leaseSeconds: 0 }));
    await refused(() => ledger.progress(TEN, jobId, W, { phase: 'dance' }));
    await refused(() => ledger.progress(TEN, jobId, W, { phase: 'fetch', itemsDone: -1 }));
    await refused(() => ledger.progress(TEN, jobId, W, { phase: 'fetch', summary: 'x'.repeat(501) }));
    await refused(() => ledger.fail(TEN, jobId, W, { code: 'has space', message: 'x' }));
    await refused(() => ledger.fail(TEN, jobId, W, { code: 'X', message: '' }));
    await refused(() => ledger.fail(TEN, jobId, W, { code: 'X', message: 'x', retryable: 'yes' as unknown as boolean }));
    await refused(() => ledger.complete(TEN, jobId, W, [1, 2]));
    await refused(() => ledger.complete(TEN, jobId, W, { big: 'x'.repeat(5000) }));
    await refused(() => ledger.cancel(TEN, jobId, { actor: '' }));
  });

  it('payloads JSON cannot carry exactly, or too large', async () => {
    // Every finite double is exact JSON (number policy (a), docs/bundle-format.md §2): 2 ** 60 is accepted.
    await refused(() => ledger.enqueue(TEN, { type: 'scan', payload: { n: 10n } }));
    await refused(() => ledger.enqueue(TEN, { type: 'scan', payload: { n: NaN } }));
    await refused(() => ledger.enqueue(TEN, { type: 'scan', payload: { d: new Date(0) } }));
    await refused(() => ledger.enqueue(TEN, { type: 'scan', payload: { blob: 'x'.repeat(MAX_PAYLOAD_BYTES) } }));
  });

  it('strings Postgres cannot store (NUL, lone surrogates) are INVALID_INPUT, not a database error', async () => {
    for (const s of ['a\u0000b', 'a\ud800b', '\udc00']) {
      await refused(() => ledger.enqueue(TEN, { type: 'scan', payload: { s } }));
      await refused(() => ledger.enqueue(TEN, { type: 'scan', payload: { [s]: 1 } }));
      await refused(() => ledger.enqueue(TEN, { type: 'scan', idempotencyKey: s }));
      await refused(() => ledger.progress(TEN, jobId, W, { phase: 'fetch', summary: s }));
      await refused(() => ledger.fail(TEN, jobId, W, { code: 'X', message: s }));
      await refused(() => ledger.complete(TEN, jobId, W, { s }));
      await refused(() => ledger.cancel(TEN, jobId, { actor: 'ops', reason: s }));
      await refused(() => ledger.createSource(TEN, { name: s, host: 'h.example' }));
    }
    // A well-formed astral character is fine.
    const { job } = await ledger.enqueue(TEN, { type: 'scan', payload: { s: '\ud83d\ude00' } });
    expect(job.payload).toEqual({ s: '\ud83d\ude00' });
  });

  it('a job id given twice is refused', async () => {
    await refused(() => ledger.enqueue(TEN, { type: 'scan', id: jobId }));
  });

  it('a source or signature id taken (by any tenant) is refused, not a database error', async () => {
    const src = await ledger.createSource('other', { name: 'reg', host: 'reg.example' });
    await refused(() => ledger.createSource(TEN, { name: 'mine', host: 'h.example', id: src.id }));
    const sig = await ledger.addFailureSignature('other', { pattern: { error_code: 'A' }, outcome: { likely_cause: 'x' } });
    await refused(() => ledger.addFailureSignature(TEN, { id: sig, pattern: { error_code: 'B' }, outcome: { likely_cause: 'y' } }));
  });

  it('not_before outside what RFC 3339 with four-digit years can say is refused', async () => {
    await refused(() => ledger.enqueue(TEN, { type: 'scan', notBefore: '9999-12-31T23:59:59-01:00' }));
    const { job } = await ledger.enqueue(TEN, { type: 'far', notBefore: '9999-12-31T23:59:59+00:00' });
    expect(job.not_before).toBe('9999-12-31T23:59:59.000000Z');
    const { job: old } = await ledger.enqueue(TEN, { type: 'far', notBefore: '1969-07-20T20:17:40.5Z' });
    expect(old.not_before).toBe('1969-07-20T20:17:40.500000Z');
  });
});

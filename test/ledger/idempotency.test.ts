import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectRefused, ledgerAt, ledgerState } from '../helpers/ledger.js';

const TEN = 'idem';

describe('idempotent enqueue', () => {
  let db: TestDb;
  let ledger: Ledger;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger } = ledgerAt(db.pool));
  });
  afterAll(async () => {
    await db.drop();
  });

  it('the same key and payload give the same job, created=false, and no new history', async () => {
    const a = await ledger.enqueue(TEN, { type: 'scan', payload: { image: 'x', tag: 1 }, idempotencyKey: 'k1' });
    expect(a.created).toBe(true);
    const before = await ledgerState(db.pool, TEN);
    // Key order does not matter: the payload is compared by its canonical JSON.
    const b = await ledger.enqueue(TEN, { type: 'scan', payload: { tag: 1, image: 'x' }, idempotencyKey: 'k1' });
    expect(b.created).toBe(false);
    expect(b.job).toEqual(a.job);
    expect(await ledgerState(db.pool, TEN)).toEqual(before);
  });

  it('the same key with a different payload is IDEMPOTENCY_CONFLICT, nothing written', async () => {
    await ledger.enqueue(TEN, { type: 'scan', payload: { image: 'y' }, idempotencyKey: 'k2' });
    await expectRefused(db.pool, TEN, () => ledger.enqueue(TEN, { type: 'scan', payload: { image: 'z' }, idempotencyKey: 'k2' }), 'IDEMPOTENCY_CONFLICT');
  });

  it('concurrent enqueues of one key give one job', async () => {
    const before = await ledgerState(db.pool, TEN);
    const results = await Promise.all(
      Array.from({ length: 8 }, () => ledger.enqueue(TEN, { type: 'scan', payload: { image: 'c' }, idempotencyKey: 'race' })),
    );
    expect(new Set(results.map((r) => r.job.id)).size).toBe(1);
    expect(results.filter((r) => r.created).length).toBe(1);
    const after = await ledgerState(db.pool, TEN);
    expect(after.rows).toBe(before.rows + 1);
    expect(BigInt(after.head)).toBe(BigInt(before.head) + 1n);
  });

  it('concurrent enqueues of one key with different payloads: one job, the others IDEMPOTENCY_CONFLICT', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => ledger.enqueue(TEN, { type: 'scan', payload: { i }, idempotencyKey: 'race2' })),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    expect(ok.length).toBe(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as { code: string }).code).toBe('IDEMPOTENCY_CONFLICT');
  });

  it('keys are per tenant', async () => {
    const a = await ledger.enqueue('t-one', { type: 'scan', idempotencyKey: 'shared' });
    const b = await ledger.enqueue('t-two', { type: 'scan', idempotencyKey: 'shared' });
    expect(b.created).toBe(true);
    expect(b.job.id).not.toBe(a.job.id);
  });

  it('without a key, every enqueue is a new job', async () => {
    const a = await ledger.enqueue(TEN, { type: 'scan', payload: { same: true } });
    const b = await ledger.enqueue(TEN, { type: 'scan', payload: { same: true } });
    expect(a.job.id).not.toBe(b.job.id);
  });
});

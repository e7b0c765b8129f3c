import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../src/ledger/ledger.js';
import { SignalStore } from '../../src/signals/store.js';
import { freshDb, type TestDb } from '../helpers/db.js';

describe('SignalStore', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('shares one database read among concurrent readers of a job, and reads again after an invalidation', async () => {
    const ledger = new Ledger(db.pool);
    let loads = 0;
    const getSnapshot = ledger.getSnapshot.bind(ledger);
    ledger.getSnapshot = (tenant, jobId) => (loads++, getSnapshot(tenant, jobId));
    const store = new SignalStore(ledger);
    const { job } = await ledger.enqueue('acme', { type: 'herd' });

    const first = await Promise.all(Array.from({ length: 50 }, () => store.read('acme', job.id)));
    expect(loads).toBe(1);
    expect(new Set(first.map((c) => c.etag)).size).toBe(1);

    // A transition and its invalidation: the next readers must not join the older read.
    await ledger.claim('acme', { workerId: 'w1', types: ['herd'] });
    store.cache.invalidate('acme', job.id);
    const second = await Promise.all(Array.from({ length: 50 }, () => store.read('acme', job.id)));
    expect(loads).toBe(2);
    expect(second[0]!.etag).not.toBe(first[0]!.etag);
    expect(second[0]!.snapshot.kind).toBe('started');

    // An invalidation while a read is in flight: a reader after it starts its own read.
    store.cache.invalidate('acme', job.id);
    const during = store.read('acme', job.id);
    store.cache.invalidate('acme', job.id);
    await Promise.all([during, store.read('acme', job.id)]);
    expect(loads).toBe(4);
  });
});

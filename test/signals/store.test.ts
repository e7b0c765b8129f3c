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
    const getSnapshots = ledger.getSnapshots.bind(ledger);
    ledger.getSnapshots = (tenant, jobIds) => ((loads += jobIds.length), getSnapshots(tenant, jobIds));
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
    await new Promise((r) => setImmediate(r)); // its query is on the wire
    store.cache.invalidate('acme', job.id);
    await Promise.all([during, store.read('acme', job.id)]);
    expect(loads).toBe(4);
  });

  it('reads the snapshots wanted in one turn in one query per tenant; a missing or foreign job fails alone', async () => {
    const ledger = new Ledger(db.pool);
    const calls: Array<[string, number]> = [];
    const getSnapshots = ledger.getSnapshots.bind(ledger);
    ledger.getSnapshots = (tenant, jobIds) => (calls.push([tenant, jobIds.length]), getSnapshots(tenant, jobIds));
    const store = new SignalStore(ledger);
    const mine = await Promise.all(Array.from({ length: 20 }, (_, i) => ledger.enqueue('acme', { type: 'batch', payload: { i } })));
    const { job: foreign } = await ledger.enqueue('globex', { type: 'batch' });

    const reads = await Promise.allSettled([...mine.map(({ job }) => store.read('acme', job.id)), store.read('acme', foreign.id), store.read('acme', 'not-a-uuid')]);
    expect(calls).toEqual([['acme', 21]]);
    reads.slice(0, 20).forEach((r, i) => {
      expect(r.status).toBe('fulfilled');
      expect((r as PromiseFulfilledResult<{ snapshot: { job_id: string } }>).value.snapshot.job_id).toBe(mine[i]!.job.id);
    });
    expect((reads[20] as PromiseRejectedResult).reason.code).toBe('JOB_NOT_FOUND');
    expect((reads[21] as PromiseRejectedResult).reason.code).toBe('INVALID_INPUT');
  });
});

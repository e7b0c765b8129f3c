import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import type { ManualClock } from '../../src/util/clock.js';
import { formatMicros, SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { ledgerAt } from '../helpers/ledger.js';

const TEN = 'clm';
const W = 'w1';

describe('claim order: priority, not-before, age; only the asked types', () => {
  let db: TestDb;
  let ledger: Ledger;
  let clock: ManualClock;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger, clock } = ledgerAt(db.pool));
  });
  afterAll(async () => {
    await db.drop();
  });

  it('higher priority first, then the earlier not_before, then the older job', async () => {
    const mk = async (priority: number, notBeforeOffsetS = 0) => {
      clock.advance(1n);
      return (await ledger.enqueue(TEN, { type: 'o', priority, notBefore: formatMicros(clock.now() + BigInt(notBeforeOffsetS) * SECOND) })).job.id;
    };
    const low = await mk(-5);
    const normalOld = await mk(0);
    const normalNew = await mk(0);
    const high = await mk(10);
    const later = await mk(100, 60); // the highest priority, but not before a minute from now
    const order: string[] = [];
    for (let i = 0; i < 4; i++) order.push((await ledger.claim(TEN, { workerId: W, types: ['o'] }))!.job.id);
    expect(order).toEqual([high, normalOld, normalNew, low]);
    expect(await ledger.claim(TEN, { workerId: W, types: ['o'] })).toBeNull();
    clock.advance(60n * SECOND);
    expect((await ledger.claim(TEN, { workerId: W, types: ['o'] }))?.job.id).toBe(later);
  });

  it('only the types asked for', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'only-a' });
    expect(await ledger.claim(TEN, { workerId: W, types: ['only-b'] })).toBeNull();
    expect((await ledger.claim(TEN, { workerId: W, types: ['only-b', 'only-a'] }))?.job.id).toBe(job.id);
  });

  it('concurrent claimers share out the queue without handing a job out twice', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 10; i++) ids.add((await ledger.enqueue(TEN, { type: 'par' })).job.id);
    const got = await Promise.all(Array.from({ length: 14 }, (_, i) => ledger.claim(TEN, { workerId: `w${i}`, types: ['par'] })));
    const claimed = got.filter((g) => g !== null).map((g) => g!.job.id);
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(claimed.every((id) => ids.has(id))).toBe(true);
    // SKIP LOCKED may let a claimer come back empty while others hold rows; a second round takes the rest.
    while (claimed.length < 10) {
      const c = await ledger.claim(TEN, { workerId: 'late', types: ['par'] });
      expect(c).not.toBeNull();
      claimed.push(c!.job.id);
    }
    expect(new Set(claimed)).toEqual(ids);
  });
  it('queue position counts the jobs ahead of the same type, up to the cap, then says "more than N ahead"', async () => {
    const { ledger: capped } = ledgerAt(db.pool, { queuePositionCap: 3 });
    const positions: unknown[] = [];
    const summaries: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { job } = await capped.enqueue('capq', { type: 'capped' });
      const [row] = await capped.history('capq', job.id);
      positions.push(row!.data.queue_position);
      summaries.push((await capped.getSnapshot('capq', job.id)).summary);
    }
    expect(positions).toEqual([1, 2, 3, null, null]);
    expect(summaries[2]).toBe('Waiting in queue (position: 3); no ETA yet: no capped job has succeeded');
    expect(summaries[4]).toBe('Waiting in queue (more than 3 ahead); no ETA yet: no capped job has succeeded');
  });
});

// Issue 14, stalled detection: the sweeper's `stalled` rows, at the ledger's (injected) clock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import type { ManualClock } from '../../src/util/clock.js';
import { SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { ledgerAt } from '../helpers/ledger.js';
import { parseStallAfter } from '../../src/ledger/stalls.js';

const TEN = 'stall';

describe('stall sweeper', () => {
  let db: TestDb;
  let ledger: Ledger;
  let clock: ManualClock;
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger, clock } = ledgerAt(db.pool, { defaultLeaseSeconds: 3600, stallAfter: { defaultSeconds: 60, byType: { slow: 300 } } }));
  });
  afterAll(async () => {
    await db.drop();
  });

  it('a page of long-silent jobs of a patient type does not hide a due job behind it (the LIMIT holds due jobs only)', async () => {
    const T = 'stall-page';
    for (let i = 0; i < 3; i++) await ledger.enqueue(T, { type: 'slow' });
    await ledger.claim(T, { workerId: 'ws', types: ['slow'], limit: 3 });
    clock.advance(100n * SECOND); // the slow jobs: 100 s silent, under their 300 s
    const { job } = await ledger.enqueue(T, { type: 'scan' });
    await ledger.claim(T, { workerId: 'w', types: ['scan'] });
    clock.advance(61n * SECOND); // the scan job: 61 s silent, past its 60 s
    expect(await ledger.markStalled({ tenant: T, limit: 2 })).toBe(1);
    expect((await ledger.history(T, job.id)).at(-1)!.event).toBe('stalled');
  });

  it('marks a silent running job once, at the sweeper clock; progress clears it; per-type stall_after holds', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'scan' });
    const { job: slowJob } = await ledger.enqueue(TEN, { type: 'slow' });
    const c = (await ledger.claim(TEN, { workerId: 'w1', types: ['scan'] }))!;
    await ledger.claim(TEN, { workerId: 'w2', types: ['slow'] });
    const holder = { workerId: 'w1', leaseToken: c.leaseToken };
    clock.advance(10n * SECOND);
    await ledger.progress(TEN, job.id, holder, { phase: 'analyze', itemsDone: 47, itemsTotal: 100 });
    // 60 s after the progress: not yet "longer than" stall_after.
    clock.advance(60n * SECOND);
    expect(await ledger.markStalled({ tenant: TEN })).toBe(0);
    clock.advance(15n * SECOND);
    expect(await ledger.markStalled({ tenant: TEN })).toBe(1);
    const at = clock.toString();
    let h = (await ledger.history(TEN, job.id)).at(-1)!;
    expect(h).toMatchObject({ event: 'stalled', from_state: 'running', to_state: 'running', at });
    expect(h.data).toMatchObject({ stall_after_seconds: 60 });
    let snap = await ledger.getSnapshot(TEN, job.id);
    expect(snap.kind).toBe('phase');
    expect(snap.summary).toBe('No progress for 1m 15s (last: analyze 47%)');
    expect(snap.diagnostics.is_stalled).toBe(true);
    // The slow type (stall_after 300 s) is 85 s silent: untouched.
    expect((await ledger.history(TEN, slowJob.id)).at(-1)!.event).toBe('claimed');

    // Never twice without progress in between, however long the silence.
    clock.advance(600n * SECOND);
    expect(await ledger.markStalled({ tenant: TEN })).toBe(1); // the slow job, now past 300 s
    expect((await ledger.history(TEN, slowJob.id)).at(-1)!.event).toBe('stalled');
    expect(await ledger.markStalled({ tenant: TEN })).toBe(0);
    expect((await ledger.history(TEN, job.id)).filter((r) => r.event === 'stalled')).toHaveLength(1);

    // Progress clears the mark; a new silence may be marked again.
    await ledger.progress(TEN, job.id, holder, { phase: 'analyze', itemsDone: 60, itemsTotal: 100 });
    snap = await ledger.getSnapshot(TEN, job.id);
    expect(snap.diagnostics.is_stalled).toBeUndefined();
    expect(snap.summary).toBe('Working on analyze (60%)');
    clock.advance(61n * SECOND);
    expect(await ledger.markStalled({ tenant: TEN })).toBe(1);
    h = (await ledger.history(TEN, job.id)).at(-1)!;
    expect(h.event).toBe('stalled');
    snap = await ledger.getSnapshot(TEN, job.id);
    expect(snap.summary).toBe('No progress for 1m 1s (last: analyze 60%)');

    // A finished job is never marked.
    await ledger.complete(TEN, job.id, holder);
    clock.advance(120n * SECOND);
    expect(await ledger.markStalled({ tenant: TEN })).toBe(0);
  });

  it('okit serve --stall-after: a default and per-type durations', () => {
    expect(parseStallAfter('2m,scan=30s,build=10m')).toEqual({ defaultSeconds: 120, byType: { scan: 30, build: 600 } });
    expect(parseStallAfter('scan=5m')).toEqual({ byType: { scan: 300 } });
    expect(() => parseStallAfter('1m,2m')).toThrow(/at most one default/);
    expect(() => parseStallAfter('scan=soon')).toThrow(/--stall-after scan: must be a duration/);
    expect(() => parseStallAfter('2d')).toThrow(/stall_after/);
  });

  it('refuses a bad stall_after at construction', async () => {
    const { Ledger: L } = await import('../../src/ledger/ledger.js');
    expect(() => new L(db.pool, { stallAfter: { defaultSeconds: 0 } })).toThrow(/stall_after/);
    expect(() => new L(db.pool, { stallAfter: { byType: { scan: -1 } } })).toThrow(/stall_after\.scan/);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DURATION_SAMPLES, p50Micros, typeDurations } from '../../src/ledger/durations.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import type { ManualClock } from '../../src/util/clock.js';
import { SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { ledgerAt } from '../helpers/ledger.js';

const TEN = 'dur';
const W = 'w1';

describe('p50Micros (pure)', () => {
  it('nearest rank, no interpolation; null without samples', () => {
    expect(p50Micros([])).toBeNull();
    expect(p50Micros([7n])).toBe(7n);
    expect(p50Micros([30n, 10n, 20n])).toBe(20n);
    expect(p50Micros([40n, 10n, 30n, 20n])).toBe(20n);
    expect(p50Micros([1n, 1n, 9007199254740993n])).toBe(1n);
  });
});

describe('okit.type_durations: the last N successes per {tenant, type}, kept in the transition\'s transaction', () => {
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

  async function run(type: string, seconds: number, tenant = TEN): Promise<void> {
    await ledger.enqueue(tenant, { type });
    const c = await ledger.claim(tenant, { workerId: W, types: [type] });
    clock.advance(BigInt(seconds) * SECOND + 1n); // +1 µs: microseconds survive
    await ledger.complete(tenant, c!.job.id, W);
  }

  it('a success appends its run duration (this attempt\'s claim → success); failures and other types do not', async () => {
    expect(await typeDurations(db.pool, TEN, 'scan')).toEqual({ durationsUs: [], p50Us: null });
    await run('scan', 10);
    await run('scan', 30);
    await run('scan', 20);
    await run('other', 5);
    const { job } = await ledger.enqueue(TEN, { type: 'scan', maxAttempts: 1 });
    await ledger.claim(TEN, { workerId: W, types: ['scan'] });
    clock.advance(99n * SECOND);
    await ledger.fail(TEN, job.id, W, { code: 'BOOM', message: 'no' });
    const s = await typeDurations(db.pool, TEN, 'scan');
    expect(s.durationsUs).toEqual([10_000_001n, 30_000_001n, 20_000_001n]);
    expect(s.p50Us).toBe(20_000_001n);
    expect((await typeDurations(db.pool, TEN, 'other')).durationsUs).toEqual([5_000_001n]);
    expect((await typeDurations(db.pool, 'someone-else', 'scan')).durationsUs).toEqual([]);
  });

  it('after a retry the duration counts from the last claim, not the first', async () => {
    const { job } = await ledger.enqueue(TEN, { type: 'retrying', maxAttempts: 3 });
    await ledger.claim(TEN, { workerId: W, types: ['retrying'] });
    clock.advance(500n * SECOND);
    await ledger.fail(TEN, job.id, W, { code: 'TIMEOUT', message: 'slow' });
    clock.advance(3600n * SECOND); // past any backoff
    const c = await ledger.claim(TEN, { workerId: W, types: ['retrying'] });
    expect(c?.job.id).toBe(job.id);
    clock.advance(7n * SECOND);
    await ledger.complete(TEN, job.id, W);
    expect((await typeDurations(db.pool, TEN, 'retrying')).durationsUs).toEqual([7_000_000n]);
  });

  it('an enqueued row carries the ETA inputs (p50, samples, workers) and its snapshot the queued ETA', async () => {
    // 'scan' has 10 s, 30 s, 20 s runs (+1 µs each): p50 20.000001 s. One worker holds a running scan job.
    const { job: running } = await ledger.enqueue(TEN, { type: 'scan' });
    const held = await ledger.claim(TEN, { workerId: 'w2', types: ['scan'] });
    expect(held?.job.id).toBe(running.id);
    await ledger.enqueue(TEN, { type: 'scan' });
    const { job } = await ledger.enqueue(TEN, { type: 'scan' });
    const snapshot = await ledger.getSnapshot(TEN, job.id);
    const row = (await ledger.history(TEN, job.id))[0]!;
    expect(row.data.eta).toEqual({ p50_seconds: 20.000001, samples: 3, workers: 1 });
    expect(row.data.queue_position).toBe(2);
    // 1 ahead ÷ 1 worker × 20.000001 s + its own 20.000001 s, rounded up.
    expect(snapshot.eta_seconds).toBe(41);
    // A type that never succeeded: null, and the summary says so.
    const fresh = await ledger.enqueue(TEN, { type: 'never' });
    expect((await ledger.history(TEN, fresh.job.id))[0]!.data.eta).toEqual({ p50_seconds: null, samples: 0, workers: 0 });
    expect(await ledger.getSnapshot(TEN, fresh.job.id)).toMatchObject({ eta_seconds: null, summary: 'Waiting in queue (position: 1); no ETA yet: no never job has succeeded' });
    await ledger.complete(TEN, running.id, 'w2');
  });

  it('every row that changes an ETA carries its inputs: claimed, retry_scheduled, lease_expired, retried', async () => {
    await run('rows', 20); // p50 20.000001 s over 1 success
    const p50 = { p50_seconds: 20.000001, samples: 1 };
    const { job } = await ledger.enqueue(TEN, { type: 'rows', maxAttempts: 2 });
    const hist = async () => ledger.history(TEN, job.id);
    const c1 = (await ledger.claim(TEN, { workerId: W, types: ['rows'] }))!;
    expect((await hist()).at(-1)).toMatchObject({ event: 'claimed', data: { eta: p50 } });
    // Started, no counts: p50 − elapsed (5 s) → 16.
    clock.advance(5n * SECOND);
    await ledger.progress(TEN, job.id, W, { phase: 'fetch' });
    expect((await ledger.getSnapshot(TEN, job.id)).eta_seconds).toBe(16);
    await ledger.fail(TEN, job.id, { workerId: W, leaseToken: c1.leaseToken }, { code: 'TIMEOUT', message: 'slow' });
    const retry = (await hist()).at(-1)!;
    expect(retry).toMatchObject({ event: 'retry_scheduled', data: { eta: p50 } });
    // The backoff, then the p50.
    expect((await ledger.getSnapshot(TEN, job.id)).eta_seconds).toBe(Math.ceil(Number(retry.data.backoff_seconds) + 20.000001 - 1e-9));
    // Two others queued ahead, then the job's lease is given up: lease_expired → dead_letter (its last attempt) carries no queue inputs.
    clock.advance(3600n * SECOND);
    const c2 = (await ledger.claim(TEN, { workerId: W, types: ['rows'] }))!;
    expect(c2.job.id).toBe(job.id);
    await ledger.enqueue(TEN, { type: 'rows' });
    await ledger.enqueue(TEN, { type: 'rows' });
    await ledger.abandon(TEN, job.id, { workerId: W, leaseToken: c2.leaseToken });
    const dead = (await hist()).at(-1)!;
    expect(dead).toMatchObject({ event: 'lease_expired', to_state: 'dead_letter' });
    expect(dead.data.queue_position).toBeUndefined();
    clock.advance(SECOND);
    // An operator's retry: back behind the two, with the type's inputs (no worker on 'rows' now: 0, counted as 1).
    const snap = await ledger.retry(TEN, job.id, { actor: 'op', reason: 'again' });
    expect((await hist()).at(-1)).toMatchObject({ event: 'retried', data: { queue_position: 3, eta: { ...p50, workers: 0 } } });
    // 2 ahead × 20.000001 + its own 20.000001, rounded up.
    expect(snap).toMatchObject({ kind: 'queued', eta_seconds: 61 });
    expect(snap.diagnostics.queue_position).toBe(3);
    // Claimed again by w1 while w2 holds another 'rows' job, then abandoned: lease_expired → queued with its place
    // (1 ahead) and the workers on the type when it is written (w2, and w1 whose lease this row ends).
    const [x, y] = await ledger.claim(TEN, { workerId: 'w2', types: ['rows'], limit: 2 });
    expect([x?.job.id, y?.job.id]).not.toContain(job.id);
    const c3 = (await ledger.claim(TEN, { workerId: W, types: ['rows'] }))!;
    expect(c3.job.id).toBe(job.id);
    await ledger.abandon(TEN, y!.job.id, { workerId: 'w2', leaseToken: y!.leaseToken });
    clock.advance(SECOND);
    await ledger.abandon(TEN, job.id, { workerId: W, leaseToken: c3.leaseToken });
    const requeued = (await hist()).at(-1)!;
    expect(requeued).toMatchObject({ event: 'lease_expired', to_state: 'queued', data: { queue_position: 2, eta: { ...p50, workers: 2 } } });
    // 1 ahead ÷ 2 workers × 20.000001 + 20.000001, rounded up.
    expect((await ledger.getSnapshot(TEN, job.id)).eta_seconds).toBe(31);
    await ledger.complete(TEN, x!.job.id, 'w2');
  });

  it('a throttled row carries the inputs: the wait plus the p50', async () => {
    await run('pull', 8);
    const src = await ledger.createSource(TEN, { name: 'reg', host: 'reg.example' });
    await ledger.configureThrottle(TEN, 'reg.example', { capacity: 1, refillPerSec: 0.5 });
    const a = await ledger.enqueue(TEN, { type: 'pull', sourceId: src.id });
    clock.advance(1n);
    const b = await ledger.enqueue(TEN, { type: 'pull', sourceId: src.id });
    expect((await ledger.claim(TEN, { workerId: W, types: ['pull'] }))?.job.id).toBe(a.job.id);
    expect(await ledger.claim(TEN, { workerId: W, types: ['pull'] })).toBeNull();
    const row = (await ledger.history(TEN, b.job.id)).at(-1)!;
    expect(row).toMatchObject({ event: 'throttled', data: { wait_seconds: 2, eta: { p50_seconds: 8.000001, samples: 1 } } });
    // 2 s wait + 8.000001 s run, rounded up.
    expect(await ledger.getSnapshot(TEN, b.job.id)).toMatchObject({ kind: 'blocked', eta_seconds: 11 });
  });

  it('successes committed in one batch (one INSERT, migration 013\'s statement trigger) each append their own duration, in order', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await ledger.enqueue(TEN, { type: 'batched' })).job.id);
    const run = new Map<string, bigint>();
    for (let i = 0; i < 3; i++) {
      // Claimed (3 − i) s before the successes below.
      run.set((await ledger.claim(TEN, { workerId: W, types: ['batched'] }))!.job.id, BigInt(3 - i) * SECOND);
      clock.advance(SECOND);
    }
    const batches: number[] = [];
    const { ledger: l2 } = ledgerAt(db.pool, { onBatch: (s) => batches.push(s.units) });
    (l2.clock as ManualClock).advance(clock.now() - (l2.clock as ManualClock).now());
    await Promise.all(ids.map((id) => l2.complete(TEN, id, W)));
    expect(Math.max(...batches)).toBeGreaterThan(1);
    // Oldest first: in the successes' ledger order.
    const pos = await Promise.all(ids.map(async (id) => ({ d: run.get(id)!, pos: BigInt((await ledger.history(TEN, id)).at(-1)!.pos) })));
    pos.sort((a, b) => (a.pos < b.pos ? -1 : 1));
    expect((await typeDurations(db.pool, TEN, 'batched')).durationsUs).toEqual(pos.map((p) => p.d));
  });

  it(`keeps only the last ${DURATION_SAMPLES}, oldest first`, async () => {
    for (let i = 1; i <= DURATION_SAMPLES + 3; i++) await run('many', i);
    const s = await typeDurations(db.pool, TEN, 'many');
    expect(s.durationsUs).toHaveLength(DURATION_SAMPLES);
    expect(s.durationsUs[0]).toBe(4n * SECOND + 1n);
    expect(s.durationsUs.at(-1)).toBe(BigInt(DURATION_SAMPLES + 3) * SECOND + 1n);
  });
});

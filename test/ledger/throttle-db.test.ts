import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ledger } from '../../src/ledger/ledger.js';
import type { ManualClock } from '../../src/util/clock.js';
import { formatMicros, SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectCode, ledgerAt } from '../helpers/ledger.js';

const TEN = 'thr';
const W = 'w1';

describe('token-bucket throttling in the ledger', () => {
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

  const bucketRow = async (host: string) =>
    (await db.pool.query('SELECT capacity::text, base_refill_per_sec::text, refill_per_sec::text, tokens::text, penalty_until FROM okit.throttles WHERE tenant = $1 AND host = $2', [TEN, host])).rows[0];
  const events = async (host: string) =>
    (await db.pool.query('SELECT pos::text, event, data FROM okit.throttle_events WHERE tenant = $1 AND host = $2 ORDER BY pos', [TEN, host])).rows.map((r) => ({
      ...r,
      data: JSON.parse(r.data),
    }));

  it('an empty bucket throttles the job with the expected wait; the refill later lets it be claimed', async () => {
    const src = await ledger.createSource(TEN, { name: 'reg', host: 'Registry.Example' });
    expect(src.host).toBe('registry.example');
    await ledger.configureThrottle(TEN, 'registry.example', { capacity: 2, refillPerSec: 0.5 });
    expect((await events('registry.example')).map((e) => e.event)).toEqual(['configured']);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await ledger.enqueue(TEN, { type: 'pull', sourceId: src.id })).job.id);
      clock.advance(1n);
    }
    expect((await ledger.claim(TEN, { workerId: W, types: ['pull'] }))?.job.id).toBe(ids[0]);
    expect((await ledger.claim(TEN, { workerId: W, types: ['pull'] }))?.job.id).toBe(ids[1]);
    expect(await ledger.claim(TEN, { workerId: W, types: ['pull'] })).toBeNull();
    const job = await ledger.getJob(TEN, ids[2]!);
    expect(job.state).toBe('throttled');
    const last = (await ledger.history(TEN, ids[2]!)).at(-1)!;
    // 0 tokens at 0.5/s: one token in exactly 2 s.
    const until = formatMicros(clock.now() + 2n * SECOND);
    expect(last).toMatchObject({ event: 'throttled', from_state: 'queued', to_state: 'throttled' });
    expect(last.data).toEqual({ host: 'registry.example', throttled_until: until, wait_seconds: 2, tokens: '0', eta: { p50_seconds: null, samples: 0 } });
    expect(job.not_before).toBe(until);
    const snap = await ledger.getSnapshot(TEN, ids[2]!);
    expect(snap).toMatchObject({ kind: 'blocked', summary: 'Throttled by registry.example: next slot in 2s; no ETA yet: no pull job has succeeded', eta_seconds: null });
    expect(snap.diagnostics.throttled_until).toBe(until);

    clock.advance(SECOND); // half a token: still nothing, and the job is not even due
    expect(await ledger.claim(TEN, { workerId: W, types: ['pull'] })).toBeNull();
    expect((await ledger.history(TEN, ids[2]!)).length).toBe(2);
    clock.advance(SECOND);
    const c = await ledger.claim(TEN, { workerId: W, types: ['pull'] });
    expect(c?.job.id).toBe(ids[2]);
    expect((await ledger.history(TEN, ids[2]!)).at(-1)).toMatchObject({ event: 'claimed', from_state: 'throttled' });
    expect((await bucketRow('registry.example')).tokens).toBe('0.000000');
  });

  it('a job of an unthrottled source is not held up by a throttled one', async () => {
    const slow = await ledger.createSource(TEN, { name: 'slow', host: 'slow.example' });
    const free = await ledger.createSource(TEN, { name: 'free', host: 'free.example' });
    await ledger.configureThrottle(TEN, 'slow.example', { capacity: 1, refillPerSec: 0.001 });
    await ledger.enqueue(TEN, { type: 'mix', sourceId: slow.id, priority: 5 });
    await ledger.enqueue(TEN, { type: 'mix', sourceId: slow.id, priority: 5 });
    const { job: f } = await ledger.enqueue(TEN, { type: 'mix', sourceId: free.id });
    expect((await ledger.claim(TEN, { workerId: W, types: ['mix'] }))?.job.source_id).toBe(slow.id);
    // The second slow job is throttled on the way, and the free one is claimed in the same call.
    expect((await ledger.claim(TEN, { workerId: W, types: ['mix'] }))?.job.id).toBe(f.id);
  });

  it('reportThrottle halves the refill, pauses for retry-after, records an event; additive recovery emits refill_restored', async () => {
    const host = 'api.example';
    const src = await ledger.createSource(TEN, { name: 'api', host });
    await ledger.configureThrottle(TEN, host, { capacity: 10, refillPerSec: 2 });
    await ledger.reportThrottle(TEN, host, { retryAfterSeconds: 5, status: 429, workerId: W });
    const b = await bucketRow(host);
    expect(b).toMatchObject({ refill_per_sec: '1.000000', base_refill_per_sec: '2.000000', tokens: '0.000000' });
    const ev = (await events(host)).at(-1)!;
    expect(ev.event).toBe('upstream_throttled');
    expect(ev.data).toEqual({
      status: 429,
      retry_after_seconds: '5',
      refill_before: '2',
      refill_after: '1',
      penalty_until: formatMicros(clock.now() + 5n * SECOND),
      worker_id: W,
    });
    // Throttle events take ledger positions like history rows do.
    const { rows: head } = await db.pool.query('SELECT pos::text FROM okit.ledger_heads WHERE tenant = $1', [TEN]);
    expect(head[0].pos).toBe(ev.pos);

    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      ids.push((await ledger.enqueue(TEN, { type: 'api', sourceId: src.id })).job.id);
      clock.advance(1n);
    }
    // During the pause: throttled for the rest of the pause plus one token at the halved rate (1/s).
    const t0 = clock.now();
    expect(await ledger.claim(TEN, { workerId: W, types: ['api'] })).toBeNull();
    const h = (await ledger.history(TEN, ids[0]!)).at(-1)!;
    expect(h.event).toBe('throttled');
    expect(h.data.throttled_until).toBe(formatMicros(t0 + 5n * SECOND - 6n + SECOND));

    // After the pause, tokens come back at 1/s. Each claim adds base/10 = 0.2/s back: 1.2, 1.4, ... 2.0.
    clock.advance(60n * SECOND);
    const rates: string[] = [];
    for (let i = 0; i < 5; i++) {
      expect(await ledger.claim(TEN, { workerId: W, types: ['api'] })).not.toBeNull();
      rates.push((await bucketRow(host)).refill_per_sec);
    }
    expect(rates).toEqual(['1.200000', '1.400000', '1.600000', '1.800000', '2.000000']);
    const evs = await events(host);
    expect(evs.map((e) => e.event)).toEqual(['configured', 'upstream_throttled', 'refill_restored']);
    expect(evs[2]!.data).toEqual({ refill_per_sec: '2' });
    expect((await bucketRow(host)).penalty_until).toBeNull();
  });

  it('reportThrottle for a host without a bucket creates the default bucket, then penalises it', async () => {
    await ledger.reportThrottle(TEN, 'new.example', { retryAfterSeconds: 1 });
    expect(await bucketRow('new.example')).toMatchObject({ capacity: '10.000', refill_per_sec: '2.500000', base_refill_per_sec: '5.000000' });
    const ev = (await events('new.example')).at(-1)!;
    expect(ev.data.status).toBe(429);
  });

  it('bad throttle input is refused', async () => {
    await expectCode(() => ledger.configureThrottle(TEN, 'x.example', { capacity: 0, refillPerSec: 1 }), 'INVALID_INPUT');
    await expectCode(() => ledger.configureThrottle(TEN, 'x.example', { capacity: 1, refillPerSec: 0 }), 'INVALID_INPUT');
    await expectCode(() => ledger.configureThrottle(TEN, 'bad host/', { capacity: 1, refillPerSec: 1 }), 'INVALID_INPUT');
    await expectCode(() => ledger.reportThrottle(TEN, 'x.example', { retryAfterSeconds: -1 }), 'INVALID_INPUT');
    await expectCode(() => ledger.reportThrottle(TEN, 'x.example', { retryAfterSeconds: 1, status: 42 }), 'INVALID_INPUT');
  });

  it('the largest capacity and refill the validator accepts fit the table (no raw numeric overflow)', async () => {
    await ledger.configureThrottle(TEN, 'big.example', { capacity: 999999, refillPerSec: 999999 });
    expect((await bucketRow('big.example')).tokens).toBe('999999.000000');
    await expectCode(() => ledger.configureThrottle(TEN, 'big.example', { capacity: 1e6, refillPerSec: 1 }), 'INVALID_INPUT');
    await expectCode(() => ledger.configureThrottle(TEN, 'big.example', { capacity: 1, refillPerSec: 1e6 }), 'INVALID_INPUT');
  });
});

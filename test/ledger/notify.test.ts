import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOTIFY_CHANNEL, type Ledger } from '../../src/ledger/ledger.js';
import { project } from '../../src/ledger/projection.js';
import { parseMicros, SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { ledgerAt } from '../helpers/ledger.js';

const TEN = 'ntf';
const W = 'w1';

describe('one NOTIFY per transaction, and the snapshot is the projection of the history', () => {
  let db: TestDb;
  let ledger: Ledger;
  let listener: pg.Client;
  let got: string[] = [];
  beforeAll(async () => {
    db = await freshDb();
    ({ ledger } = ledgerAt(db.pool));
    listener = await db.admin();
    listener.on('notification', (m) => {
      if (m.channel === NOTIFY_CHANNEL) got.push(m.payload ?? '');
    });
    await listener.query(`LISTEN ${NOTIFY_CHANNEL}`);
  });
  afterAll(async () => {
    await listener.end();
    await db.drop();
  });

  /** Notifications arrive in commit order: once our own marker arrives, everything before it has. */
  async function drain(): Promise<string[]> {
    const marker = `marker-${Math.random()}`;
    await db.pool.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, marker]);
    for (let i = 0; i < 500 && !got.includes(marker); i++) await new Promise((r) => setTimeout(r, 10));
    const out = got.slice(0, got.indexOf(marker));
    got = [];
    return out;
  }

  it('each state change sends one small NOTIFY naming the tenant and job; heartbeats and throttle config send none', async () => {
    await drain();
    const { job } = await ledger.enqueue(TEN, { type: 'n', payload: { big: 'x'.repeat(60_000) } });
    // The claim hint `+n=1`: one job of type n is claimable now (claim waiters, src/signals/claims.ts).
    expect(await drain()).toEqual([`${TEN} ${job.id} +n=1`]);
    await ledger.enqueue(TEN, { type: 'keyed', payload: { big: 'x'.repeat(60_000) }, idempotencyKey: 'k' });
    await drain();
    await ledger.enqueue(TEN, { type: 'keyed', payload: { big: 'x'.repeat(60_000) }, idempotencyKey: 'k' }); // no change
    expect(await drain()).toEqual([]);
    await ledger.claim(TEN, { workerId: W, types: ['n'] });
    expect(await drain()).toEqual([`${TEN} ${job.id}`]);
    await ledger.heartbeat(TEN, job.id, W);
    await ledger.configureThrottle(TEN, 'h.example', { capacity: 1, refillPerSec: 1 });
    expect(await drain()).toEqual([]);
    await ledger.progress(TEN, job.id, W, { phase: 'fetch', itemsDone: 1, itemsTotal: 3 });
    await ledger.complete(TEN, job.id, W);
    expect(await drain()).toEqual([`${TEN} ${job.id}`, `${TEN} ${job.id}`]);
    // A refused operation notifies nobody.
    await ledger.complete(TEN, job.id, W).catch(() => undefined);
    expect(await drain()).toEqual([]);
  });

  it('claim hints: a retry names the moment it becomes claimable, a lease expiry that it is claimable now', async () => {
    const { ledger: l, clock } = ledgerAt(db.pool, { defaultLeaseSeconds: 10 });
    const { job } = await l.enqueue(TEN, { type: 'h', maxAttempts: 3 });
    await l.claim(TEN, { workerId: W, types: ['h'] });
    await drain();
    await l.fail(TEN, job.id, W, { code: 'T', message: 'timeout' });
    const retryAt = parseMicros((await l.getJob(TEN, job.id)).not_before);
    expect(await drain()).toEqual([`${TEN} ${job.id} @h=${retryAt}`]);
    clock.advance(3600n * SECOND);
    await l.claim(TEN, { workerId: W, types: ['h'] });
    clock.advance(11n * SECOND);
    await drain();
    await l.expireLeases({ tenant: TEN });
    expect(await drain()).toEqual([`${TEN} ${job.id} +h=1`]);
    await l.cancel(TEN, job.id, { actor: 'ops' });
    expect(await drain()).toEqual([`${TEN} ${job.id}`]);
  });

  it('the stored snapshot equals project(history) after every kind of change', async () => {
    const { ledger: l, clock } = ledgerAt(db.pool, { defaultLeaseSeconds: 10 });
    const { job } = await l.enqueue(TEN, { type: 'p', maxAttempts: 3 });
    const check = async () => expect(await l.getSnapshot(TEN, job.id)).toEqual(project(await l.history(TEN, job.id)));
    await check();
    await l.claim(TEN, { workerId: W, types: ['p'] });
    await check();
    await l.progress(TEN, job.id, W, { phase: 'analyze', itemsDone: 5, itemsTotal: 10, summary: 'Scanning' });
    await check();
    await l.fail(TEN, job.id, W, { code: 'T', message: 'timeout' });
    await check();
    clock.advance(3600n * SECOND);
    await l.claim(TEN, { workerId: W, types: ['p'] });
    clock.advance(11n * SECOND);
    await l.expireLeases({ tenant: TEN });
    await check();
    await l.cancel(TEN, job.id, { actor: 'ops' });
    await check();
  });
});

/**
 * Group commit (src/ledger/writer.ts): concurrent changes of one tenant share one transaction;
 * refusals fail only their caller; a database error in a batch retries its members one by one;
 * a connection lost mid-batch leaves nothing half-written and applies every change once.
 */
import net from 'node:net';
import pg from 'pg';
import { createPool } from '../../src/db/pool.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkLedger } from '../../src/ledger/check.js';
import { Ledger, NOTIFY_CHANNEL, type BatchStats } from '../../src/ledger/ledger.js';
import { project } from '../../src/ledger/projection.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectCode, ledgerAt } from '../helpers/ledger.js';

const W = 'w1';

/** Every position of the tenant, each with its transaction id: to see which rows committed together. */
async function rowsByTx(pool: pg.Pool, tenant: string): Promise<Array<{ pos: number; xmin: string; job_id: string; event: string }>> {
  const { rows } = await pool.query(
    `SELECT pos::int AS pos, xmin::text AS xmin, job_id::text AS job_id, event FROM okit.job_history WHERE tenant = $1
     UNION ALL SELECT pos::int, xmin::text, NULL, event FROM okit.throttle_events WHERE tenant = $1 ORDER BY pos`,
    [tenant],
  );
  return rows;
}

/** Positions are 1..head, and each transaction's positions are one contiguous run. */
async function expectDenseAndWhole(pool: pg.Pool, tenant: string): Promise<void> {
  const rows = await rowsByTx(pool, tenant);
  expect(rows.map((r) => r.pos)).toEqual(rows.map((_, i) => i + 1));
  const { rows: head } = await pool.query('SELECT pos::int AS pos FROM okit.ledger_heads WHERE tenant = $1', [tenant]);
  expect(head[0]?.pos ?? 0).toBe(rows.length);
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    if (i > 0 && rows[i - 1]!.xmin === r.xmin) return;
    expect(seen.has(r.xmin), `transaction ${r.xmin} has positions on both sides of another's`).toBe(false);
    seen.add(r.xmin);
  });
}

async function running(ledger: Ledger, tenant: string, n: number, type = 'b'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await ledger.enqueue(tenant, { type, payload: { i } })).job.id);
  const claimed = await ledger.claim(tenant, { workerId: W, types: [type], limit: n });
  expect(claimed.length).toBe(n);
  return ids;
}

describe('group commit', () => {
  let db: TestDb;
  let stats: BatchStats[];
  let ledger: Ledger;
  let listener: pg.Client;
  let got: string[] = [];
  beforeAll(async () => {
    db = await freshDb();
    stats = [];
    ({ ledger } = ledgerAt(db.pool, { onBatch: (s) => stats.push(s) }));
    listener = await db.admin();
    listener.on('notification', (m) => m.channel === NOTIFY_CHANNEL && got.push(m.payload ?? ''));
    await listener.query(`LISTEN ${NOTIFY_CHANNEL}`);
  });
  afterAll(async () => {
    await listener.end();
    await db.drop();
  });

  async function drain(): Promise<string[]> {
    const marker = `marker-${Math.random()}`;
    await db.pool.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, marker]);
    for (let i = 0; i < 500 && !got.includes(marker); i++) await new Promise((r) => setTimeout(r, 10));
    const out = got.slice(0, got.indexOf(marker));
    got = [];
    return out;
  }

  it('concurrent transitions of a tenant: one transaction, contiguous positions in write order, one NOTIFY naming every job', async () => {
    const ids = await running(ledger, 'g1', 12);
    await drain();
    stats.length = 0;
    const snaps = await Promise.all(ids.map((id, i) => ledger.progress('g1', id, W, { phase: 'fetch', itemsDone: i, itemsTotal: 20 })));
    expect(stats.map((s) => [s.units, s.positions, s.failed])).toEqual([[12, 12, false]]);
    const rows = (await rowsByTx(db.pool, 'g1')).filter((r) => r.event === 'progress');
    expect(new Set(rows.map((r) => r.xmin)).size).toBe(1);
    expect(rows.map((r) => r.job_id)).toEqual(ids); // in the order the callers submitted
    expect(await drain()).toEqual([`g1 ${ids.join(' ')}`]);
    // Each caller gets the snapshot its own row made, and it is the projection of the history.
    for (const [i, id] of ids.entries()) {
      expect(snaps[i]!.job_id).toBe(id);
      expect(snaps[i]).toEqual(project(await ledger.history('g1', id)));
      expect(await ledger.getSnapshot('g1', id)).toEqual(snaps[i]);
    }
    await expectDenseAndWhole(db.pool, 'g1');
  });

  it('a lone transition commits at once: a batch of one, three messages (reads, write, COMMIT) once the head is known, two for a job this process knows', async () => {
    const [id] = await running(ledger, 'g2', 1);
    const { job: queued } = await ledger.enqueue('g2', { type: 'other' });
    stats.length = 0;
    await ledger.cancel('g2', queued.id, { actor: 'ops' }); // a job this writer has not written since it enqueued it: read
    await ledger.progress('g2', id!, W, { phase: 'fetch' }); // claimed through this writer: known, not read
    expect(stats.map((s) => [s.units, s.messages, s.failed])).toEqual([
      [1, 3, false],
      [1, 2, false],
    ]);
  });

  it('a batch with one illegal transition (and other refusals) fails only those callers', async () => {
    const ids = await running(ledger, 'g3', 8);
    const { job: queued } = await ledger.enqueue('g3', { type: 'other' });
    stats.length = 0;
    const before = await rowsByTx(db.pool, 'g3');
    const calls = [
      ...ids.map((id) => ledger.progress('g3', id, W, { phase: 'analyze' })),
      ledger.complete('g3', queued.id, W), // queued, not running: ILLEGAL_TRANSITION
      ledger.progress('g3', ids[0]!, 'someone-else', { phase: 'analyze' }), // LEASE_NOT_HELD
      ledger.cancel('g3', '00000000-0000-4000-8000-000000000000', { actor: 'ops' }), // JOB_NOT_FOUND
    ];
    const out = await Promise.allSettled(calls);
    // The LEASE_NOT_HELD was found on a known (unread) job: a read confirms it, in a batch of its own.
    expect(stats.map((s) => [s.units, s.positions, s.failed])).toEqual([
      [11, 8, false],
      [1, 0, false],
    ]);
    expect(out.slice(0, 8).every((o) => o.status === 'fulfilled')).toBe(true);
    expect(out.slice(8).map((o) => (o.status === 'rejected' ? (o.reason as { code: string }).code : 'ok'))).toEqual([
      'ILLEGAL_TRANSITION',
      'LEASE_NOT_HELD',
      'JOB_NOT_FOUND',
    ]);
    const after = await rowsByTx(db.pool, 'g3');
    expect(after.length - before.length).toBe(8);
    expect((await ledger.getJob('g3', queued.id)).state).toBe('queued');
    expect((await checkLedger(db.pool, { tenant: 'g3' })).problems).toEqual([]);
    await expectDenseAndWhole(db.pool, 'g3');
  });

  it('two callers moving the same job in one batch see each other, as if one after the other', async () => {
    const [id] = await running(ledger, 'g4', 1);
    const [done, cancel] = await Promise.allSettled([ledger.complete('g4', id!, W), ledger.cancel('g4', id!, { actor: 'ops' })]);
    expect(done.status).toBe('fulfilled');
    expect(cancel.status === 'rejected' && (cancel.reason as { code: string }).code).toBe('ILLEGAL_TRANSITION');
    expect((await ledger.history('g4', id!)).map((r) => r.event)).toEqual(['enqueued', 'claimed', 'succeeded']);
  });

  it('a NOTIFY that would pass 7000 bytes names the tenant only ("*")', async () => {
    await drain();
    const out = await ledger.enqueueMany('g5', Array.from({ length: 250 }, (_, i) => ({ type: 'n', payload: { i } })));
    expect(out.length).toBe(250);
    // The ids do not fit: "*" (recheck the tenant); the claim hint still does.
    expect(await drain()).toEqual(['g5 * +n=250']);
  });
});

describe('a database error in a batch', () => {
  let db: TestDb;
  let admin: pg.Client;
  beforeAll(async () => {
    db = await freshDb();
    admin = await db.admin();
  });
  afterAll(async () => {
    await admin.end();
    await db.drop();
  });

  it('a member that violates a CHECK gets WRITE_REFUSED; its neighbours are retried one by one and written', async () => {
    const stats: BatchStats[] = [];
    const { ledger } = ledgerAt(db.pool, { onBatch: (s) => stats.push(s) });
    const ids = await running(ledger, 'c1', 6);
    // A constraint validation does not know about: only the database can refuse this row.
    await admin.query(`ALTER TABLE okit.job_history ADD CONSTRAINT test_no_poison CHECK (data->>'summary' IS DISTINCT FROM 'poison')`);
    try {
      stats.length = 0;
      const before = await rowsByTx(db.pool, 'c1');
      const out = await Promise.allSettled(ids.map((id, i) => ledger.progress('c1', id, W, { phase: 'fetch', summary: i === 3 ? 'poison' : 'fine' })));
      const err = out[3]!.status === 'rejected' ? (out[3] as PromiseRejectedResult).reason : null;
      expect(err?.code).toBe('WRITE_REFUSED');
      expect(err?.details).toMatchObject({ sqlstate: '23514', constraint: 'test_no_poison' });
      expect(out.filter((o) => o.status === 'fulfilled').length).toBe(5);
      // One batch of six rolled back, then six batches of one: five written, the poisoned one refused.
      expect(stats.map((s) => [s.units, s.failed, s.retry])).toEqual([[6, true, false], ...ids.map((_, i) => [1, i === 3, true])]);
      const after = await rowsByTx(db.pool, 'c1');
      expect(after.length - before.length).toBe(5);
      expect((await ledger.history('c1', ids[3]!)).map((r) => r.event)).toEqual(['enqueued', 'claimed']);
      for (const id of ids) expect(await ledger.getSnapshot('c1', id)).toEqual(project(await ledger.history('c1', id)));
      expect((await checkLedger(db.pool, { tenant: 'c1' })).problems).toEqual([]);
      await expectDenseAndWhole(db.pool, 'c1');
    } finally {
      await admin.query('ALTER TABLE okit.job_history DROP CONSTRAINT test_no_poison');
    }
  });

  /** Blocks the tenant's head from another session, waits for the ledger's backend to queue behind it, kills that backend. */
  async function killWhileWaiting(tenant: string, during: () => Promise<unknown>): Promise<PromiseSettledResult<unknown>> {
    const blocker = await db.admin();
    await blocker.query('BEGIN');
    await blocker.query('SELECT pos FROM okit.ledger_heads WHERE tenant = $1 FOR UPDATE', [tenant]);
    const work = during().then(
      (value) => ({ status: 'fulfilled', value }) as const,
      (reason) => ({ status: 'rejected', reason }) as const,
    );
    let killed = 0;
    for (let i = 0; i < 500 && killed === 0; i++) {
      const { rows } = await admin.query(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1 AND wait_event_type = 'Lock'`,
        [(await blocker.query('SELECT pg_backend_pid() AS p')).rows[0].p],
      );
      killed = rows.length;
      if (!killed) await new Promise((r) => setTimeout(r, 10));
    }
    expect(killed).toBe(1);
    await blocker.query('ROLLBACK');
    await blocker.end();
    return work;
  }

  /** Each job's 'fetch' progress written exactly once, snapshots = project(history), the ledger sound and dense. */
  async function expectFetchedOnce(ledger: Ledger, tenant: string, ids: string[]): Promise<void> {
    for (const id of ids) {
      const h = await ledger.history(tenant, id);
      expect(h.filter((x) => x.event === 'progress' && x.data.phase === 'fetch').length).toBe(1);
      expect(await ledger.getSnapshot(tenant, id)).toEqual(project(h));
    }
    expect((await checkLedger(db.pool, { tenant })).problems).toEqual([]);
    await expectDenseAndWhole(db.pool, tenant);
  }

  for (const known of [false, true])
    it(`the connection killed in the middle of a batch (${known ? 'head known: killed while the write waits for the head' : 'taking the head lock'}): every change applied exactly once`, async () => {
      const tenant = known ? 'k2' : 'k1';
      const stats: BatchStats[] = [];
      const setup = new Ledger(db.pool);
      const ids = await running(setup, tenant, 8);
      const { ledger } = ledgerAt(db.pool, { onBatch: (s) => stats.push(s) });
      if (known) await ledger.progress(tenant, ids[0]!, W, { phase: 'resolve' }); // this ledger learns the head
      stats.length = 0;
      const before = await rowsByTx(db.pool, tenant);
      const r = await killWhileWaiting(tenant, () => Promise.all(ids.map((id) => ledger.progress(tenant, id, W, { phase: 'fetch', itemsDone: 1, itemsTotal: 2 }))));
      expect(r.status, String((r as PromiseRejectedResult).reason)).toBe('fulfilled');
      expect(stats[0]).toMatchObject({ units: 8, failed: true, retry: false });
      expect(stats.slice(1).every((s) => s.units === 1 && s.retry && !s.failed)).toBe(true);
      const after = await rowsByTx(db.pool, tenant);
      expect(after.length - before.length).toBe(8);
      await expectFetchedOnce(ledger, tenant, ids);
    });

  /**
   * A TCP proxy in front of Postgres that, once armed, cuts the connection at the batch's COMMIT:
   * after forwarding it (the batch commits, its answer is lost) or instead of forwarding it (it
   * never commits). Either way the writer sees a connection lost during COMMIT.
   */
  async function commitCutter(): Promise<{ url: string; arm(mode: 'after' | 'instead'): void; cuts: () => number; close(): Promise<void> }> {
    const target = new URL(db.url);
    let armed: 'after' | 'instead' | null = null;
    let cuts = 0;
    const sockets = new Set<net.Socket>();
    const srv = net.createServer((client) => {
      const server = net.connect(Number(target.port), target.hostname);
      sockets.add(client).add(server);
      let mute = false;
      client.on('data', (d) => {
        if (armed && d.includes('COMMIT')) {
          const mode = armed;
          armed = null;
          cuts++;
          mute = true;
          if (mode === 'after') server.write(d);
          setTimeout(() => (client.destroy(), server.destroy()), 300);
          return;
        }
        server.write(d);
      });
      server.on('data', (d) => !mute && client.write(d));
      const end = () => (client.destroy(), server.destroy());
      client.on('error', end).on('close', end);
      server.on('error', end).on('close', end);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const u = new URL(db.url);
    u.hostname = '127.0.0.1';
    u.port = String((srv.address() as net.AddressInfo).port);
    return {
      url: u.toString(),
      arm: (m) => (armed = m),
      cuts: () => cuts,
      close: async () => {
        for (const x of sockets) x.destroy();
        await new Promise((r) => srv.close(r));
      },
    };
  }

  for (const mode of ['after', 'instead'] as const)
    it(`the connection lost during COMMIT (${mode === 'after' ? 'it went through, the answer was lost' : 'it never arrived'}): the ledger is asked, each change written once`, async () => {
      const tenant = mode === 'after' ? 'x1' : 'x2';
      const cut = await commitCutter();
      const pool = createPool(cut.url, { max: 4 });
      try {
        const stats: BatchStats[] = [];
        const ids = await running(new Ledger(db.pool), tenant, 6);
        const ledger = new Ledger(pool, { onBatch: (st) => stats.push(st) });
        await ledger.progress(tenant, ids[0]!, W, { phase: 'resolve' });
        stats.length = 0;
        cut.arm(mode);
        const out = await Promise.all(ids.map((id) => ledger.progress(tenant, id, W, { phase: 'fetch' })));
        expect(cut.cuts()).toBe(1);
        expect(out.map((s) => s.phase)).toEqual(ids.map(() => 'fetch'));
        // 'after': the batch committed, found by its first row, answered as it was; 'instead': rolled back, then one by one.
        if (mode === 'after') expect(stats.map((st) => [st.units, st.failed])).toEqual([[6, false]]);
        else expect(stats.map((st) => [st.units, st.failed])).toEqual([[6, true], ...ids.map(() => [1, false])]);
        await expectFetchedOnce(ledger, tenant, ids);
      } finally {
        await pool.end();
        await cut.close();
      }
    });

  it('a database that stays away gives each caller a typed DB_UNAVAILABLE', async () => {
    const dead = new pg.Pool({ connectionString: 'postgres://nobody@127.0.0.1:1/none', max: 2 });
    dead.on('error', () => undefined);
    const ledger = new Ledger(dead);
    const out = await Promise.allSettled([1, 2, 3].map(() => ledger.progress('d1', '00000000-0000-4000-8000-000000000001', W, { phase: 'fetch' })));
    expect(out.map((o) => o.status === 'rejected' && (o.reason as { code: string }).code)).toEqual(['DB_UNAVAILABLE', 'DB_UNAVAILABLE', 'DB_UNAVAILABLE']);
    await dead.end();
  });
});

describe('known jobs: a running job this process wrote last is not read again', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
  });
  afterAll(async () => db.drop());

  /** Two writers on one database, as two processes, sharing a manual clock. */
  function pair(): { a: Ledger; b: Ledger; sa: BatchStats[]; clock: ReturnType<typeof ledgerAt>['clock'] } {
    const sa: BatchStats[] = [];
    const { ledger: a, clock } = ledgerAt(db.pool, { onBatch: (s) => sa.push(s) });
    return { a, b: new Ledger(db.pool, { clock }), sa, clock };
  }

  async function expectSound(l: Ledger, tenant: string, ids: string[]): Promise<void> {
    for (const id of ids) expect(await l.getSnapshot(tenant, id)).toEqual(project(await l.history(tenant, id)));
    expect((await checkLedger(db.pool, { tenant })).problems).toEqual([]);
    await expectDenseAndWhole(db.pool, tenant);
  }

  it('a known job another writer changed meanwhile: the write finds it stale, writes nothing, and the batch runs again with reads', async () => {
    const { a, b, sa } = pair();
    const ids = await running(a, 'n1', 4);
    await b.progress('n1', ids[0]!, W, { phase: 'resolve' }); // behind a's back
    sa.length = 0;
    const snaps = await Promise.all(ids.map((id) => a.progress('n1', id, W, { phase: 'fetch' })));
    expect(sa.map((s) => [s.units, s.positions, s.failed])).toEqual([
      [4, 4, true],
      [4, 4, false],
    ]);
    expect(sa[1]!.messages).toBe(4); // reads, head lock, write, COMMIT
    for (const [i, id] of ids.entries()) {
      const h = await a.history('n1', id);
      expect(h.map((r) => r.event)).toEqual(i === 0 ? ['enqueued', 'claimed', 'progress', 'progress'] : ['enqueued', 'claimed', 'progress']);
      expect(snaps[i]).toEqual(project(h));
    }
    // a now knows them again, as written.
    sa.length = 0;
    await Promise.all(ids.map((id) => a.complete('n1', id, W)));
    expect(sa.map((s) => [s.units, s.failed, s.messages])).toEqual([[4, false, 2]]);
    await expectSound(a, 'n1', ids);
  });

  it('a heartbeat moves the known lease with it; one through another writer makes the known row stale, and the extension survives', async () => {
    const { a, b, sa } = pair();
    const [x, y] = await running(a, 'n2', 2);
    const own = await a.heartbeat('n2', x!, W, 900);
    const other = await b.heartbeat('n2', y!, W, 1200);
    sa.length = 0;
    await a.progress('n2', x!, W, { phase: 'fetch' });
    await a.progress('n2', y!, W, { phase: 'fetch' });
    expect(sa.map((s) => [s.units, s.failed])).toEqual([
      [1, false],
      [1, true],
      [1, false],
    ]);
    expect((await a.getJob('n2', x!)).lease_expires_at).toBe(own.leaseExpiresAt);
    expect((await a.getJob('n2', y!)).lease_expires_at).toBe(other.leaseExpiresAt);
    await expectSound(a, 'n2', [x!, y!]);
  });

  it('a refusal made on a known job stands only if a read agrees: the job was claimed again elsewhere, with a new token', async () => {
    const { a, b, sa, clock } = pair();
    const [x] = await running(a, 'n3', 1, 'r');
    clock.advance(3600n * 1_000_000n); // the lease runs out; b requeues the job and the same worker id claims it through b
    expect(await b.expireLeases({ tenant: 'n3' })).toBe(1);
    const again = await b.claim('n3', { workerId: W, types: ['r'] });
    expect(again?.job.id).toBe(x);
    sa.length = 0;
    // a knows the old lease (another token): it would refuse; the read finds the caller's lease current.
    const snap = await a.progress('n3', x!, { workerId: W, leaseToken: again!.leaseToken }, { phase: 'fetch' });
    expect(snap.phase).toBe('fetch');
    // The refusal is dropped (no write); the read batch guesses the head where a's last write left
    // it, but b moved it: 'moved', and the batch runs again the locking way.
    expect(sa.map((s) => [s.units, s.positions, s.failed])).toEqual([
      [1, 0, false],
      [1, 1, true],
      [1, 1, false],
    ]);
    // And a refusal that a read confirms is still a refusal.
    await expectCode(() => a.progress('n3', x!, 'someone-else', { phase: 'fetch' }), 'LEASE_NOT_HELD');
    await expectSound(a, 'n3', [x!]);
  });
});

describe('several writers on one tenant (as several processes)', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
  });
  afterAll(async () => db.drop());

  it('a guess the other writer made stale writes nothing; the batch then takes the lock, and positions stay dense', async () => {
    const sa: BatchStats[] = [];
    const a = new Ledger(db.pool, { onBatch: (s) => sa.push(s) });
    const b = new Ledger(db.pool);
    const ids = await running(a, 'm1', 6);
    await a.progress('m1', ids[0]!, W, { phase: 'resolve' });
    await b.progress('m1', ids[1]!, W, { phase: 'resolve' }); // moves the head behind a's back
    sa.length = 0;
    await a.progress('m1', ids[2]!, W, { phase: 'resolve' });
    // The guess found the head moved (nothing written), and the same batch ran again under the lock.
    expect(sa.map((s) => [s.units, s.failed])).toEqual([
      [1, true],
      [1, false],
    ]);
    await Promise.all(ids.flatMap((id, i) => [(i % 2 ? a : b).progress('m1', id, W, { phase: 'fetch' })]));
    await Promise.all(ids.map((id, i) => (i % 2 ? b : a).complete('m1', id, W)));
    expect((await checkLedger(db.pool, { tenant: 'm1' })).problems).toEqual([]);
    await expectDenseAndWhole(db.pool, 'm1');
  });

  it('refuses batch options out of range', async () => {
    expect(() => new Ledger(db.pool, { batchMaxSize: 0 })).toThrow(/batch_max_size/);
    expect(() => new Ledger(db.pool, { batchMaxWaitMs: -1 })).toThrow(/batch_max_wait_ms/);
    expect(() => new Ledger(db.pool, { batchesInFlight: 0 })).toThrow(/batches_in_flight/);
    await expectCode(async () => new Ledger(db.pool, { batchesInFlight: 1.5 }), 'INVALID_INPUT');
  });
});

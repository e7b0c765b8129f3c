import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDb, type TestDb } from '../helpers/db.js';
import { FS, startTestServer, type TestServer } from '../helpers/serve.js';

async function until(cond: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('the LISTEN connection', () => {
  let db: TestDb;
  let t: TestServer;
  const listenPids = async () =>
    (await db.pool.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'okit-listen'")).rows.map((r) => r.pid as number);
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { listenerCheckMs: 300, listenerProbeTimeoutMs: 700 });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('is one connection per process, outside the pool, however many waiters', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'one' });
    const etag = (await t.get(FS(job.id), t.tokens.read)).headers.get('etag')!;
    const polls = Array.from({ length: 30 }, () => t.get(FS(job.id) + '?wait=10', t.tokens.read, { 'If-None-Match': etag }));
    await until(() => t.srv.waiters.size === 30);
    expect(await listenPids()).toHaveLength(1);
    await t.ledger.cancel('acme', job.id, { actor: 'ops' });
    const rs = await Promise.all(polls);
    expect(rs.map((r) => r.status)).toEqual(Array(30).fill(200));
  });

  it('when its backend is killed: not ready, reconnects by itself, wakes waiters, and NOTIFY works again', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'kill' });
    const etag = (await t.get(FS(job.id), t.tokens.read)).headers.get('etag')!;
    const before = t.srv.listener.stats.connects;
    const [pid] = await listenPids();
    const admin = await db.admin();
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await admin.end();
    await until(() => t.srv.listener.stats.connects > before && t.srv.listener.ready);
    const now = await listenPids();
    expect(now).toHaveLength(1); // the old subscriber did not linger
    expect(now[0]).not.toBe(pid);
    expect((await t.get('/readyz', null)).status).toBe(200);
    // Notifications flow through the new connection: a long-poll is woken well before its bound.
    const t0 = performance.now();
    const lp = t.get(FS(job.id) + '?wait=20', t.tokens.read, { 'If-None-Match': etag });
    await until(() => t.srv.waiters.size === 1);
    await t.ledger.claim('acme', { workerId: 'w', types: ['kill'] });
    expect((await lp).status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it('the probe round-trips through LISTEN', async () => {
    expect(await t.srv.listener.check()).toBe(true);
  });

  it('a half-open LISTEN connection (backend frozen, socket still open) is detected by the probe and replaced', async () => {
    const [pid] = await listenPids();
    const before = t.srv.listener.stats.losses;
    process.kill(pid!, 'SIGSTOP'); // the backend answers nothing, the TCP connection stays up
    try {
      await until(() => t.srv.listener.stats.losses > before);
      await until(() => t.srv.listener.ready);
      const pids = await listenPids();
      expect(pids).toContain(pid); // still there, frozen
      expect(pids.filter((p) => p !== pid)).toHaveLength(1); // and one new, working connection
      expect(await t.srv.listener.check()).toBe(true);
    } finally {
      process.kill(pid!, 'SIGCONT');
    }
    await until(async () => !(await listenPids()).includes(pid!)); // it goes away once it sees the closed socket
  });
});

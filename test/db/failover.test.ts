/**
 * A failover, the way an operator lives it: Debian's Postgres 15 as a primary with a
 * synchronous streaming standby (both started here), `okit serve` on the primary with
 * workers and watchers going through it; the primary crashes (pg_ctl stop -m immediate), the
 * standby is promoted, and the operator does what OFFLINE.md (Failover) says: clear
 * synchronous_standby_names on the new primary (no standby left to wait for) and restart
 * `okit serve` with DATABASE_URL pointing at it (node-postgres has no multi-host failover).
 *
 * Shown: every write okit acknowledged before the crash is on the new primary (synchronous
 * replication), the hash chains verify there (`okit ledger check`), every job finishes, and
 * every watcher ends on its job's true final signal (resynced across the restart).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { freePort, tempHome } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import { isOkitError } from '../../src/errors.js';
import { createToken } from '../../src/http/tokens.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { etagOf } from '../../src/signals/signal.js';
import { isRetryable, OkitClient } from '../../src/worker/client.js';
import { followJob, type FollowResult } from '../../src/worker/follow.js';
import { OKIT, ROOT, okit } from '../helpers/cli.js';
import { debianBindir, PgServer } from '../helpers/pg-server.js';

const JOBS = 24;
const WORKERS = 4;
const WATCHED = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `okit serve` as an operator runs it; resolves once it listens. */
async function serve(databaseUrl: string, port: number): Promise<{ child: ChildProcess; log: () => string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [OKIT, 'serve', '--port', String(port)], { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const t0 = performance.now();
  while (!out.includes('okit serve listening on')) {
    if (child.exitCode !== null || performance.now() - t0 > 30_000) throw new Error(`okit serve did not start: ${out}`);
    await sleep(20);
  }
  return {
    child,
    log: () => out,
    stop: async () => {
      if (child.exitCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(20_000).then(() => 'hung' as const)]);
      if (code === 'hung') {
        child.kill('SIGKILL');
        throw new Error('okit serve did not exit on SIGTERM');
      }
      return code;
    },
  };
}

type Acked = { enqueued: boolean; claimed: number; progress: number; succeeded: boolean };

describe('failover to a promoted synchronous standby (Debian Postgres 15)', () => {
  it('loses no acknowledged write, and watchers resync after the operator points okit at the new primary', { timeout: 180_000 }, async () => {
    const bindir = debianBindir();
    const base = tempHome('okit-failover-');
    const password = 'failover-' + Math.random().toString(36).slice(2);
    const primary = new PgServer(bindir, path.join(base, 'primary'), await freePort(), password);
    const standby = new PgServer(bindir, path.join(base, 'standby'), await freePort(), password);
    const servers: Array<Awaited<ReturnType<typeof serve>>> = [];
    const closers: Array<() => Promise<unknown>> = [];
    try {
      await primary.initdb();
      await primary.start();
      const admin = new pg.Client({ connectionString: primary.url() });
      await admin.connect();
      closers.push(() => admin.end().catch(() => undefined));
      await admin.query('CREATE DATABASE okit');
      // In postgresql.auto.conf, so the standby inherits it (as it would in real life).
      await admin.query("ALTER SYSTEM SET synchronous_standby_names = 'standby1'");
      await admin.query("ALTER SYSTEM SET synchronous_commit = 'on'");
      await admin.query('SELECT pg_reload_conf()');
      await standby.baseBackupOf(primary, 'standby1');
      await standby.start();
      for (const t0 = performance.now(); ; await sleep(50)) {
        const { rows } = await admin.query("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'");
        if (rows[0]?.sync_state === 'sync') break;
        if (performance.now() - t0 > 30_000) throw new Error('the standby never became synchronous');
      }
      await admin.end();
      closers.pop();

      const primaryUrl = primary.url('okit');
      const standbyUrl = standby.url('okit');
      await migrate(primaryUrl);
      const setup = createPool(primaryUrl, { max: 2 });
      const readToken = (await createToken(setup, { tenant: 'acme', scope: 'read' })).token;
      const workerToken = (await createToken(setup, { tenant: 'acme', scope: 'worker' })).token;
      await setup.end();

      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      servers.push(await serve(primaryUrl, port));
      const w = new OkitClient({ url, token: workerToken, timeoutMs: 8000 });
      const r = new OkitClient({ url, token: readToken, timeoutMs: 8000 });

      // Producer and workers: every call retried while the database or the server is away;
      // what was acknowledged is recorded.
      const acked = new Map<string, Acked>();
      const ack = (id: string) => acked.get(id) ?? (acked.set(id, { enqueued: false, claimed: 0, progress: 0, succeeded: false }), acked.get(id)!);
      let stopping = false;
      let retries = 0;
      const persist = async <T,>(f: () => Promise<T>): Promise<T> => {
        for (;;) {
          try {
            return await f();
          } catch (e) {
            if (!isRetryable(e) || stopping) throw e;
            retries++;
            await sleep(100);
          }
        }
      };
      const ids: string[] = [];
      const producer = (async () => {
        for (let i = 0; i < JOBS; i++) {
          const { job } = await persist(() => w.enqueue({ type: 'failover', idempotencyKey: `job-${i}`, maxAttempts: 20 }));
          ack(job.id).enqueued = true;
          if (!ids.includes(job.id)) ids.push(job.id);
          await sleep(i < WATCHED ? 0 : 150);
        }
      })();
      const conflict = (e: unknown) => isOkitError(e) && ['ILLEGAL_TRANSITION', 'LEASE_NOT_HELD'].includes(e.code);
      const workers = Array.from({ length: WORKERS }, async (_, k) => {
        const me = `w${k}`;
        while (!stopping) {
          const claim = await persist(() => w.claim({ workerId: me, types: ['failover'], leaseSeconds: 8 }));
          if (!claim) {
            await sleep(50);
            continue;
          }
          const id = claim.job.id;
          ack(id).claimed++;
          try {
            for (const done of [1, 2]) {
              await persist(() => w.progress(id, { workerId: me, leaseToken: claim.leaseToken, phase: 'analyze', summary: 'Scanning image layers', itemsDone: done, itemsTotal: 2 }));
              ack(id).progress++;
              await sleep(40);
            }
            await persist(() => w.complete(id, { workerId: me, leaseToken: claim.leaseToken, result: { ok: true } }));
            ack(id).succeeded = true;
          } catch (e) {
            // An unacknowledged attempt may have committed, or the lease ran out during the
            // outage (the job goes back to the queue): either way, move on.
            if (!conflict(e)) throw e;
          }
        }
      });
      const watchers: Array<Promise<FollowResult>> = [];
      while (ids.length < WATCHED) await sleep(10);
      for (const id of ids.slice(0, WATCHED)) watchers.push(followJob(r, id, { watch: true, out: () => undefined, retryMinMs: 100, retryMaxMs: 500 }));

      // Let some work be acknowledged, then crash the primary in the middle of it.
      const doneCount = () => [...acked.values()].filter((a) => a.succeeded).length;
      for (const t0 = performance.now(); doneCount() < 6; await sleep(20)) if (performance.now() - t0 > 60_000) throw new Error('no progress before the failover');
      const ackedAtCrash = new Map([...acked].map(([id, a]) => [id, { ...a }]));
      await primary.stop('immediate');
      const crashedAt = performance.now();
      // The old server notices and says so (readiness, not a hang).
      let notReady = false;
      while (!notReady && performance.now() - crashedAt < 10_000) {
        notReady = (await fetch(`${url}/readyz`).then((x) => x.status).catch(() => 0)) === 503;
        if (!notReady) await sleep(100);
      }
      expect(notReady, 'the old server reports not ready').toBe(true);

      // The operator: promote the standby; with no standby left for it, stop waiting for one
      // (else every commit would wait for standby1 for ever); restart okit serve on it.
      await standby.promote();
      const promoted = new pg.Client({ connectionString: standby.url() });
      await promoted.connect();
      expect((await promoted.query('SELECT pg_is_in_recovery() AS r')).rows[0].r).toBe(false);
      await promoted.query("ALTER SYSTEM SET synchronous_standby_names = ''");
      await promoted.query('SELECT pg_reload_conf()');
      await promoted.end();
      expect(await servers[0]!.stop()).toBe(0); // SIGTERM drains and exits cleanly, database or not
      servers.push(await serve(standbyUrl, port));

      await producer;
      for (const t0 = performance.now(); acked.size < JOBS || [...acked.values()].some((a) => !a.succeeded); await sleep(50))
        if (performance.now() - t0 > 90_000) throw new Error(`jobs unfinished after the failover: ${JSON.stringify([...acked.values()].filter((a) => !a.succeeded))}`);
      stopping = true;
      await Promise.all(workers);
      const followed = await Promise.race([Promise.all(watchers), sleep(30_000).then(() => null)]);
      expect(followed, 'every watcher finished').not.toBeNull();
      expect(retries, 'the clients did ride through an outage').toBeGreaterThan(0);

      // On the new primary: everything acknowledged, a verified ledger, watchers on the truth.
      const pool = createPool(standbyUrl, { max: 2 });
      closers.push(() => pool.end());
      const ledger = new Ledger(pool);
      let beforeCrash = 0;
      for (const [id, a] of ackedAtCrash) {
        const events = (await ledger.history('acme', id)).map((h) => h.event);
        const count = (e: string) => events.filter((x) => x === e).length;
        if (a.enqueued) expect(count('enqueued'), `job ${id}`).toBe(1);
        expect(count('claimed')).toBeGreaterThanOrEqual(a.claimed);
        expect(count('progress')).toBeGreaterThanOrEqual(a.progress);
        if (a.succeeded) expect(count('succeeded')).toBe(1);
        beforeCrash += a.claimed + a.progress + Number(a.enqueued) + Number(a.succeeded);
      }
      expect(beforeCrash, 'writes acknowledged before the crash').toBeGreaterThan(20);
      const jobs = await Promise.all(ids.map((id) => ledger.getJob('acme', id)));
      expect(jobs.map((j) => j.state)).toEqual(Array(JOBS).fill('succeeded'));
      for (let i = 0; i < WATCHED; i++) {
        const snap = await ledger.getSnapshot('acme', ids[i]!);
        expect(followed![i]!.etag, `watcher ${i} ends on the true final signal`).toBe(etagOf(snap));
        expect(followed![i]!.last?.kind).toBe('succeeded');
      }
      const check = await okit(['ledger', 'check'], { DATABASE_URL: standbyUrl });
      expect(check.code, check.stdout + check.stderr).toBe(0);
    } finally {
      for (const s of servers) await s.stop().catch(() => undefined);
      for (const c of closers.reverse()) await c().catch(() => undefined);
      await primary.kill();
      await standby.kill();
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});

import fs from 'node:fs';
/**
 * The big one: a dedicated Postgres (never the shared test cluster) is stopped for 10 s and
 * restarted while 50 watchers follow jobs that keep changing. Every watcher must end on its
 * job's true final state, and /readyz must go 503 and come back by itself.
 */
import { describe, expect, it } from 'vitest';
import { EmbeddedPostgres, tempHome } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import { Ledger } from '../../src/ledger/ledger.js';
import type { Signal } from '../../src/ledger/types.js';
import { etagOf, signalOf } from '../../src/signals/projection.js';
import { OkitClient } from '../../src/worker/client.js';
import { followJob, type FollowResult } from '../../src/worker/follow.js';
import { startTestServer } from '../helpers/serve.js';

const JOBS = 50;
const OUTAGE_MS = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Final = 'complete' | 'fail' | 'cancel';

describe('Postgres restart under load', () => {
  it('50 watchers end on their jobs\' true final states and /readyz recovers by itself', { timeout: 120_000 }, async () => {
    const pg = new EmbeddedPostgres(tempHome('okit-restart-'));
    await pg.start();
    const url = pg.url();
    await migrate(url);
    const pool = createPool(url, { max: 10 });
    const drivePool = createPool(url, { max: 6 });
    const t = await startTestServer(url, pool, { listenerCheckMs: 2000 });
    const drive = new Ledger(drivePool);
    try {
      // Jobs with their own type each, so a retried claim can never take another job.
      const jobs: { id: string; type: string; steps: number; final: Final; progressed: number }[] = [];
      for (let i = 0; i < JOBS; i++) {
        const type = `restart-${i}`;
        const { job } = await drive.enqueue('acme', { type, maxAttempts: 1 });
        jobs.push({ id: job.id, type, steps: 4 + (i % 5), final: i % 5 === 3 ? 'fail' : i % 5 === 4 ? 'cancel' : 'complete', progressed: 0 });
      }

      const client = new OkitClient({ url: t.base, token: t.tokens.read, timeoutMs: 5000 });
      const watchers: Promise<FollowResult & { lastEtag: string | null; seen: Signal[] }>[] = jobs.map(async (j) => {
        const seen: Signal[] = [];
        const r = await followJob(client, j.id, { watch: true, out: () => undefined, onSignal: (s) => seen.push(s), retryMinMs: 100, retryMaxMs: 1000 });
        return { ...r, lastEtag: r.etag, seen };
      });

      // Drivers: 5 loops over disjoint jobs, a step every ~15 ms, riding out the outage.
      let driverErrors = 0;
      const step = async (j: (typeof jobs)[number]): Promise<boolean> => {
        const job = await drive.getJob('acme', j.id);
        if (['succeeded', 'failed', 'dead_letter', 'canceled'].includes(job.state)) return true;
        if (job.state === 'queued') await drive.claim('acme', { workerId: `w-${j.type}`, types: [j.type], leaseSeconds: 600 });
        else if (j.progressed < j.steps) {
          await drive.progress('acme', j.id, `w-${j.type}`, { phase: 'analyze', summary: 'Scanning image layers', itemsDone: j.progressed + 1, itemsTotal: j.steps });
          j.progressed++;
        } else if (j.final === 'complete') await drive.complete('acme', j.id, `w-${j.type}`);
        else if (j.final === 'fail') await drive.fail('acme', j.id, `w-${j.type}`, { code: 'E_SCAN', message: 'layer unreadable', retryable: false });
        else await drive.cancel('acme', j.id, { actor: 'ops', reason: 'test' });
        return false;
      };
      const drivers = [0, 1, 2, 3, 4].map(async (k) => {
        const mine = jobs.filter((_, i) => i % 5 === k);
        let n = 0;
        while (mine.length) {
          const j = mine[n++ % mine.length]!;
          try {
            if (await step(j)) mine.splice(mine.indexOf(j), 1);
            await sleep(15);
          } catch {
            driverErrors++;
            await sleep(200);
          }
        }
      });

      await sleep(1000);
      const doneBefore = (await drivePool.query("SELECT count(*)::int AS n FROM okit.jobs WHERE state IN ('succeeded','failed','canceled')")).rows[0].n;
      expect(doneBefore).toBeLessThan(JOBS); // the outage hits while jobs are still changing

      await pg.stop('fast');
      const stoppedAt = performance.now();
      // Not ready while LISTEN is down.
      let sawNotReady = false;
      while (performance.now() - stoppedAt < 5000 && !sawNotReady) {
        sawNotReady = (await t.get('/readyz', null)).status === 503;
        if (!sawNotReady) await sleep(50);
      }
      expect(sawNotReady).toBe(true);
      await sleep(Math.max(0, OUTAGE_MS - (performance.now() - stoppedAt)));
      await pg.start();
      expect(pg.url()).toBe(url); // same port, same credentials

      // /readyz recovers by itself.
      const restartedAt = performance.now();
      let ready = false;
      while (performance.now() - restartedAt < 20_000 && !ready) {
        ready = (await t.get('/readyz', null)).status === 200;
        if (!ready) await sleep(100);
      }
      expect(ready).toBe(true);
      expect(t.srv.listener.stats.connects).toBeGreaterThanOrEqual(2);

      await Promise.all(drivers);
      expect(driverErrors).toBeGreaterThan(0); // the drivers really did hit the outage
      const results = await Promise.race([Promise.all(watchers), sleep(30_000).then(() => null)]);
      expect(results, 'every watcher finished').not.toBeNull();

      for (let i = 0; i < JOBS; i++) {
        const snap = await drive.getSnapshot('acme', jobs[i]!.id);
        const r = results![i]!;
        expect(r.lastEtag, `watcher ${i} ends on the true final ETag`).toBe(etagOf(snap));
        expect(r.last).toEqual(signalOf(snap));
        expect(['succeeded', 'failed', 'canceled']).toContain(r.last!.kind);
        expect(r.exitCode).toBe(snap.kind === 'succeeded' ? 0 : 1);
        const want = jobs[i]!.final === 'complete' ? 'succeeded' : jobs[i]!.final === 'fail' ? 'failed' : 'canceled';
        expect(snap.kind).toBe(want);
      }
    } finally {
      await t.srv.close();
      await pool.end().catch(() => undefined);
      await drivePool.end().catch(() => undefined);
      await pg.destroy();
      fs.rmSync(pg.home, { recursive: true, force: true });
    }
  });
});

/**
 * OkitWorker against a real server (in this process) and a real Postgres: concurrency,
 * heartbeats past the lease, cancel aborting the handler (pushed, and by heartbeat only),
 * errors mapped onto retryable / terminal fails, a 429 reported and retried in one call, drain,
 * and a server that goes away mid-job.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OkitClient, OkitWorker, RetryableError, UpstreamError, type Job, type WorkerOptions } from '../../src/index.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, ms = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('OkitWorker', () => {
  let db: TestDb;
  let t: TestServer;
  let client: OkitClient;
  let admin: OkitClient;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { sweepMs: 200 });
    client = new OkitClient({ url: t.base, token: t.tokens.worker });
    admin = new OkitClient({ url: t.base, token: t.tokens.admin });
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  const worker = (o: Partial<WorkerOptions> & Pick<WorkerOptions, 'types' | 'handler'>) => new OkitWorker({ client, claimWaitSeconds: 2, ...o });
  const state = async (id: string) => (await client.getJob(id)).state;
  const events = async (id: string) => (await client.history(id)).map((h) => h.event);

  it('honours concurrency and completes every job with its result', async () => {
    const jobs = await client.enqueueMany(Array.from({ length: 6 }, (_, i) => ({ type: 'conc', payload: { i } })));
    let now = 0;
    let max = 0;
    const w = worker({
      types: ['conc'],
      concurrency: 2,
      handler: async (job) => {
        max = Math.max(max, ++now);
        await sleep(150);
        now--;
        return { doubled: (job.payload as { i: number }).i * 2 };
      },
    });
    const done: string[] = [];
    w.on('completed', (e) => done.push(e.job.id));
    const run = w.run();
    await until('six completions', () => done.length === 6);
    await w.stop();
    await run;
    expect(max).toBe(2);
    for (const { job } of jobs) {
      const h = await client.history(job.id);
      expect(h.map((r) => r.event)).toEqual(['enqueued', 'claimed', 'succeeded']);
      expect(h[2]!.data.result).toEqual({ doubled: (job.payload as { i: number }).i * 2 });
    }
  });

  it('heartbeats keep a job alive past its lease seconds', async () => {
    const { job } = await client.enqueue({ type: 'long' });
    const w = worker({ types: ['long'], leaseSeconds: 2, handler: async (_j, ctx) => {
      await sleep(5000); // 2.5 leases
      expect(ctx.signal.aborted).toBe(false);
      return { slept: 5 };
    } });
    const run = w.run();
    await until('succeeded', async () => (await state(job.id)) === 'succeeded', 20_000);
    await w.stop();
    await run;
    expect(await events(job.id)).toEqual(['enqueued', 'claimed', 'succeeded']); // no lease_expired, one attempt
  });

  for (const watchCancel of [true, false])
    it(`cancel aborts a running handler and nothing is reported for it (${watchCancel ? 'pushed by the first-signal long-poll' : 'found by the heartbeat'})`, async () => {
      const { job } = await client.enqueue({ type: `cancel-${watchCancel}` });
      let abortedAt = 0;
      let reason: unknown;
      const w = worker({
        types: [`cancel-${watchCancel}`],
        leaseSeconds: 3,
        watchCancel,
        handler: (_j, ctx) =>
          new Promise((_, reject) => {
            ctx.signal.addEventListener('abort', () => {
              abortedAt = performance.now();
              reason = ctx.signal.reason;
              reject(ctx.signal.reason);
            });
          }),
      });
      const seen: string[] = [];
      w.on('canceled', () => seen.push('canceled'));
      w.on('completed', () => seen.push('completed'));
      w.on('failed', () => seen.push('failed'));
      const run = w.run();
      await until('running', async () => (await state(job.id)) === 'running');
      await sleep(300);
      const t0 = performance.now();
      await admin.cancel(job.id, { reason: 'test' });
      await until('aborted', () => abortedAt > 0, 10_000);
      const ms = abortedAt - t0;
      // Bounded by the heartbeat interval (1 s here), or far less when pushed.
      expect(ms).toBeLessThan(watchCancel ? 1000 : 1000 + 1500);
      await until('canceled event', () => seen.length > 0);
      await w.stop();
      await run;
      expect(seen).toEqual(['canceled']);
      expect((reason as { code: string }).code).toBe('JOB_CANCELED');
      expect(await events(job.id)).toEqual(['enqueued', 'claimed', 'canceled']);
    });

  it('maps errors: RetryableError retries, another error fails terminally with its code, a bad result is RESULT_INVALID', async () => {
    const [r, f, x, bad] = (await client.enqueueMany([{ type: 'err', payload: 'retry', maxAttempts: 2 }, { type: 'err', payload: 'fatal' }, { type: 'err', payload: 'plain' }, { type: 'err', payload: 'bad' }])).map((e) => e.job);
    const w = worker({
      types: ['err'],
      concurrency: 4,
      handler: async (job: Job) => {
        if (job.payload === 'retry') throw new RetryableError('mirror timed out', { code: 'MIRROR_TIMEOUT' });
        if (job.payload === 'fatal') throw Object.assign(new Error('layer 3 of 5 is truncated\nsecond line'), { code: 'LAYER_EXTRACT_FAILED' });
        if (job.payload === 'plain') throw new Error('');
        return [1, 2] as unknown as Record<string, unknown>;
      },
    });
    const failed: Array<{ id: string; code: string; retryable: boolean }> = [];
    w.on('failed', (e) => failed.push({ id: e.job.id, code: e.code, retryable: e.retryable }));
    const run = w.run();
    await until('four failures', () => failed.length >= 4);
    await w.stop();
    await run;
    const hist = async (id: string) => (await client.history(id)).at(-1)!;
    expect((await hist(r!.id)).event).toBe('retry_scheduled');
    expect((await hist(r!.id)).data.error).toEqual({ code: 'MIRROR_TIMEOUT', message: 'mirror timed out' });
    expect((await hist(f!.id)).event).toBe('failed');
    expect((await hist(f!.id)).data.error).toEqual({ code: 'LAYER_EXTRACT_FAILED', message: 'layer 3 of 5 is truncated\\u000asecond line' });
    expect((await hist(x!.id)).data.error).toEqual({ code: 'HANDLER_ERROR', message: '(no message)' });
    expect((await hist(bad!.id)).data.error).toMatchObject({ code: 'RESULT_INVALID' });
  });

  it('an error carrying an upstream 429 with Retry-After reports the throttle and retries, in one call', async () => {
    const src = await t.ledger.createSource('acme', { name: 'adv', host: 'advisories.example' });
    await t.ledger.configureThrottle('acme', 'advisories.example', { capacity: 5, refillPerSec: 4 });
    const { job } = await client.enqueue({ type: 'up', sourceId: src.id });
    const w = worker({ types: ['up'], handler: async () => {
      throw new UpstreamError('advisories.example answered 429', { status: 429, retryAfterSeconds: 20 });
    } });
    const run = w.run();
    await until('retry scheduled', async () => (await events(job.id)).includes('retry_scheduled'));
    await w.stop();
    await run;
    const last = (await client.history(job.id)).at(-1)!;
    expect(last.data.upstream).toEqual({ status: 429, retry_after_seconds: '20', host: 'advisories.example' });
    expect(last.data.error).toMatchObject({ code: 'UPSTREAM_429' });
    expect(Number(last.data.backoff_seconds)).toBeGreaterThanOrEqual(20);
    const { rows } = await db.pool.query("SELECT refill_per_sec::text AS r, tokens::text AS t FROM okit.throttles WHERE tenant = 'acme' AND host = 'advisories.example'");
    expect(Number(rows[0].r)).toBe(2);
    expect(Number(rows[0].t)).toBe(0);
  });

  it('drains on stop(): stops claiming, lets running handlers finish, nothing lost or done twice', async () => {
    const jobs = (await client.enqueueMany(Array.from({ length: 4 }, () => ({ type: 'drain' })))).map((e) => e.job.id);
    const ran: string[] = [];
    const w = worker({ types: ['drain'], concurrency: 2, handler: async (job) => {
      ran.push(job.id);
      await sleep(800);
      return {};
    } });
    const run = w.run();
    await until('two running', () => ran.length === 2);
    await w.stop();
    await run;
    expect(ran.length).toBe(2); // no claim after stop()
    for (const id of ran) expect(await state(id)).toBe('succeeded');
    const rest = jobs.filter((id) => !ran.includes(id));
    for (const id of rest) expect(await events(id)).toEqual(['enqueued']);
    // Another worker takes the rest; each job ran exactly once.
    const w2 = worker({ types: ['drain'], handler: async (job) => void ran.push(job.id) });
    const run2 = w2.run();
    await until('all done', async () => (await Promise.all(jobs.map(state))).every((s) => s === 'succeeded'));
    await w2.stop();
    await run2;
    expect([...ran].sort()).toEqual([...jobs].sort());
  });

  it('a handler that outlives the drain bound is aborted and failed retryably (WORKER_STOPPED)', async () => {
    const { job } = await client.enqueue({ type: 'slow-drain' });
    const w = worker({ types: ['slow-drain'], drainSeconds: 0.3, handler: (_j, ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))) });
    const run = w.run();
    await until('running', async () => (await state(job.id)) === 'running');
    await w.stop();
    await run;
    const last = (await client.history(job.id)).at(-1)!;
    expect(last.event).toBe('retry_scheduled');
    expect(last.data.error).toMatchObject({ code: 'WORKER_STOPPED' });
  });

  it('a job timeout aborts the handler and fails the job retryably (JOB_TIMEOUT)', async () => {
    const { job } = await client.enqueue({ type: 'timeout' });
    const w = worker({ types: ['timeout'], timeoutSeconds: 0.5, handler: (_j, ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))) });
    const run = w.run();
    await until('retry', async () => (await events(job.id)).includes('retry_scheduled'));
    await w.stop();
    await run;
    expect((await client.history(job.id)).at(-1)!.data.error).toMatchObject({ code: 'JOB_TIMEOUT' });
  });

  it('progress from the handler becomes the signal; a bad progress report is the handler’s error', async () => {
    const { job } = await client.enqueue({ type: 'prog' });
    const w = worker({ types: ['prog'], handler: async (_j, ctx) => {
      await ctx.progress('analyze', { itemsDone: 3, itemsTotal: 10, summary: 'Scanning layers' });
      await ctx.progress('no-such-phase');
    } });
    const run = w.run();
    await until('failed', async () => (await state(job.id)) === 'failed');
    await w.stop();
    await run;
    const h = await client.history(job.id);
    expect(h.find((r) => r.event === 'progress')?.data).toMatchObject({ phase: 'analyze', items_done: 3, items_total: 10 });
    expect(h.at(-1)!.data.error).toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('refuses bad options at construction, and a bad token stops run() with its error', async () => {
    expect(() => new OkitWorker({ client, types: [], handler: async () => undefined })).toThrow(/types/);
    expect(() => new OkitWorker({ client, types: ['x'], concurrency: 0, handler: async () => undefined })).toThrow(/concurrency/);
    expect(() => new OkitWorker({ client, types: ['x'], leaseSeconds: 0, handler: async () => undefined })).toThrow(/lease_seconds/);
    const bad = new OkitWorker({ url: t.base, token: 'okit_' + 'A'.repeat(43), types: ['x'], handler: async () => undefined });
    await expect(bad.run()).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });
});

describe('OkitWorker when the server goes away mid-job', () => {
  it('heartbeats retry with backoff until the lease would expire, then the handler is aborted and no success is reported', async () => {
    const db = await freshDb();
    const t = await startTestServer(db.url, db.pool, { sweepMs: 60_000 });
    const client = new OkitClient({ url: t.base, token: t.tokens.worker, timeoutMs: 500 });
    const { job } = await client.enqueue({ type: 'away' });
    let aborted: unknown;
    let finished = false;
    const w = new OkitWorker({
      client,
      types: ['away'],
      leaseSeconds: 3,
      claimWaitSeconds: 1,
      handler: (_j, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            aborted = ctx.signal.reason;
            setTimeout(() => {
              finished = true;
              resolve({ done: true }); // returns a result anyway: it must not be reported
            }, 50);
          });
        }),
    });
    const lost: string[] = [];
    const warns: string[] = [];
    w.on('leaseLost', (e) => lost.push(e.reason));
    w.on('warn', (e) => warns.push(e.message));
    w.on('completed', () => lost.push('completed!'));
    const run = w.run();
    await until('running', async () => (await client.getJob(job.id)).state === 'running');
    const t0 = performance.now();
    await t.srv.close(); // the server is gone; the database stays
    await until('aborted', () => aborted !== undefined, 15_000);
    const ms = performance.now() - t0;
    await until('finished', () => finished);
    await until('leaseLost', () => lost.length > 0);
    expect(lost).toEqual(['lease-expired']);
    expect((aborted as { code: string }).code).toBe('LEASE_NOT_HELD');
    expect(ms).toBeGreaterThan(1000); // it kept trying while the lease lasted (3 s from the last heartbeat)
    expect(ms).toBeLessThan(6000);
    expect(warns.some((m) => /heartbeat .* failed/.test(m))).toBe(true);
    await w.stop();
    await run;
    const { rows } = await db.pool.query('SELECT state FROM okit.jobs WHERE id = $1', [job.id]);
    expect(rows[0].state).toBe('running'); // never reported as a success; the reaper will return it
    await db.drop();
  }, 60_000);
});

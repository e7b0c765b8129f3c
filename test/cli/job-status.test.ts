import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJobHistory, runJobStatus } from '../../src/cli/job.js';
import { OkitClient } from '../../src/worker/client.js';
import { followJob } from '../../src/worker/follow.js';
import { captureIo } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const capture = captureIo;

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('okit job status', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool);
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('--watch prints one line per signal and exits 0 on succeeded', async () => {
    for (let i = 0; i < 2; i++) await t.ledger.enqueue('acme', { type: 'watch' }); // two ahead in the queue
    const { job } = await t.ledger.enqueue('acme', { type: 'watch' });
    const io = capture({ OKIT_URL: t.base, OKIT_TOKEN: t.tokens.read });
    const run = runJobStatus(job.id, { watch: true }, io);
    await until(() => io.lines.length === 1);
    for (let i = 0; i < 2; i++) {
      const c = await t.ledger.claim('acme', { workerId: 'w0', types: ['watch'] });
      await t.ledger.complete('acme', c!.job.id, 'w0');
    }
    await t.ledger.claim('acme', { workerId: 'scanner-1', types: ['watch'] });
    await until(() => io.lines.length === 2);
    await t.ledger.progress('acme', job.id, 'scanner-1', { phase: 'analyze', summary: 'Scanning image layers', itemsDone: 47, itemsTotal: 100 });
    await until(() => io.lines.length === 3);
    await t.ledger.complete('acme', job.id, 'scanner-1');
    expect(await run).toBe(0);
    expect(io.lines).toHaveLength(4);
    expect(io.lines[0]).toBe('[queued] Waiting in queue (position: 3); no ETA yet: no watch job has succeeded');
    expect(io.lines[1]).toBe('[started] Job started on scanner-1');
    // One count sample: no rate yet, so the p50 rule. The w0 runs took a few ms (p50 0s): once the
    // scanner's run is longer than theirs the summary says so; a loaded machine decides which.
    expect(io.lines[2]).toMatch(/^\[phase:analyze\] Scanning image layers \(47%\)(; taking longer than usual \(p50 0s\))?$/);
    expect(io.lines[3]).toMatch(/^\[succeeded\] Completed in \d+s$/);
  });

  it('exits 1 on failed and on canceled; without --watch prints the current line once', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'doomed', maxAttempts: 1 });
    const once = capture({});
    expect(await runJobStatus(job.id, { url: t.base, token: t.tokens.read }, once)).toBe(0);
    expect(once.lines).toEqual(['[queued] Waiting in queue (position: 1); no ETA yet: no doomed job has succeeded']);

    const io = capture({ OKIT_URL: t.base, OKIT_TOKEN: t.tokens.read });
    const run = runJobStatus(job.id, { watch: true }, io);
    await until(() => io.lines.length === 1);
    await t.ledger.claim('acme', { workerId: 'w1', types: ['doomed'] });
    await t.ledger.fail('acme', job.id, 'w1', { code: 'E_BOOM', message: 'exploded', retryable: false });
    expect(await run).toBe(1);
    expect(io.lines[io.lines.length - 1]).toBe('[failed] Failed: exploded (E_BOOM)');

    const { job: j2 } = await t.ledger.enqueue('acme', { type: 'cancelme' });
    const io2 = capture({ OKIT_URL: t.base, OKIT_TOKEN: t.tokens.read });
    const run2 = runJobStatus(j2.id, { watch: true }, io2);
    await until(() => io2.lines.length === 1);
    await t.ledger.cancel('acme', j2.id, { actor: 'ops', reason: 'superseded' });
    expect(await run2).toBe(1);
    expect(io2.lines).toEqual(['[queued] Waiting in queue (position: 1); no ETA yet: no cancelme job has succeeded', '[canceled] Canceled by ops: superseded']);
  });

  it('an idle follower makes about one request per 2 s (long-poll), and reports time to first signal', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'idle' });
    const ac = new AbortController();
    const lines: string[] = [];
    const p = followJob(new OkitClient({ url: t.base, token: t.tokens.read }), job.id, { watch: true, out: (l) => lines.push(l), signal: ac.signal });
    await new Promise((r) => setTimeout(r, 2500));
    ac.abort();
    const r = await p;
    expect(r.ttfsMs).not.toBeNull();
    expect(lines).toHaveLength(1);
    // 1 initial GET + at most 2 long-polls in 2.5 s (each held ≥ 2 s).
    expect(r.requests).toBeLessThanOrEqual(3);
  });

  it('the okit binary: job status --watch prints lines and exits 1 on canceled; a bad token exits 2', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'bin' });
    const child = spawn(process.execPath, ['dist/cli/main.js', 'job', 'status', job.id, '--watch', '--url', t.base, '--token', t.tokens.read], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exit = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    await until(() => out.includes('[queued]'));
    await t.ledger.cancel('acme', job.id, { actor: 'ops' });
    expect(await exit).toBe(1);
    expect(out.trim().split('\n')).toEqual(['[queued] Waiting in queue (position: 1); no ETA yet: no bin job has succeeded', '[canceled] Canceled by ops']);

    const bad = spawn(process.execPath, ['dist/cli/main.js', 'job', 'status', job.id, '--url', t.base, '--token', 'okit_' + 'B'.repeat(43)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    bad.stderr.on('data', (d) => (err += d));
    expect(await new Promise((r) => bad.on('close', r))).toBe(2);
    expect(err).toContain('UNAUTHORIZED');
  });
  it('job history prints the chain the failed signal points at; a foreign tenant gets JOB_NOT_FOUND', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'hist', maxAttempts: 1 });
    await t.ledger.claim('acme', { workerId: 'w9', types: ['hist'] });
    await t.ledger.fail('acme', job.id, 'w9', { code: 'BOOM', message: 'it broke', retryable: false });
    const snap = await t.ledger.getSnapshot('acme', job.id);
    expect(snap.next_actions?.map((a) => a.command)).toContain(`okit job history ${job.id}`);
    const io = capture({ OKIT_URL: t.base, OKIT_TOKEN: t.tokens.read });
    expect(await runJobHistory(job.id, {}, io)).toBe(0);
    expect(io.lines.map((l) => l.split(/\s+/).filter(Boolean)[2])).toEqual(['enqueued', 'claimed', 'failed']);
    const json = capture({ OKIT_URL: t.base, OKIT_TOKEN: t.tokens.read });
    await runJobHistory(job.id, { json: true }, json);
    const rows = json.lines.map((l) => JSON.parse(l));
    expect(rows.map((r) => r.n)).toEqual([1, 2, 3]);
    expect(rows[2].prev_hash).toBe(rows[1].hash);
    await expect(new OkitClient({ url: t.base, token: t.tokens.otherRead }).history(job.id)).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' });
  });
});

/**
 * The operator's commands as a user runs them (child processes against an in-process server):
 * table output and --json, typed errors with exit 2, JSONL enqueue all or nothing.
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDb, type TestDb } from '../helpers/db.js';
import { okit } from '../helpers/cli.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

describe('okit sources|throttle|signatures|job|queue|run', () => {
  let db: TestDb;
  let t: TestServer;
  let dir: string;
  const as = (token: string) => (args: string[]) => okit(args, { OKIT_URL: t.base, OKIT_TOKEN: token });
  let admin: ReturnType<typeof as>;
  let worker: ReturnType<typeof as>;
  let read: ReturnType<typeof as>;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool);
    admin = as(t.tokens.admin);
    worker = as(t.tokens.worker);
    read = as(t.tokens.read);
    dir = mkdtempSync(join(tmpdir(), 'okit-cli-control-'));
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await t.srv.close();
    await db.drop();
  });

  it('sources add/list, throttle set/list: tables and --json; scope and bad input exit 2', async () => {
    const a = await admin(['sources', 'add', '--name', 'registry', '--host', 'registry.example']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/^ID\s+NAME\s+HOST\s+CREATED\n\S+\s+registry\s+registry\.example\s+yes\n$/);
    const l = await read(['sources', 'list', '--json']);
    expect(JSON.parse(l.stdout.trim())).toMatchObject({ name: 'registry', host: 'registry.example' });
    const f = await read(['sources', 'add', '--name', 'x', '--host', 'x.example']);
    expect(f.code).toBe(2);
    expect(f.stderr).toContain('okit: error FORBIDDEN');
    const s = await admin(['throttle', 'set', 'registry.example', '--capacity', '5', '--refill', '0.5']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/registry\.example\s+5\s+5\s+0\.5\s+0\.5\s+-\s+-/);
    const bad = await admin(['throttle', 'set', 'registry.example', '--capacity', 'lots', '--refill', '1']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('INVALID_INPUT');
    const tl = await read(['throttle', 'list', '--json']);
    expect(JSON.parse(tl.stdout.trim())).toMatchObject({ host: 'registry.example', capacity: '5' });
  });

  it('signatures add/list/retire; an invalid regex is exit 2 with the RE2 error', async () => {
    const bad = await admin(['signatures', 'add', '--error-code', 'E_LAYER', '--field', 'image=(x', '--cause', 'c']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/INVALID_INPUT: pattern\.payload\.image: not a valid RE2 regex: missing \)/);
    const ok = await admin(['signatures', 'add', '--type', 'scan', '--error-code', 'E_LAYER', '--field', 'image=^legacy/', '--cause', 'legacy image', '--action', 'rebuild', '--mttr', '300', '--confidence', '0.9', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const sig = JSON.parse(ok.stdout).signature;
    const list = await read(['signatures', 'list']);
    expect(list.stdout).toContain('legacy image');
    expect(list.stdout).toContain(sig.id);
    const other = await admin(['signatures', 'add', '--error-code', 'E_OTHER', '--cause', 'temporary', '--json']);
    const otherId = JSON.parse(other.stdout).signature.id;
    const r = await admin(['signatures', 'retire', otherId]);
    expect(r.code, r.stderr).toBe(0);
    expect((await read(['signatures', 'list'])).stdout).not.toContain(otherId);
    expect((await read(['signatures', 'list', '--all'])).stdout).toContain(otherId);
  });

  it('job enqueue --payload and --file (JSONL: a bad line N says "line N" and enqueues nothing)', async () => {
    const one = await worker(['job', 'enqueue', '--type', 'scan', '--payload', '{"image":"app:1"}', '--idempotency-key', 'k1', '--max-attempts', '1', '--priority', '-5']);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/\S+\s+scan\s+yes/);
    const again = await worker(['job', 'enqueue', '--type', 'scan', '--payload', '{"image":"app:1"}', '--idempotency-key', 'k1', '--max-attempts', '1', '--json']);
    expect(JSON.parse(again.stdout.trim())).toMatchObject({ type: 'scan', created: false });
    const file = join(dir, 'jobs.jsonl');
    const lines = Array.from({ length: 5 }, (_, i) => JSON.stringify({ type: 'scan', payload: { image: `legacy/app:${i}` }, max_attempts: 1 }));
    writeFileSync(file, [lines[0], lines[1], '', '{"type": "scan", "payload": ', lines[3]].join('\n') + '\n');
    const before = (await db.pool.query('SELECT count(*)::int AS n FROM okit.jobs')).rows[0].n;
    const r1 = await worker(['job', 'enqueue', '--file', file]);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toContain('INVALID_INPUT: line 4: not valid JSON');
    writeFileSync(file, [lines[0], lines[1], JSON.stringify({ type: 'bad type!' })].join('\n') + '\n');
    const r2 = await worker(['job', 'enqueue', '--file', file]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/INVALID_INPUT: line 3: type: must match/);
    writeFileSync(file, [lines[0], JSON.stringify({ type: 'scan', colour: 'red' })].join('\n') + '\n');
    expect((await worker(['job', 'enqueue', '--file', file])).stderr).toContain('line 2: colour: unknown field');
    expect((await db.pool.query('SELECT count(*)::int AS n FROM okit.jobs')).rows[0].n).toBe(before);
    writeFileSync(file, lines.join('\n') + '\n');
    const ok = await worker(['job', 'enqueue', '--file', file, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim().split('\n').map((l) => JSON.parse(l).created)).toEqual([true, true, true, true, true]);
  });

  it('job list (filters, table, --json), get; dead-letter review shows last error, attempts, signature; retry, prioritize, cancel', async () => {
    // Two scan jobs dead-letter (max_attempts 1) through the worker API.
    for (let i = 0; i < 2; i++) {
      const c = (await t.ledger.claim('acme', { workerId: 'w1', types: ['scan'] }))!;
      await t.ledger.fail('acme', c.job.id, 'w1', { code: 'E_LAYER', message: 'layer 3 broken' });
    }
    const list = await read(['job', 'list', '--type', 'scan']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^ID\s+TYPE\s+STATE\s+SIGNAL\s+AGE\s+ATTEMPTS\s+LAST_ERROR\s+SIGNATURE$/);
    expect(list.stdout).toMatch(/totals: queued=4 dead_letter=2/);
    const dl = await read(['job', 'list', '--state', 'dead_letter']);
    expect(dl.stdout).toMatch(/dead_letter\s+\[failed\] Dead-lettered after 1 of 1 attempts: layer 3 broken \(E_LAYER\)\s+\S+\s+1\/1\s+E_LAYER: layer 3 broken\s+legacy image \(/);
    const js = await read(['job', 'list', '--state', 'dead_letter', '--json']);
    const rows = js.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.at(-1)).toMatchObject({ totals: { dead_letter: 2 }, next_cursor: null });
    const dead = rows.slice(0, -1);
    expect(dead).toHaveLength(2);
    expect((await read(['job', 'list', '--state', 'nope'])).code).toBe(2);
    const paged = await read(['job', 'list', '--limit', '2']);
    expect(paged.stdout).toMatch(/more: --cursor \S+/);
    const all = await read(['job', 'list', '--limit', '2', '--all', '--json']);
    expect(all.stdout.trim().split('\n').length).toBe(7);
    const get = await read(['job', 'get', dead[0].id]);
    expect(get.stdout).toMatch(/^id\s+\S+\nt/);
    expect(get.stdout).toContain('payload          {"image":"legacy/app:');
    const forbidden = await read(['job', 'retry', dead[0].id]);
    expect(forbidden.code).toBe(2);
    const one = await admin(['job', 'retry', dead[0].id, '--reason', 'mirror resynced']);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/\[queued\] Retried by token:\S+: mirror resynced; waiting in queue \(1 attempt given back\)/);
    const illegal = await admin(['job', 'retry', dead[0].id]);
    expect(illegal.code).toBe(2);
    expect(illegal.stderr).toContain('ILLEGAL_TRANSITION');
    const bulk = await admin(['job', 'retry', '--all-dead-letters', '--type', 'scan', '--limit', '10']);
    expect(bulk.code, bulk.stderr).toBe(0);
    expect(bulk.stdout).toContain('retried 1 dead-lettered scan job(s)');
    expect((await admin(['job', 'retry', '--all-dead-letters'])).code).toBe(2);
    const p = await admin(['job', 'prioritize', dead[1].id, '50', '--json']);
    expect(JSON.parse(p.stdout)).toMatchObject({ signal: { diagnostics: { priority: 50 } } });
    expect((await admin(['job', 'prioritize', dead[1].id, 'high'])).code).toBe(2);
    const c = await admin(['job', 'cancel', dead[1].id, '--reason', 'duplicate']);
    expect(c.stdout).toMatch(/\[canceled\] Canceled by token:\S+: duplicate/);
  });

  it('queue pause/list/resume', async () => {
    const p = await admin(['queue', 'pause', 'scan', '--reason', 'registry maintenance']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/^scan: paused; \d+ waiting job\(s\) marked paused/);
    const l = await read(['queue', 'list']);
    expect(l.stdout).toMatch(/scan\s+\d+\s+0\s+0\s+by token:\S+ at \S+: registry maintenance/);
    const signals = await read(['job', 'list', '--state', 'queued', '--json']);
    for (const line of signals.stdout.trim().split('\n').slice(0, -1)) expect(JSON.parse(line).signal.summary).toMatch(/^Paused by token:\S+: registry maintenance$/);
    const r = await admin(['queue', 'resume', 'scan']);
    expect(r.stdout).toMatch(/^scan: resumed/);
  });

  it('run create, run status (one line, --json), run status --watch follows to the end (exit 1 when a job failed), run jobs', async () => {
    const c = await worker(['run', 'create', '--json']);
    expect(c.code, c.stderr).toBe(0);
    const run = JSON.parse(c.stdout).run;
    const { job } = await t.ledger.enqueue('acme', { type: 'rn', runId: run.id });
    const s = await read(['run', 'status', run.id]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toBe('[queued] 0 of 1 job done\n');
    const watching = read(['run', 'status', run.id, '--watch', '--verbose']);
    await new Promise((r) => setTimeout(r, 700));
    const claim = (await t.ledger.claim('acme', { workerId: 'w1', types: ['rn'] }))!;
    await t.ledger.fail('acme', claim.job.id, 'w1', { code: 'E', message: 'no', retryable: false });
    const w = await watching;
    expect(w.code, w.stderr).toBe(1);
    expect(w.stdout.trim().split('\n').at(-1)).toBe('[failed] 1 of 1 job done, 1 failed');
    expect(w.stderr).toMatch(/time to first signal [0-9.]+ ms/);
    const { rows } = await db.pool.query('SELECT surface, run_id, job_id FROM okit.ttfs_events WHERE run_id = $1', [run.id]);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows[0]).toMatchObject({ job_id: job.id });
    const jobs = await read(['run', 'jobs', run.id, '--json']);
    expect(JSON.parse(jobs.stdout.trim().split('\n')[0]!)).toMatchObject({ id: job.id, state: 'failed' });
    expect((await read(['run', 'status', 'not-a-uuid'])).code).toBe(2);
  });
});

/**
 * Several processes, many callers: 32 callers in 2 processes make 10,000 transitions over 2
 * tenants (2,500 jobs: enqueued, claimed, progress, succeeded). Meanwhile a REPEATABLE READ
 * reader checks that it never sees a position without all those before it. Afterwards: dense
 * positions, each transaction's rows contiguous and from one process (batches interleave whole),
 * `okit ledger check` passes, every transition was applied exactly once, every snapshot equals
 * project(history).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { project } from '../../src/ledger/projection.js';
import { HISTORY_COLUMNS, SNAPSHOT_COLUMNS, toHistory, toSnapshot } from '../../src/ledger/rows.js';
import type { HistoryRow } from '../../src/ledger/types.js';
import { okit, ROOT } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';

const TENANTS = ['cc-a', 'cc-b'];
const PROCS = 2;
const CALLERS = 16; // per process
const JOBS = 2500; // × 4 transitions = 10,000

interface ChildOut {
  enqueued: Array<{ tenant: string; id: string }>;
  batches: Array<{ units: number; positions: number; failed: boolean }>;
}

function child(url: string, proc: number, jobs: number[]): { go(): void; done: Promise<ChildOut> } {
  const c = spawn(process.execPath, [path.join(ROOT, 'test/helpers/ledger-worker.mjs')], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: url, OKIT_WORKER_CONFIG: JSON.stringify({ proc, tenants: TENANTS, jobs }) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  c.stdout.on('data', (d) => (out += d));
  c.stderr.on('data', (d) => (err += d));
  const done = new Promise<ChildOut>((resolve, reject) =>
    c.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as ChildOut) : reject(new Error(`worker ${proc} exited ${code}: ${err}`)))),
  );
  return { go: () => c.stdin.end('go\n'), done };
}

describe('2 processes × 16 callers, 10,000 transitions over 2 tenants', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
  });
  afterAll(async () => db.drop());

  it('dense commit-ordered positions, whole batches, ledger check, exactly once, snapshots = project(history)', async () => {
    // Caller i of process p makes jobs[i] jobs; 2,500 in all.
    const per = Array.from({ length: PROCS * CALLERS }, (_, i) => Math.floor(JOBS / (PROCS * CALLERS)) + (i < JOBS % (PROCS * CALLERS) ? 1 : 0));
    const kids = Array.from({ length: PROCS }, (_, p) => child(db.url, p, per.slice(p * CALLERS, (p + 1) * CALLERS)));
    await new Promise((r) => setTimeout(r, 1500)); // let both load their modules
    for (const k of kids) k.go();
    let finished = false;
    const all = Promise.all(kids.map((k) => k.done)).finally(() => (finished = true));

    // The REPEATABLE READ reader: in every snapshot, each tenant's positions are exactly 1..head.
    const reader = await db.admin();
    let snapshots = 0;
    let sawPartial = false;
    while (!finished) {
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      for (const t of TENANTS) {
        const { rows } = await reader.query(
          `SELECT count(*)::int AS n, coalesce(min(pos), 1)::int AS lo, coalesce(max(pos), 0)::int AS hi,
             (SELECT coalesce(max(pos), 0)::int FROM okit.ledger_heads WHERE tenant = $1) AS head
           FROM (SELECT pos FROM okit.job_history WHERE tenant = $1 UNION ALL SELECT pos FROM okit.throttle_events WHERE tenant = $1) p`,
          [t],
        );
        const r = rows[0];
        expect(r.n === 0 || (r.lo === 1 && r.hi === r.n), `${t}: ${r.n} positions, ${r.lo}..${r.hi}`).toBe(true);
        expect(r.head).toBe(r.hi);
        if (r.n > 0 && r.n < JOBS * 2) sawPartial = true;
      }
      await reader.query('COMMIT');
      snapshots++;
    }
    const outs = await all;
    await reader.end();
    expect(snapshots).toBeGreaterThan(3);
    expect(sawPartial).toBe(true);

    // Batching happened, in both processes.
    for (const o of outs) {
      expect(Math.max(...o.batches.map((b) => b.units))).toBeGreaterThan(1);
      expect(o.batches.filter((b) => !b.failed).length).toBeLessThan(JOBS * 2);
    }

    const { rows: raw } = await db.pool.query(
      `SELECT ${HISTORY_COLUMNS}, xmin::text AS tx, (SELECT payload->>'proc' FROM okit.jobs j WHERE j.id = h.job_id) AS proc
       FROM okit.job_history h WHERE tenant = ANY($1) ORDER BY tenant, pos`,
      [TENANTS],
    );
    expect(raw.length).toBe(JOBS * 4);
    for (const t of TENANTS) {
      const rows = raw.filter((r) => r.tenant === t);
      expect(rows.map((r) => Number(r.pos))).toEqual(rows.map((_, i) => i + 1));
      // Each transaction (a batch) is one process's, and its positions are one contiguous run.
      const writer = (r: Record<string, unknown>) => (r.event === 'enqueued' ? `p${r.proc}` : String(JSON.parse(String(r.data)).worker_id).split('-')[0]);
      const seen = new Map<string, string>();
      const order: string[] = [];
      rows.forEach((r, i) => {
        const w = writer(r);
        if (i > 0 && rows[i - 1]!.tx === r.tx) {
          expect(seen.get(r.tx), `transaction ${r.tx} mixes processes`).toBe(w);
          return;
        }
        expect(seen.has(r.tx), `transaction ${r.tx} is split by another's rows`).toBe(false);
        seen.set(r.tx, w);
        order.push(w);
      });
      expect(new Set(order)).toEqual(new Set(['p0', 'p1']));
      expect(order.filter((w, i) => i > 0 && w !== order[i - 1]).length).toBeGreaterThan(1); // interleaved
      expect(seen.size).toBeLessThan(rows.length); // some transactions carried several rows
    }

    // Exactly once: every job enqueued by a caller has exactly its four transitions.
    const enq = outs.flatMap((o) => o.enqueued);
    expect(enq.length).toBe(JOBS);
    const byJob = new Map<string, HistoryRow[]>();
    for (const r of raw) {
      const h = toHistory(r);
      if (!byJob.has(h.job_id)) byJob.set(h.job_id, []);
      byJob.get(h.job_id)!.push(h);
    }
    expect([...byJob.keys()].sort()).toEqual(enq.map((e) => e.id).sort());
    for (const e of enq) {
      const h = byJob.get(e.id)!;
      expect(h.map((x) => [x.n, x.event, x.tenant])).toEqual([
        [1, 'enqueued', e.tenant],
        [2, 'claimed', e.tenant],
        [3, 'progress', e.tenant],
        [4, 'succeeded', e.tenant],
      ]);
    }

    // Every snapshot is the projection of its history.
    const { rows: snaps } = await db.pool.query(`SELECT ${SNAPSHOT_COLUMNS} FROM okit.first_signal_snapshots WHERE tenant = ANY($1)`, [TENANTS]);
    expect(snaps.length).toBe(JOBS);
    for (const s of snaps.map(toSnapshot)) expect(s).toEqual(project(byJob.get(s.job_id)!));

    const check = await okit(['ledger', 'check'], { DATABASE_URL: db.url });
    expect(check.stderr).toBe('');
    expect(check.code, check.stdout).toBe(0);
  }, 600_000);
});

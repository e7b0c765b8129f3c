/**
 * Export: determinism, consecutive bundles under concurrent writers, refusal of a broken
 * ledger, --to windows, and the import/re-export fixpoint.
 */
import { readFileSync, readdirSync as readdir } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, type ExportResult } from '../../src/bundle/export.js';
import { importBundle } from '../../src/bundle/import.js';
import { replay } from '../../src/bundle/replay.js';
import { verifyBundle } from '../../src/bundle/verify.js';
import { isOkitError } from '../../src/errors.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { simulate } from '../../src/ledger/simulate.js';
import { ManualClock } from '../../src/util/clock.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { testKey, testPub, tmp } from './fixtures.js';
import { lines } from './tamper.js';

const prevOf = (r: ExportResult, sha: string) => ({ manifest: r.manifest, manifestSha256: sha });
const manifestSha = async (path: string) => (await verifyBundle(path, { pubkeys: testPub })).manifestSha256!;

describe('export', () => {
  let db: TestDb;
  const T = 'exp';
  beforeAll(async () => {
    db = await freshDb();
    await simulate(db.pool, { seed: 42, jobs: 30, tenant: T });
    await simulate(db.pool, { seed: 43, jobs: 5, tenant: 'other' });
  });
  afterAll(async () => db.drop());

  it('two exports of the same state are one identical file', async () => {
    const a = await exportBundle(db.pool, { tenant: T, key: testKey, outDir: tmp() });
    const b = await exportBundle(db.pool, { tenant: T, key: testKey, outDir: tmp() });
    expect(a.sha256).toBe(b.sha256);
    expect(readFileSync(a.path).equals(readFileSync(b.path))).toBe(true);
    const v = await verifyBundle(a.path, { pubkeys: testPub, collect: true });
    expect(v.problems).toEqual([]);
    expect(v.data!.history.every((r) => r.tenant === T)).toBe(true);
    expect(v.data!.jobs.length).toBe(30);
    const rp = replay(v.data!);
    expect(rp.divergences).toEqual([]);
    expect(rp.identical).toBe(30);
  });

  it('--to cuts the window by position; snapshots only for jobs whose latest row is inside', async () => {
    const to = '2025-12-04T12:00:20.000000Z';
    const r = await exportBundle(db.pool, { tenant: T, key: testKey, to, outDir: tmp() });
    const v = await verifyBundle(r.path, { pubkeys: testPub, collect: true });
    expect(v.problems).toEqual([]);
    const d = v.data!;
    const toPos = BigInt(r.manifest.window.to_pos);
    const { rows } = await db.pool.query(
      `SELECT min(pos)::text AS p FROM (SELECT pos FROM okit.job_history WHERE tenant = $1 AND at >= $2 UNION ALL SELECT pos FROM okit.throttle_events WHERE tenant = $1 AND at >= $2) x`,
      [T, to],
    );
    expect(toPos).toBe(BigInt(rows[0].p) - 1n);
    expect(d.history.every((h) => BigInt(h.pos) <= toPos)).toBe(true);
    const open = d.jobs.filter((j) => !d.snapshots.some((s) => s.job_id === j.id));
    expect(open.length).toBeGreaterThan(0);
    for (const j of open) expect(j.history_n).toBeGreaterThan(Math.max(...d.history.filter((h) => h.job_id === j.id).map((h) => h.n)));
    const rp = replay(d);
    expect(rp.divergences).toEqual([]);
    expect(rp.open).toBe(open.length);
    // The continuation picks up exactly at to_pos + 1 and ends at the head.
    const next = await exportBundle(db.pool, { tenant: T, key: testKey, previous: prevOf(r, v.manifestSha256!), outDir: tmp() });
    expect(next.manifest.window.from_pos).toBe(String(toPos + 1n));
    const v2 = await verifyBundle(next.path, { pubkeys: testPub, previous: [r.path], collect: true });
    expect(v2.problems).toEqual([]);
    expect(replay(v2.data!, v2.earlier).divergences).toEqual([]);
  });

  it('--from starts at the first position at or after the time; an unknown tenant gives an empty, valid bundle', async () => {
    const from = '2025-12-04T12:00:10.000000Z';
    const r = await exportBundle(db.pool, { tenant: T, key: testKey, from, outDir: tmp() });
    const { rows } = await db.pool.query(
      `SELECT min(pos)::text AS p FROM (SELECT pos FROM okit.job_history WHERE tenant = $1 AND at >= $2 UNION ALL SELECT pos FROM okit.throttle_events WHERE tenant = $1 AND at >= $2) x`,
      [T, from],
    );
    expect(r.manifest.window).toMatchObject({ from_pos: rows[0].p, from });
    const v = await verifyBundle(r.path, { pubkeys: testPub, collect: true });
    expect(v.problems).toEqual([]);
    // Jobs begun before the window cannot be linked or replayed without the earlier rows: said, not hidden.
    expect(v.evidence.join('\n')).toMatch(/[1-9]\d* continued jobs' first link not checkable/);
    expect(replay(v.data!).skipped.length).toBeGreaterThan(0);
    const e = await exportBundle(db.pool, { tenant: 'nobody', key: testKey, outDir: tmp() });
    expect(e.manifest.window).toMatchObject({ from_pos: '1', to_pos: '0' });
    expect(e.manifest.as_of).toBe('1970-01-01T00:00:00.000000Z');
    expect((await verifyBundle(e.path, { pubkeys: testPub })).problems).toEqual([]);
  });

  it('refuses to sign a broken ledger and names the job', async () => {
    const t2 = await freshDb();
    try {
      await simulate(t2.pool, { seed: 7, jobs: 6, tenant: 'b' });
      // A first bundle cut in the middle of some job's history; that job is the victim.
      const first = await exportBundle(t2.pool, { tenant: 'b', key: testKey, to: '2025-12-04T12:00:06.000000Z', outDir: tmp() });
      const cut = first.manifest.window.to_pos;
      const { rows } = await t2.pool.query(
        `SELECT job_id::text FROM okit.job_history WHERE tenant = 'b' GROUP BY job_id HAVING min(pos) <= $1 AND max(pos) > $1 ORDER BY job_id LIMIT 1`,
        [cut],
      );
      const victim = String(rows[0].job_id);
      const a = await t2.admin();
      await a.query('ALTER TABLE okit.job_history DISABLE TRIGGER job_history_append_only');
      await a.query(`UPDATE okit.job_history SET data = data || '{"x":1}' WHERE job_id = $1 AND n = 1`, [victim]);
      await a.end();
      const out = tmp();
      // The whole export, and the continuation whose window holds only the victim's later rows.
      const prev = { manifest: first.manifest, manifestSha256: await manifestSha(first.path) };
      for (const previous of [null, prev]) {
        const err = await exportBundle(t2.pool, { tenant: 'b', key: testKey, previous, outDir: out }).catch((e: unknown) => e);
        expect(isOkitError(err) && err.code).toBe('LEDGER_BROKEN');
        expect((err as Error).message).toContain(victim);
      }
      expect(readdir(out)).toEqual([]);
    } finally {
      await t2.drop();
    }
  });

  it('consecutive bundles taken while writers are busy neither skip nor repeat a row', async () => {
    const t3 = await freshDb();
    try {
      const ledger = new Ledger(t3.pool, { clock: new ManualClock('2025-12-04T12:00:00.000000Z') });
      const W = 'busy';
      let stop = false;
      const writer = async (w: number) => {
        let i = 0;
        while (!stop) {
          const { job } = await ledger.enqueue(W, { type: 'scan', payload: { w, i: i++ } });
          const c = await ledger.claim(W, { workerId: `w${w}`, types: ['scan'] });
          if (c) await ledger.complete(W, c.job.id, `w${w}`, { ok: true });
          void job;
        }
      };
      const writers = [0, 1, 2, 3].map(writer);
      const out = tmp();
      const bundles: ExportResult[] = [];
      let prev: { manifest: ExportResult['manifest']; manifestSha256: string } | null = null;
      for (let k = 0; k < 5; k++) {
        await new Promise((r) => setTimeout(r, 150));
        const r = await exportBundle(t3.pool, { tenant: W, key: testKey, previous: prev, outDir: out });
        bundles.push(r);
        prev = prevOf(r, await manifestSha(r.path));
      }
      stop = true;
      await Promise.all(writers);
      bundles.push(await exportBundle(t3.pool, { tenant: W, key: testKey, previous: prev, outDir: out }));
      const seen: bigint[] = [];
      for (const [i, b] of bundles.entries()) {
        const v = await verifyBundle(b.path, { pubkeys: testPub, previous: bundles.slice(0, i).map((x) => x.path), collect: true });
        expect(v.problems, b.path).toEqual([]);
        for (const h of v.data!.history) seen.push(BigInt(h.pos));
        for (const h of v.data!.throttles) seen.push(BigInt(h.pos));
      }
      const { rows } = await t3.pool.query('SELECT pos FROM okit.ledger_heads WHERE tenant = $1', [W]);
      const head = BigInt(rows[0].pos);
      expect(bundles.filter((b) => b.manifest.counts.history > 0).length).toBeGreaterThan(3);
      expect(seen.length).toBe(Number(head));
      expect(seen.every((p, i) => p === BigInt(i + 1))).toBe(true);
    } finally {
      await t3.drop();
    }
  });

  it('import into an empty database and re-export with the same arguments and key is byte-identical', async () => {
    const first = await exportBundle(db.pool, { tenant: T, key: testKey, to: '2025-12-04T12:00:15.000000Z', outDir: tmp() });
    const firstSha = await manifestSha(first.path);
    const second = await exportBundle(db.pool, { tenant: T, key: testKey, previous: prevOf(first, firstSha), to: '2025-12-04T12:00:30.000000Z', outDir: tmp() });
    const fromCut = await exportBundle(db.pool, { tenant: T, key: testKey, from: '2025-12-04T12:00:10.000000Z', outDir: tmp() });
    for (const [b, args] of [
      [fromCut, { from: '2025-12-04T12:00:10.000000Z', previous: null }],
      [first, { to: '2025-12-04T12:00:15.000000Z', previous: null }],
      [second, { to: '2025-12-04T12:00:30.000000Z', previous: prevOf(first, firstSha) }],
    ] as const) {
      const v = await verifyBundle(b.path, { pubkeys: testPub, collect: true });
      expect(v.problems).toEqual([]);
      const target = await freshDb();
      try {
        await importBundle(target.pool, v.manifest!, v.manifestSha256!, v.data!);
        const again = await exportBundle(target.pool, { tenant: T, key: testKey, ...args, outDir: tmp() });
        expect(again.sha256).toBe(b.sha256);
        expect(readFileSync(again.path).equals(readFileSync(b.path))).toBe(true);
        // A second import into the now non-empty database is refused.
        await expect(importBundle(target.pool, v.manifest!, v.manifestSha256!, v.data!)).rejects.toThrow(/empty/);
      } finally {
        await target.drop();
      }
    }
    expect(lines(readFileSync(second.path)).length).toBeGreaterThan(0);
  });
});

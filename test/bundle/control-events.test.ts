/**
 * The control plane's events in bundles (format v3): retried, prioritized, paused and resumed
 * history rows and the queue events (queues.jsonl) survive export → verify → replay → import,
 * and the re-export is byte-identical; a missing queue line is a position gap; the v2 golden
 * (no queues.jsonl) still verifies, replays and loads.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, type ExportResult } from '../../src/bundle/export.js';
import { FORMAT_VERSION } from '../../src/bundle/format.js';
import { importBundle, importVerified } from '../../src/bundle/import.js';
import { replay, replayBundle } from '../../src/bundle/replay.js';
import { verifyBundle } from '../../src/bundle/verify.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { SECOND } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { ledgerAt } from '../helpers/ledger.js';
import { testKey, testPub, tmp } from './fixtures.js';
import { canonicalize } from '../../src/util/canonical.js';
import { entries, lines, repack } from './tamper.js';

const T = 'ctl';
const W = 'worker-1';
const OPS = 'token:00000000-0000-4000-8000-0000000000aa';
const V2 = 'test/fixtures/bundle-v2/okit-golden-1-80.tar';
const jsonl = (xs: unknown[]) => Buffer.from(xs.map((x) => canonicalize(x as never) + '\n').join(''));
const parse = <X>(b: Buffer) => lines(b).map((l) => JSON.parse(l) as X);

describe('control-plane events in bundles', () => {
  let db: TestDb;
  let bundle: ExportResult;

  beforeAll(async () => {
    db = await freshDb();
    const { ledger, clock } = ledgerAt(db.pool, { backoffBaseSeconds: 1 });
    const tick = () => clock.advance(SECOND);
    // A dead letter retried, a canceled job retried, a queued job prioritized while its type is
    // paused, a resume, and a second type left paused.
    const { job: dl } = await ledger.enqueue(T, { type: 'scan', maxAttempts: 1 });
    await ledger.claim(T, { workerId: W, types: ['scan'] });
    tick();
    await ledger.fail(T, dl.id, W, { code: 'E_FETCH', message: 'upstream went away' });
    tick();
    await ledger.retry(T, dl.id, { actor: OPS, reason: 'mirror is back' });
    const { job: cx } = await ledger.enqueue(T, { type: 'fetch' });
    tick();
    await ledger.cancel(T, cx.id, { actor: OPS, reason: 'wrong feed' });
    tick();
    await ledger.retry(T, cx.id, { actor: OPS });
    tick();
    const p = await ledger.pause(T, 'scan', { actor: OPS, reason: 'registry maintenance' });
    expect(p.jobs).toBe(1);
    tick();
    await ledger.prioritize(T, dl.id, { priority: 7, actor: OPS });
    tick();
    expect(await ledger.claim(T, { workerId: W, types: ['scan'] })).toBeNull();
    await ledger.resume(T, 'scan', { actor: OPS });
    tick();
    await ledger.pause(T, 'fetch', { actor: OPS, reason: 'feed frozen' });
    tick();
    await ledger.enqueue(T, { type: 'report' });
    bundle = await exportBundle(db.pool, { tenant: T, key: testKey, outDir: tmp() });
  });
  afterAll(async () => db.drop());

  it('are exported (v3: queues.jsonl) and verify; each position once across history, throttles and queues', async () => {
    const v = await verifyBundle(bundle.path, { pubkeys: testPub, collect: true });
    expect(v.problems).toEqual([]);
    expect(v.manifest!.version).toBe(FORMAT_VERSION);
    expect(FORMAT_VERSION).toBe(3);
    expect(v.manifest!.counts.queues).toBe(3);
    expect(v.data!.queues.map((q) => [q.type, q.event, q.data.reason])).toEqual([
      ['scan', 'paused', 'registry maintenance'],
      ['scan', 'resumed', null],
      ['fetch', 'paused', 'feed frozen'],
    ]);
    const events = new Set(v.data!.history.map((h) => h.event));
    for (const e of ['retried', 'prioritized', 'paused', 'resumed']) expect(events).toContain(e);
    const positions = [...v.data!.history.map((h) => h.pos), ...v.data!.queues.map((q) => q.pos)].map(Number).sort((a, b) => a - b);
    expect(positions).toEqual(Array.from({ length: Number(v.manifest!.window.to_pos) }, (_, i) => i + 1));
    expect(v.evidence.join('\n')).toMatch(/\+ 3 queue events use each position/);
  });

  it('replay (in memory and streamed) projects the same snapshots, a paused job included', async () => {
    const v = await verifyBundle(bundle.path, { pubkeys: testPub, collect: true });
    const rp = replay(v.data!);
    expect(rp.divergences).toEqual([]);
    expect(rp.identical).toBe(v.data!.jobs.length);
    const paused = v.data!.snapshots.find((s) => s.summary.startsWith('Paused by'));
    expect(paused).toMatchObject({ kind: 'blocked', summary: `Paused by ${OPS}: feed frozen` });
    const r = await verifyBundle(bundle.path, { pubkeys: testPub });
    const st = await replayBundle({ src: bundle.path, report: r }, []);
    expect(st.divergences).toEqual([]);
    expect(st.moreDivergences).toBe(0);
    expect(st.identical).toBe(v.data!.jobs.length);
  });

  it('import (collected and streamed) restores queue events and pause state; re-export is byte-identical', async () => {
    const v = await verifyBundle(bundle.path, { pubkeys: testPub, collect: true });
    for (const how of ['collected', 'streamed'] as const) {
      const target = await freshDb();
      try {
        const n =
          how === 'collected'
            ? await importBundle(target.pool, v.manifest!, v.manifestSha256!, v.data!)
            : await importVerified(target.pool, { src: bundle.path, report: await verifyBundle(bundle.path, { pubkeys: testPub }) });
        expect(n.queues).toBe(3);
        const again = await exportBundle(target.pool, { tenant: T, key: testKey, outDir: tmp() });
        expect(readFileSync(again.path).equals(readFileSync(bundle.path)), how).toBe(true);
        // The pause state is the last event of each type: fetch is paused, scan is not.
        const queues = await new Ledger(target.pool).listQueues(T);
        expect(queues.filter((q) => q.paused).map((q) => [q.type, q.paused!.actor, q.paused!.reason])).toEqual([['fetch', OPS, 'feed frozen']]);
      } finally {
        await target.drop();
      }
    }
  });

  it('a queue line removed (and the bundle re-signed) leaves a position gap; one with a foreign tenant is refused', async () => {
    const golden = readFileSync(bundle.path);
    const q = parse<Record<string, unknown>>(entries(golden).get('queues.jsonl')!);
    const gap = await verifyBundle(repack(golden, testKey, { data: { 'queues.jsonl': jsonl(q.slice(1)) } }), { pubkeys: testPub });
    expect(gap.problems.map((p) => p.code)).toContain('POSITION_GAP');
    const foreign = await verifyBundle(repack(golden, testKey, { data: { 'queues.jsonl': jsonl(q.map((x, i) => (i === 0 ? { ...x, tenant: 'other' } : x))) } }), {
      pubkeys: testPub,
    });
    expect(foreign.problems.map((p) => p.code)).toContain('TENANT_MISMATCH');
    const bad = await verifyBundle(repack(golden, testKey, { data: { 'queues.jsonl': jsonl(q.map((x, i) => (i === 0 ? { ...x, type: 7 } : x))) } }), {
      pubkeys: testPub,
    });
    expect(bad.problems.map((p) => p.code)).toContain('LINE_INVALID');
    // A queue line reusing a history row's position is a duplicate.
    const dup = await verifyBundle(repack(golden, testKey, { data: { 'queues.jsonl': jsonl(q.map((x, i) => (i === 0 ? { ...x, pos: '1' } : x))) } }), {
      pubkeys: testPub,
    });
    expect(dup.problems.map((p) => p.code)).toEqual(expect.arrayContaining(['POSITION_DUPLICATE', 'POSITION_GAP']));
    // The segmented verifier (small segments, worker threads) reports exactly the same.
    const dir = tmp();
    for (const [name, r] of Object.entries({ gap, foreign, bad, dup })) {
      const b = repack(golden, testKey, { data: { 'queues.jsonl': name === 'gap' ? jsonl(q.slice(1)) : jsonl(q.map((x, i) => (i === 0 ? (name === 'foreign' ? { ...x, tenant: 'other' } : name === 'bad' ? { ...x, type: 7 } : { ...x, pos: '1' }) : x))) } });
      const file = join(dir, `${name}.tar`);
      writeFileSync(file, b);
      for (const o of [{ segmentBytes: 100 }, { segmentBytes: 100, workers: 2 }]) {
        const w = await verifyBundle(file, { pubkeys: testPub, ...o });
        expect(w.problems, `${name} ${JSON.stringify(o)}`).toEqual(r.problems);
        expect(w.evidence, name).toEqual(r.evidence);
      }
    }
  });

  it('a v2 bundle (no queues.jsonl) still verifies, replays and loads', async () => {
    const v = await verifyBundle(V2, { pubkeys: testPub, collect: true });
    expect(v.problems).toEqual([]);
    expect(v.manifest!.version).toBe(2);
    expect(v.manifest!.counts.queues).toBeUndefined();
    expect(v.data!.queues).toEqual([]);
    expect(replay(v.data!).divergences).toEqual([]);
    const target = await freshDb();
    try {
      const n = await importVerified(target.pool, { src: V2, report: await verifyBundle(V2, { pubkeys: testPub }) });
      expect(n).toMatchObject({ jobs: v.data!.jobs.length, queues: 0 });
    } finally {
      await target.drop();
    }
  });
});

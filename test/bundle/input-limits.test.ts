/**
 * Finding 5: every input limit holds at the door, and the deepest and largest input the API
 * accepts survives an audit: `okit export`, `okit verify` and `okit replay` (the built binary)
 * all pass on a bundle holding it. Past each limit: a 400 that names the limit.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/util/canonical.js';
import { MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES, MAX_RESULT_BYTES } from '../../src/ledger/validate.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { expectCode } from '../helpers/ledger.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';
import { tmp } from './fixtures.js';
import { entries } from './tamper.js';

const A = '/api/v1/orchestrator';
const KEY = 'bundles/sample/INSECURE-test-signing.key';
const PUB = 'bundles/sample/INSECURE-test-signing.pub';

function okit(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** `depth` nested containers (arrays and objects in turn) around `inner`. */
function nest(depth: number, inner: unknown): unknown {
  let v = inner;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { k: v };
  return v;
}
/** `depth` containers whose canonical JSON is exactly `bytes` long: the padding is multi-byte and escaped text. */
function exactly(depth: number, bytes: number, asObject = false): unknown {
  const unit = 'é😀\u0001"'; // 2 + 4 + 6 + 2 bytes of canonical JSON
  const make = (n: number, extra: number) => {
    const s = unit.repeat(n) + 'x'.repeat(extra);
    const inner = nest(depth - 1, { s });
    return asObject && Array.isArray(inner) ? { a: inner } : inner;
  };
  const size = (v: unknown) => Buffer.byteLength(canonicalize(v));
  const base = size(make(0, 0));
  const n = Math.floor((bytes - base) / 14);
  const v = make(n, bytes - base - n * 14);
  expect(size(v)).toBe(bytes);
  return v;
}
const depthOf = (v: unknown): number => (v && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v as object).map(depthOf)) : 0);

describe('the deepest and largest accepted input round-trips through export, verify and replay', () => {
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
  const post = async (path: string, body: unknown, token = t.tokens.worker) => {
    const r = await t.post(path, token, body);
    return { status: r.status, body: await r.json() };
  };

  it('past each limit, 400 naming the limit (never an engine message); the library refuses the same', async () => {
    const tooDeep = await post(`${A}/jobs`, { type: 'limits', payload: nest(MAX_JSON_DEPTH + 1, 1) });
    expect(tooDeep.status).toBe(400);
    expect(tooDeep.body.error).toMatchObject({ code: 'INVALID_JSON', details: { limit: 64, field: 'payload' } });
    expect(tooDeep.body.error.message).toMatch(/^payload: nested deeper than the limit of 64 levels/);
    // The issue's payload: 2,243 arrays deep, once "Maximum call stack size exceeded".
    const issue = await post(`${A}/jobs`, { type: 'limits', payload: JSON.parse('['.repeat(2243) + ']'.repeat(2243)) });
    expect(issue.status).toBe(400);
    expect(issue.body.error.message).toMatch(/limit of 64 levels/);
    const tooBig = await post(`${A}/jobs`, { type: 'limits', payload: exactly(3, MAX_PAYLOAD_BYTES + 1) });
    expect(tooBig.status).toBe(400);
    expect(tooBig.body.error.message).toBe('payload: must be at most 65536 bytes of canonical JSON (the limit)');
    // The result cap counts UTF-8 bytes: 2,100 'é' are 2,108 UTF-16 units but 4,210 bytes.
    await t.ledger.enqueue('acme', { type: 'limits-result' });
    const c = (await post(`${A}/workers/claim`, { worker_id: 'w', types: ['limits-result'] })).body;
    const r = await post(`${A}/jobs/${c.job.id}/complete`, { worker_id: 'w', lease_token: c.lease_token, result: { s: 'é'.repeat(2100) } });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toBe('result: must be at most 4096 bytes of canonical JSON (the limit)');
    // In-process callers get the same limits, and a deep value cannot overflow the stack.
    const e = await expectCode(() => t.ledger.enqueue('acme', { type: 'limits', payload: JSON.parse('['.repeat(50_000) + ']'.repeat(50_000)) }), 'INVALID_INPUT');
    expect(e.message).toBe('payload: nested deeper than the limit of 64 levels');
    await expectCode(() => t.ledger.enqueue('acme', { type: 'limits', payload: nest(MAX_JSON_DEPTH + 1, 1) }), 'INVALID_INPUT');
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM okit.jobs WHERE type = 'limits'`);
    expect(rows[0].n).toBe(0);
  });

  it('accepts the limits exactly, and export → verify → replay pass on them', async () => {
    const deepest = exactly(MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES);
    expect(depthOf(deepest)).toBe(MAX_JSON_DEPTH);
    const numbers = { n: [2 ** 53 - 1, -(2 ** 53 - 1), 5e-324, 1e-7, 0.1, -0, 123.456, 1.7976931348623157e308 / 1e300, 4.5e15] };
    // n characters (code points), a quarter of them astral (two UTF-16 units each).
    const text = (n: number) => Array.from({ length: n }, (_, i) => [...'é😀ñ中'][i % 4]).join('');
    expect([...text(500)].length).toBe(500);

    const j1 = await post(`${A}/jobs`, { type: 'limits', payload: deepest, idempotency_key: text(200), priority: 1000, max_attempts: 100 });
    expect(j1.status, JSON.stringify(j1.body).slice(0, 300)).toBe(201);
    const j2 = await post(`${A}/jobs`, { type: 'limits', payload: numbers, not_before: '2025-01-01T00:00:00.123456+23:59' });
    expect(j2.status, JSON.stringify(j2.body)).toBe(201);
    const j3 = await post(`${A}/jobs`, { type: 'limits', payload: nest(MAX_JSON_DEPTH, 'x'), priority: -1000 });
    expect(j3.status).toBe(201);
    // Keys named like Object.prototype's own: plain data, end to end.
    const protoKeys = JSON.parse('{"__proto__": {"polluted": true}, "constructor": "c", "toString": 1, "hasOwnProperty": [null]}');
    const j4 = await post(`${A}/jobs`, { type: 'limits-cancel', payload: protoKeys });
    expect(j4.status).toBe(201);

    const result = exactly(MAX_JSON_DEPTH, MAX_RESULT_BYTES, true);
    expect(depthOf(result)).toBe(MAX_JSON_DEPTH);
    const tokens: string[] = [];
    const claim = async () => {
      const c = (await post(`${A}/workers/claim`, { worker_id: 'w-limits', types: ['limits'], lease_seconds: 3600 })).body;
      tokens.push(c.lease_token);
      return { id: c.job.id as string, lease: { worker_id: 'w-limits', lease_token: c.lease_token } };
    };
    const a = await claim();
    expect((await post(`${A}/jobs/${a.id}/progress`, { ...a.lease, phase: 'analyze', summary: text(500), items_done: 1e12, items_total: 1e12 })).status).toBe(200);
    const done = await post(`${A}/jobs/${a.id}/complete`, { ...a.lease, result });
    expect(done.status, JSON.stringify(done.body).slice(0, 300)).toBe(200);
    const b = await claim();
    const over = await post(`${A}/jobs/${b.id}/complete`, { ...b.lease, result: exactly(3, MAX_RESULT_BYTES + 1, true) });
    expect(over.status).toBe(400);
    expect(over.body.error.message).toBe('result: must be at most 4096 bytes of canonical JSON (the limit)');
    expect((await post(`${A}/jobs/${b.id}/fail`, { ...b.lease, error: { code: 'E'.repeat(64), message: text(2000) }, retryable: false })).status).toBe(200);
    const c = await claim();
    expect((await post(`${A}/jobs/${c.id}/complete`, { ...c.lease, result: numbers })).status).toBe(200);
    expect((await post(`${A}/jobs/${j4.body.job.id}/cancel`, { reason: text(500) }, t.tokens.admin)).status).toBe(200);

    const out = tmp();
    const ex = okit(['export', '--tenant', 'acme', '--key', KEY, '--out', out], { DATABASE_URL: db.url });
    expect(ex.code, ex.err).toBe(0);
    const bundle = ex.out.split('\n')[0]!;
    const vr = okit(['verify', bundle, '--pubkey', PUB]);
    expect(vr.code, vr.out + vr.err).toBe(0);
    expect(vr.out).toContain('VALID');
    const snaps = join(tmp(), 'snaps.jsonl');
    const rp = okit(['replay', bundle, '--pubkey', PUB, '--out', snaps]);
    expect(rp.code, rp.out + rp.err).toBe(0);
    expect(rp.out).toMatch(/replayed 5 jobs; compared 5 with snapshots.jsonl and jobs.jsonl: 5 identical, 0 diverged/);
    expect(readFileSync(snaps, 'utf8')).toBe(entries(readFileSync(bundle)).get('snapshots.jsonl')!.toString('utf8'));
    // What was accepted is in the bundle exactly; the lease tokens are not.
    const files = entries(readFileSync(bundle));
    const jobs = files.get('jobs.jsonl')!.toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(jobs.find((j) => j.id === j1.body.job.id).payload).toEqual(deepest);
    expect(jobs.find((j) => j.id === j2.body.job.id).payload).toEqual(JSON.parse(canonicalize(numbers)));
    expect(canonicalize(jobs.find((j) => j.id === j4.body.job.id).payload)).toBe(canonicalize(protoKeys));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const all = [...files.values()].map((b) => b.toString('utf8')).join('\n');
    for (const tok of tokens) expect(all).not.toContain(tok);
    expect(all).not.toContain('lease_token');
  });
});

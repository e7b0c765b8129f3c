/**
 * Finding 6: I-JSON (RFC 7493) at input. Duplicate keys, noncharacters and lone surrogates are
 * refused with a 400 that names the key or the position, where they used to be accepted (the
 * last duplicate silently winning); a not_before with an impossible offset is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMicros } from '../../src/util/time.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const JOBS = '/api/v1/orchestrator/jobs';

describe('I-JSON at input', () => {
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
  const enqueue = async (raw: string) => {
    const r = await t.post(JOBS, t.tokens.worker, raw);
    return { status: r.status, body: await r.json() };
  };
  const jobCount = async () => (await db.pool.query('SELECT count(*)::int AS n FROM okit.jobs')).rows[0].n as number;

  it('duplicate keys are 400 INVALID_JSON naming the key and where it is, at any depth', async () => {
    const before = await jobCount();
    const top = await enqueue('{"type": "a", "type": "b"}');
    expect(top.status).toBe(400);
    expect(top.body.error).toMatchObject({ code: 'INVALID_JSON', details: { reason: 'duplicate_key', key: 'type', line: 1, column: 15 } });
    expect(top.body.error.message).toBe('body is not valid I-JSON: duplicate key "type" at line 1, column 15 ($.type)');
    const inner = await enqueue('{"type": "a",\n "payload": {"x": {"y": 1, "y": 2}}}');
    expect(inner.status).toBe(400);
    expect(inner.body.error.message).toMatch(/duplicate key "y" at line 2, column 28 \(\$\.payload\.x\.y\)$/);
    expect(inner.body.error.details).toMatchObject({ field: 'payload', key: 'y' });
    expect(await jobCount()).toBe(before);
  });

  it('U+FFFE, U+FFFF (raw or escaped) and lone surrogates are 400 naming the position', async () => {
    for (const [s, what] of [
      ['\\uFFFE', /noncharacter U\+FFFE at line 1, column 35 \(\$\.payload\.s\)/],
      ['\uffff', /noncharacter U\+FFFF at line 1, column 35/],
      ['\\ud800', /lone surrogate U\+D800 \(escaped\) at line 1, column 35/],
      ['\\udc00\\ud800', /lone surrogate U\+DC00 \(escaped\) at line 1, column 35/],
    ] as const) {
      const r = await enqueue(`{"type": "a", "payload": {"s": "ab${s}"}}`);
      expect(r.status, s).toBe(400);
      expect(r.body.error.code).toBe('INVALID_JSON');
      expect(r.body.error.message).toMatch(what);
    }
    // In-process callers: the same rule for payload strings and text fields.
    await expect(t.ledger.enqueue('acme', { type: 'a', payload: { s: 'x\uffffy' } })).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringMatching(/noncharacter U\+FFFF/) });
    await expect(t.ledger.enqueue('acme', { type: 'a', idempotencyKey: 'k\ufffe' })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    // A surrogate pair and neighbours of the noncharacters are fine.
    expect((await enqueue('{"type": "a", "payload": {"s": "\\ud83d\\ude00\\ufffd\\ufdcf"}}')).status).toBe(201);
  });

  it('not_before: an impossible offset (+99:99) or a form RFC 3339 does not have is 400; real offsets are honoured', async () => {
    for (const nb of ['2025-01-01T00:00:00+99:99', '2025-01-01T00:00:00+24:00', '2025-01-01T00:00:00-00:60', '2025-01-01T00:00:00+0530', ' 2025-01-01T00:00:00Z', '2025-01-01 00:00:00Z', '2025-01-01T00:00:00', '2025-01-01T00:00:00.1234567Z', '2025-02-30T00:00:00Z', '']) {
      const r = await enqueue(JSON.stringify({ type: 'nb', not_before: nb }));
      expect(r.status, nb).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'INVALID_INPUT', details: { field: 'not_before' } });
    }
    const east = await enqueue(JSON.stringify({ type: 'nb', not_before: '2025-01-01T23:59:00+23:59' }));
    expect(east.status).toBe(201);
    expect(east.body.job.not_before).toBe('2025-01-01T00:00:00.000000Z');
    const west = await enqueue(JSON.stringify({ type: 'nb', not_before: '2025-01-01T00:00:00.5-23:59' }));
    expect(west.body.job.not_before).toBe('2025-01-01T23:59:00.500000Z');
    expect(() => parseMicros('2025-01-01T00:00:00+99:99')).toThrow(/offset/);
  });
});

/**
 * The hostile-input suite, input half (issue 9): for every route, deep and oversized JSON,
 * duplicate keys, control characters, noncharacters and lone surrogates, huge numbers and
 * wrong types. Every answer is a JSON error with a code (never a 5xx), every refusal names
 * the field or limit, and a refused call leaves the ledger exactly as it was.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/http/tokens.js';
import { MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES, MAX_RESULT_BYTES } from '../../src/ledger/validate.js';
import { MAX_TELEMETRY_BODY_BYTES, MAX_TTFS_MS } from '../../src/telemetry/events.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { ledgerState } from '../helpers/ledger.js';
import { FS, STREAM, startTestServer, type TestServer } from '../helpers/serve.js';

const A = '/api/v1/orchestrator';
type Body = Record<string, unknown>;

const deep = (n: number, inner: unknown = 1): unknown => {
  let v = inner;
  for (let i = 0; i < n; i++) v = i % 2 ? { k: v } : [v];
  return v;
};
const deepText = (n: number) => '['.repeat(n) + ']'.repeat(n);
const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A copy of `b` with the dotted path (`error.message`, `types.0`) set to `v`. */
function withField(b: Body, path: string, v: unknown): Body {
  const out = structuredClone(b);
  const steps = path.split('.');
  let o = out as Record<string, unknown>;
  for (const s of steps.slice(0, -1)) o = o[s] as Record<string, unknown>;
  o[steps[steps.length - 1]!] = v;
  return out;
}

interface PostRoute {
  name: string;
  /** The route's body limit in bytes (413 past it). */
  bodyLimit?: number;
  /** How a dotted path is named in messages (`events.0.kind` → `events[0].kind`). */
  label?: (path: string) => string;
  path: () => string;
  token: () => string;
  /** A body the route would accept. */
  body: () => Body;
  /** Free-text fields and their limit in characters. */
  texts: Record<string, number>;
  /** Fields with a strict form (ids, names, tokens, timestamps). */
  forms: string[];
  numbers: string[];
  /** Fields of milliseconds (a number, fractions allowed) and their maximum. */
  millis?: { fields: string[]; max: number };
  booleans?: string[];
  /** A JSON value field (any JSON, or an object) and its byte limit. */
  json?: { field: string; limit: number; object: boolean };
}

describe('hostile input on every route: no 5xx, JSON errors with codes, nothing written', () => {
  let db: TestDb;
  let t: TestServer;
  const leases: Record<string, { job: string; token: string }> = {};
  let queued: string;
  let seen: string;
  const telemetryAccepted = () => t.srv.telemetry!.queue.stats.accepted;

  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool);
    for (const r of ['heartbeat', 'progress', 'complete', 'fail']) {
      const { job } = await t.ledger.enqueue('acme', { type: `lease-${r}` });
      const c = await t.ledger.claim('acme', { workerId: 'hw', types: [`lease-${r}`], leaseSeconds: 3600 });
      leases[r] = { job: job.id, token: c!.leaseToken };
    }
    queued = (await t.ledger.enqueue('acme', { type: 'to-cancel' })).job.id;
    seen = (await t.ledger.enqueue('acme', { type: 'seen' })).job.id;
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  const lease = (r: string) => ({ worker_id: 'hw', lease_token: leases[r]!.token });
  const routes: PostRoute[] = [
    {
      name: 'POST /jobs',
      path: () => `${A}/jobs`,
      token: () => t.tokens.worker,
      body: () => ({ type: 'hostile', payload: { a: 1 }, idempotency_key: 'k-hostile', priority: 1, max_attempts: 2, not_before: '2025-01-01T00:00:00Z', run_id: '9b2f5a4e-0000-4000-8000-000000000001' }),
      texts: { idempotency_key: 200 },
      forms: ['type', 'not_before', 'run_id', 'source_id'],
      numbers: ['priority', 'max_attempts'],
      json: { field: 'payload', limit: MAX_PAYLOAD_BYTES, object: false },
    },
    {
      name: 'POST /workers/claim',
      path: () => `${A}/workers/claim`,
      token: () => t.tokens.worker,
      body: () => ({ worker_id: 'hw', types: ['nothing-queued'], lease_seconds: 30 }),
      texts: {},
      forms: ['worker_id', 'types.0', 'types'],
      numbers: ['lease_seconds'],
    },
    {
      name: 'POST /jobs/{id}/heartbeat',
      path: () => `${A}/jobs/${leases.heartbeat!.job}/heartbeat`,
      token: () => t.tokens.worker,
      body: () => ({ ...lease('heartbeat'), lease_seconds: 3600 }),
      texts: {},
      forms: ['worker_id', 'lease_token'],
      numbers: ['lease_seconds'],
    },
    {
      name: 'POST /jobs/{id}/progress',
      path: () => `${A}/jobs/${leases.progress!.job}/progress`,
      token: () => t.tokens.worker,
      body: () => ({ ...lease('progress'), phase: 'analyze', summary: 'Scanning', items_done: 1, items_total: 2 }),
      texts: { summary: 500 },
      forms: ['worker_id', 'lease_token', 'phase'],
      numbers: ['items_done', 'items_total'],
    },
    {
      name: 'POST /jobs/{id}/complete',
      path: () => `${A}/jobs/${leases.complete!.job}/complete`,
      token: () => t.tokens.worker,
      body: () => ({ ...lease('complete'), result: { findings: 3 } }),
      texts: {},
      forms: ['worker_id', 'lease_token'],
      numbers: [],
      json: { field: 'result', limit: MAX_RESULT_BYTES, object: true },
    },
    {
      name: 'POST /jobs/{id}/fail',
      path: () => `${A}/jobs/${leases.fail!.job}/fail`,
      token: () => t.tokens.worker,
      body: () => ({ ...lease('fail'), error: { code: 'E_HOSTILE', message: 'it broke' }, retryable: false }),
      texts: { 'error.message': 2000 },
      forms: ['worker_id', 'lease_token', 'error.code', 'error'],
      numbers: [],
      booleans: ['retryable'],
    },
    {
      name: 'POST /throttles/report',
      path: () => `${A}/throttles/report`,
      token: () => t.tokens.worker,
      body: () => ({ host: 'feed.example', status: 429, retry_after_seconds: 5, worker_id: 'hw', job_id: queued }),
      texts: {},
      forms: ['host', 'worker_id', 'job_id'],
      numbers: ['status'],
    },
    {
      name: 'POST /jobs/{id}/cancel',
      path: () => `${A}/jobs/${queued}/cancel`,
      token: () => t.tokens.admin,
      body: () => ({ reason: 'superseded' }),
      texts: { reason: 500 },
      forms: [],
      numbers: [],
    },
    {
      // A surface's time-to-first-signal report (read scope): no free text, fixed lists, milliseconds.
      name: 'POST /telemetry/ttfs',
      path: () => `${A}/telemetry/ttfs`,
      token: () => t.tokens.read,
      bodyLimit: MAX_TELEMETRY_BODY_BYTES,
      label: (f) => f.replace(/\.(\d+)(?=\.)/g, '[$1]'),
      body: () => ({
        events: [{ surface: 'cli', event_type: 'signal.rendered', ttfs_ms: 120.5, server_ms: 3, job_id: seen, cache_hit: false, signal_source: 'snapshot', kind: 'queued', phase: 'fetch', error_code: 'E_SEEN' }],
      }),
      texts: {},
      forms: ['events', 'events.0.surface', 'events.0.event_type', 'events.0.job_id', 'events.0.run_id', 'events.0.signal_source', 'events.0.kind', 'events.0.phase', 'events.0.error_code'],
      numbers: [],
      millis: { fields: ['events.0.ttfs_ms', 'events.0.server_ms'], max: MAX_TTFS_MS },
      booleans: ['events.0.cache_hit'],
    },
  ];
  /** What an error message starts with for a field: `types.0` reports as `types`, `error` as `error` or `error.code`. */
  const fieldRe = (route: PostRoute, f: string) => new RegExp(`^${reEscape((route.label?.(f) ?? f).replace(/\.0$/, ''))}(\\.[a-z_]+)?:`);

  /** A GET that carries a body (fetch refuses to send one). */
  function getWithBody(path: string, token: string | null, body: string): Promise<{ status: number; type: string | undefined }> {
    return new Promise((resolve, reject) => {
      const u = new URL(t.base + path);
      const req = http.request(
        { host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'GET', headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...(token ? { Authorization: `Bearer ${token}` } : {}) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'] }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  async function call(method: string, path: string, token: string | null, body?: string | Uint8Array, headers: Record<string, string> = {}) {
    const r = await fetch(t.base + path, {
      method,
      headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
      body,
    });
    const text = await r.text();
    const type = r.headers.get('content-type');
    return { status: r.status, type, text, json: text && /^application\/json/.test(type ?? '') ? (JSON.parse(text) as { error?: { code: string; message: string; details?: Record<string, unknown> } }) : null };
  }

  /** The call is refused with `status` and `code`, its message matching `mention`, and writes nothing. */
  async function refused(route: PostRoute, raw: string | Uint8Array, status: number, code: string, mention?: RegExp) {
    const before = await ledgerState(db.pool, 'acme');
    const reported = telemetryAccepted();
    const r = await call('POST', route.path(), route.token(), raw);
    const what = `${route.name} ${typeof raw === 'string' ? raw.slice(0, 160) : '<bytes>'} → ${r.status} ${r.text.slice(0, 300)}`;
    expect(r.status, what).toBe(status);
    expect(r.type, what).toMatch(/^application\/json/);
    expect(r.json?.error?.code, what).toBe(code);
    if (mention) expect(r.json!.error!.message, what).toMatch(mention);
    // An engine's words are not an answer: the message names a field or limit.
    expect(r.json!.error!.message, what).not.toMatch(/Maximum call stack|RangeError|TypeError|SyntaxError|Unexpected token|22003|out of range for type/);
    expect(await ledgerState(db.pool, 'acme'), what).toEqual(before);
    expect(telemetryAccepted(), `${what}: no telemetry event taken`).toBe(reported);
    return r.json!.error!;
  }
  const bad = (route: PostRoute, body: Body, code: string, mention?: RegExp) => refused(route, JSON.stringify(body), code === 'PAYLOAD_TOO_LARGE' ? 413 : 400, code, mention);

  it('the valid bodies are valid (so each refusal below is for the one thing changed)', async () => {
    // Checked on throwaway copies: a claim of an empty queue, an enqueue, a heartbeat.
    for (const route of routes.filter((r) => ['POST /jobs', 'POST /workers/claim', 'POST /jobs/{id}/heartbeat', 'POST /telemetry/ttfs'].includes(r.name))) {
      const r = await call('POST', route.path(), route.token(), JSON.stringify(route.body()));
      expect(r.status, `${route.name} ${r.text}`).toBeLessThan(300);
    }
    expect(telemetryAccepted()).toBeGreaterThan(0);
  });

  for (const route of routes) {
    describe(route.name, () => {
      it(`deep JSON: anything nested deeper than ${MAX_JSON_DEPTH} is 400 INVALID_JSON naming the limit`, async () => {
        const base = route.body();
        // In a field the route ignores, in the route's JSON field, and 2,243 deep (the issue's).
        const e = await bad(route, { ...base, extra: deep(MAX_JSON_DEPTH + 1) }, 'INVALID_JSON', /^extra: nested deeper than the limit of 64 levels/);
        expect(e.details).toMatchObject({ reason: 'too_deep', limit: 64, field: 'extra' });
        await refused(route, JSON.stringify(base).replace(/^\{/, `{"deep":${deepText(2243)},`), 400, 'INVALID_JSON', /deep: nested deeper than the limit of 64/);
        await refused(route, `{"x":${'['.repeat(Math.min(100_000, (route.bodyLimit ?? Infinity) - 16))}`, 400, 'INVALID_JSON', /limit of 64/);
        if (route.json) await bad(route, withField(base, route.json.field, { d: deep(MAX_JSON_DEPTH) }), 'INVALID_JSON', new RegExp(`^${route.json.field}: nested deeper`));
      });

      it('oversized: a body over 256 KiB is 413; a field over its limit is 400 naming the limit', async () => {
        const base = route.body();
        const limit = route.bodyLimit ?? 256 * 1024;
        await bad(route, { ...base, filler: 'x'.repeat(limit) }, 'PAYLOAD_TOO_LARGE', new RegExp(`${limit} bytes`));
        for (const [field, max] of Object.entries(route.texts)) {
          await bad(route, withField(base, field, 'é'.repeat(max + 1)), 'INVALID_INPUT', new RegExp(`${fieldRe(route, field).source} must be a string of 1 to ${max} characters`));
          await bad(route, withField(base, field, ''), 'INVALID_INPUT', fieldRe(route, field));
        }
        if (route.json) {
          const { field, limit } = route.json;
          // Multi-byte characters: the limit counts UTF-8 bytes of canonical JSON, not UTF-16 units.
          const over = { s: 'é'.repeat(Math.ceil(limit / 2)) };
          await bad(route, withField(base, field, over), 'INVALID_INPUT', new RegExp(`^${field}: must be at most ${limit} bytes of canonical JSON`));
        }
      });

      it('duplicate keys anywhere in the body are 400 INVALID_JSON naming the key', async () => {
        const text = JSON.stringify(route.body());
        const first = Object.keys(route.body())[0];
        if (first) {
          const e = await refused(route, text.replace(/^\{/, `{${JSON.stringify(first)}:"dup",`), 400, 'INVALID_JSON', new RegExp(`duplicate key "${first}"`));
          expect(e.details).toMatchObject({ reason: 'duplicate_key', key: first });
        }
        await refused(route, text.replace(/^\{/, '{"nested":{"a":1,"b":{"c":1,"c":2}},'), 400, 'INVALID_JSON', /duplicate key "c" .*\$\.nested\.b\.c/);
        await refused(route, text.replace(/^\{/, '{"a":1,"\\u0061":2,'), 400, 'INVALID_JSON', /duplicate key "a"/);
      });

      it('control characters in text fields are 400 naming the field; noncharacters and lone surrogates anywhere are 400', async () => {
        const base = route.body();
        for (const field of [...Object.keys(route.texts), ...route.forms.filter((f) => !['types', 'error', 'not_before', 'run_id', 'source_id'].includes(f))])
          for (const c of ['\u001b]0;pwned\u0007', '\r[succeeded] fake', 'two\nlines', '\u009b2J', 'del\u007f', 'sep\u2028'])
            await bad(route, withField(base, field, `ok ${c}`), 'INVALID_INPUT', fieldRe(route, field));
        const text = JSON.stringify(base);
        for (const s of ['\\uFFFE', '\\uffff', '\ufffe', '\\ud800', '\\udfff', '\\ud83f\\udfff'])
          await refused(route, text.replace(/^\{/, `{"s":"x${s}",`), 400, 'INVALID_JSON', /noncharacter U\+|lone surrogate U\+/);
        await refused(route, Buffer.concat([Buffer.from('{"s":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), 400, 'INVALID_JSON', /UTF-8/);
        await refused(route, Buffer.concat([Buffer.from('{"s":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]), 400, 'INVALID_JSON', /UTF-8/); // an encoded surrogate
      });

      it('huge numbers and wrong types are 400 INVALID_INPUT (or INVALID_JSON past a double), never a 5xx', async () => {
        const base = route.body();
        const text = JSON.stringify(base);
        await refused(route, text.replace(/^\{/, '{"n":1e400,'), 400, 'INVALID_JSON', /beyond the range of a double/);
        for (const f of route.numbers) {
          for (const v of [9007199254740993, 1e308, -1e308, 1e12 + 1, 1.5, -1e6, '1', '', true, {}, [], [1]])
            await bad(route, withField(base, f, v), 'INVALID_INPUT', new RegExp(`^${f}: must be an integer`));
          await refused(route, text.replace(new RegExp(`"${f}":[^,}]+`), `"${f}":-1e999`), 400, 'INVALID_JSON', /beyond the range/);
        }
        for (const f of route.millis?.fields ?? []) {
          const key = f.split('.').at(-1)!;
          for (const v of [route.millis!.max + 0.001, 1e308, -1e308, -0.001, -1e6, '1', '', true, {}, [], [1]])
            await bad(route, withField(base, f, v), 'INVALID_INPUT', new RegExp(`${fieldRe(route, f).source} must be a number of milliseconds from 0 to ${route.millis!.max}`));
          await refused(route, text.replace(new RegExp(`"${key}":[^,}]+`), `"${key}":1e999`), 400, 'INVALID_JSON', /beyond the range/);
        }
        for (const f of route.forms)
          for (const v of [0, 1, true, false, {}, [], 1e308, 'x'.repeat(300)]) {
            if (f === 'types' && Array.isArray(v)) continue;
            await bad(route, withField(base, f, v), 'INVALID_INPUT', fieldRe(route, f));
          }
        for (const f of Object.keys(route.texts)) for (const v of [0, true, {}, [], ['x']]) await bad(route, withField(base, f, v), 'INVALID_INPUT', fieldRe(route, f));
        for (const f of route.booleans ?? []) for (const v of ['true', 1, 0, {}, []]) await bad(route, withField(base, f, v), 'INVALID_INPUT', new RegExp(`${fieldRe(route, f).source} must be a boolean`));
        if (route.json?.object) for (const v of ['str', 1, [], true]) await bad(route, withField(base, route.json.field, v), 'INVALID_INPUT', new RegExp(`^${route.json.field}: must be a JSON object`));
        if (route.json) {
          // Number text that would be read as another value is refused at the door (issue 10's
          // number policy, docs/bundle-format.md §2); every exact double, 2^53 + 2 included, is accepted.
          await refused(route, text.replace(`"${route.json.field}":`, `"${route.json.field}":{"n":12345678901234567890},"_":`), 400, 'INVALID_INPUT', /not exactly representable as a double: 12345678901234567890/);
        }
        // Not a JSON object at all (POST /jobs also takes an array of jobs: an empty one lists none).
        for (const raw of ['[]', '"x"', '1', 'null', '{"a":1', '{"a":1}}', "{'a':1}"])
          await refused(route, raw, 400, raw === '[]' && route.name === 'POST /jobs' ? 'INVALID_INPUT' : 'INVALID_JSON');
        if (route.name === 'POST /jobs') await refused(route, '[1]', 400, 'INVALID_INPUT');
      });
    });
  }

  it('GET routes: hostile ids, queries and headers are 4xx JSON (or ignored), never a 5xx', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'get-me' });
    const ids = ['%1b%5b2J', '%00', 'x'.repeat(5000), '%EF%BF%BE', '%ED%A0%80', job.id.toUpperCase(), '1e400', '-1'];
    const paths = (id: string) => [FS(id), STREAM(id), `${A}/jobs/${id}`, `${A}/jobs/${id}/history`];
    for (const id of ids)
      for (const p of paths(id)) {
        const r = await call('GET', p, t.tokens.read);
        expect(r.status, `${p} ${r.text}`).toBeGreaterThanOrEqual(400);
        expect(r.status, p).toBeLessThan(500);
        expect(r.json?.error?.code, p).toMatch(/^(INVALID_INPUT|NOT_FOUND)$/);
      }
    for (const wait of ['1e400', '-1', '0x10', '%1b', '31', 'NaN', 'Infinity', '1'.repeat(400), '2%00'])
      for (const p of [FS(job.id), STREAM(job.id)]) {
        const r = await call('GET', `${p}?wait=${wait}`, t.tokens.read);
        expect(r.status, `${p}?wait=${wait}`).toBe(400);
        expect(r.json?.error?.code).toBe('INVALID_INPUT');
      }
    // Junk in headers and unknown query parameters is ignored, not an error.
    for (const h of [{ 'If-None-Match': '"' + 'x'.repeat(8000) + '"' }, { 'If-None-Match': '*, "a", W/"b", ,,,' }, { 'Last-Event-ID': 'é'.repeat(100) }, { Accept: 'text/event-stream;q=' + '9'.repeat(500) }]) {
      const r = await fetch(t.base + FS(job.id) + '?x=%1b&y=' + 'z'.repeat(2000), { headers: { Authorization: `Bearer ${t.tokens.read}`, ...h } });
      expect(r.status).toBeLessThan(500);
      await r.arrayBuffer();
    }
    for (const p of ['/healthz', '/readyz?wait=1e400']) expect((await call('GET', p, null)).status).toBe(200);
  });

  it('GET routes with a hostile body (deep, oversized, duplicate keys, control characters, huge numbers): the body is not read, the answer is the plain one', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'get-body' });
    const metrics = (await createToken(db.pool, { tenant: 'ops', scope: 'metrics' })).token;
    const gets: Array<[string, string | null]> = [
      ['/healthz', null],
      ['/readyz', null],
      [FS(job.id), t.tokens.read],
      [`${A}/jobs/${job.id}`, t.tokens.read],
      [`${A}/jobs/${job.id}/history`, t.tokens.read],
      ['/metrics', metrics],
    ];
    const bodies = [
      deepText(100_000),
      JSON.stringify({ filler: 'x'.repeat(300 * 1024) }),
      '{"a":1,"a":2,"b":{"c":1,"c":2}}',
      '{"s":"\u001b]0;pwned\u0007\r[succeeded]","t":"\ufffe\ud800"}',
      '{"n":1e400,"m":-1e999,"k":123456789012345678901234567890}',
    ];
    for (const [path, token] of gets) {
      const plain = await call('GET', path, token);
      expect(plain.status, `${path} ${plain.text.slice(0, 200)}`).toBe(200);
      for (const b of bodies) {
        const r = await getWithBody(path, token, b);
        expect(r.status, `${path} with ${b.slice(0, 60)}`).toBe(200);
        expect(r.type).toBe(plain.type);
      }
    }
    // /metrics: a hostile or tenant token is 401 JSON, never a 5xx.
    for (const tok of [t.tokens.admin, 'okit_' + '%1b'.repeat(14) + '!', 'x'.repeat(9000), 'Basic b2s6b2s=', 'okit_' + 'A'.repeat(43)]) {
      const r = await call('GET', '/metrics', tok);
      expect(r.status, tok.slice(0, 20)).toBe(401);
      expect(r.type).toMatch(/^application\/json/);
      expect(r.json?.error?.code).toBe('UNAUTHORIZED');
    }
  });

  it('still healthy after all of it, and nothing half-written: every chain and position intact', async () => {
    expect((await call('GET', '/healthz', null)).status).toBe(200);
    const { checkLedger } = await import('../../src/ledger/check.js');
    const report = await checkLedger(db.pool, { tenant: 'acme' });
    expect(report.problems).toEqual([]);
  });
});

/**
 * `okit job status` reports its time to first signal (as a real CLI process, measured from
 * the process start): cli or ci by the environment, --verbose prints it, it lands in
 * okit.ttfs_events with the server's part beside it, and `okit slo report` shows it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CI_VARIABLES, detectSurface } from '../../src/telemetry/surface.js';
import { okit } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

/** An environment with no CI variable set (the test run itself may be under CI). */
const noCi = (): Record<string, string | undefined> => Object.fromEntries([...CI_VARIABLES, 'OKIT_SURFACE'].map((k) => [k, undefined]));

describe('detectSurface', () => {
  it('cli unless a CI variable is set; OKIT_SURFACE decides when given', () => {
    expect(detectSurface({})).toBe('cli');
    expect(detectSurface({ CI: 'true' })).toBe('ci');
    expect(detectSurface({ CI: '1' })).toBe('ci');
    for (const off of ['', 'false', 'FALSE', '0']) expect(detectSurface({ CI: off })).toBe('cli');
    for (const k of ['GITHUB_ACTIONS', 'GITLAB_CI', 'JENKINS_URL', 'BUILDKITE', 'TF_BUILD', 'TEAMCITY_VERSION']) expect(detectSurface({ [k]: 'x' }), k).toBe('ci');
    expect(detectSurface({ CI: 'true', OKIT_SURFACE: 'cli' })).toBe('cli');
    expect(detectSurface({ OKIT_SURFACE: 'ci' })).toBe('ci');
    expect(() => detectSurface({ OKIT_SURFACE: 'ui' })).toThrow(/OKIT_SURFACE/);
  });
});

describe('okit job status reports time to first signal', () => {
  let db: TestDb;
  let t: TestServer;
  let job: string;
  const rows = async () =>
    (await db.pool.query(`SELECT surface, event_type, ttfs_ms::float8 AS ms, server_ms::float8 AS server_ms, cache_hit, signal_source, kind, phase FROM okit.ttfs_events ORDER BY id`)).rows;
  const waitRows = async (n: number) => {
    for (let i = 0; i < 300 && (await rows()).length < n; i++) await new Promise((r) => setTimeout(r, 10));
    return rows();
  };

  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { telemetryQueue: { flushMs: 20 } });
    job = (await t.ledger.enqueue('acme', { type: 'scan' })).job.id;
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('as cli: --verbose prints the figure; the report and the server\'s own row land in ttfs_events', async () => {
    const r = await okit(['job', 'status', job, '--verbose'], { ...noCi(), OKIT_URL: t.base, OKIT_TOKEN: t.tokens.read });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('[queued] Waiting in queue (position: 1); no ETA yet: no scan job has succeeded');
    const m = /okit: time to first signal (\d+\.\d) ms \(cli, server (\d+\.\d\d) ms, cache miss, snapshot\)/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const got = await waitRows(2);
    const client = got.find((x) => x.event_type === 'signal.rendered')!;
    const server = got.find((x) => x.event_type === 'signal.cold_start')!;
    expect(client).toMatchObject({ surface: 'cli', cache_hit: false, signal_source: 'snapshot', kind: 'queued', phase: 'unknown' });
    expect(server).toMatchObject({ surface: 'cli', cache_hit: false, signal_source: 'snapshot', kind: 'queued' });
    expect(client.ms).toBeCloseTo(Number(m![1]), 0);
    expect(client.server_ms).toBeCloseTo(Number(m![2]), 2);
    // From the process start: Node's start-up and the request are inside; the server's part is a sliver of it.
    expect(client.ms).toBeGreaterThan(client.server_ms);
    expect(server.ms).toBeLessThanOrEqual(client.server_ms + 0.001);
  });

  it('as ci under a CI system, silently without --verbose; both show in okit slo report', async () => {
    const r = await okit(['job', 'status', job], { ...noCi(), GITHUB_ACTIONS: 'true', OKIT_URL: t.base, OKIT_TOKEN: t.tokens.read });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/time to first signal/);
    const got = await waitRows(4);
    expect(got.filter((x) => x.event_type === 'signal.rendered').map((x) => x.surface)).toEqual(['cli', 'ci']);

    const rep = await okit(['slo', 'report', '--json'], { DATABASE_URL: db.url });
    const j = JSON.parse(rep.stdout);
    // Real timings: on a loaded machine a CLI start can take over 2 s, which is a breach.
    expect(rep.code, rep.stderr).toBe(j.breached ? 1 : 0);
    const all = j.rows.filter((x: { kind: string | null }) => x.kind === null);
    expect(all.map((x: { surface: string; events: number; server_events: number }) => [x.surface, x.events, x.server_events])).toEqual([
      ['ci', 1, 1],
      ['cli', 1, 1],
    ]);
    const text = await okit(['slo', 'report'], { DATABASE_URL: db.url });
    expect(text.stdout).toMatch(/^cli\s+\(all\)\s+1\s/m);
    expect(text.stdout).toMatch(j.breached ? /result: BREACH: / : /result: every surface within its targets/);
  });

  it('a bad OKIT_SURFACE is an input error (exit 2); a server that refuses telemetry does not fail the command', async () => {
    const bad = await okit(['job', 'status', job], { ...noCi(), OKIT_SURFACE: 'tv', OKIT_URL: t.base, OKIT_TOKEN: t.tokens.read });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/OKIT_SURFACE/);
    const off = await startTestServer(db.url, db.pool, { telemetry: false });
    try {
      const r = await okit(['job', 'status', job, '--verbose'], { ...noCi(), OKIT_URL: off.base, OKIT_TOKEN: t.tokens.read });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/time to first signal not reported: no route for POST/);
    } finally {
      await off.srv.close();
    }
  });
});

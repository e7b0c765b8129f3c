/**
 * The demo's workload: real workers driving real jobs through the HTTP API of an in-process
 * `okit serve`. Each job's payload tells its worker what to do, so one small run shows phases
 * with progress, a throttled source (token bucket plus an upstream 429), a retry with backoff,
 * and a failure that matches a known failure signature (with next actions). The workers are
 * OkitWorkers; the upstream 429 is a real HTTP answer from a loopback stand-in for the feed.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Ledger } from '../ledger/ledger.js';
import type { Phase } from '../ledger/types.js';
import type { OkitClient } from '../worker/client.js';
import { RetryableError, UpstreamError, retryAfterSeconds } from '../worker/errors.js';
import { OkitWorker } from '../worker/worker.js';

export type Behaviour = 'scan' | 'flaky' | 'broken' | 'throttled-fetch' | 'upstream-429';

export interface DemoJob {
  id: string;
  behaviour: Behaviour;
  enqueuedAt: number;
  ttfsMs: number | null;
}

export interface Sources {
  registry: string;
  advisories: string;
}

const PLAN: Record<Behaviour, Array<{ phase: Phase; summary: string; items: number }>> = {
  scan: [
    { phase: 'resolve', summary: 'Resolving image manifest', items: 4 },
    { phase: 'fetch', summary: 'Pulling image layers', items: 8 },
    { phase: 'analyze', summary: 'Scanning image layers', items: 100 },
    { phase: 'policy', summary: 'Evaluating policy', items: 12 },
  ],
  flaky: [{ phase: 'fetch', summary: 'Downloading advisories', items: 20 }],
  broken: [
    { phase: 'fetch', summary: 'Pulling image layers', items: 6 },
    { phase: 'analyze', summary: 'Extracting layers', items: 10 },
  ],
  'throttled-fetch': [{ phase: 'fetch', summary: 'Fetching advisory feed', items: 10 }],
  'upstream-429': [{ phase: 'fetch', summary: 'Fetching advisory feed', items: 10 }],
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Operator set-up: sources, one host behind a small token bucket, a failure signature. */
export async function setUp(ledger: Ledger, tenant: string): Promise<Sources> {
  const registry = await ledger.createSource(tenant, { name: 'registry', host: 'registry.example' });
  const advisories = await ledger.createSource(tenant, { name: 'advisories', host: 'advisories.example' });
  await ledger.configureThrottle(tenant, 'registry.example', { capacity: 10, refillPerSec: 5 });
  await ledger.configureThrottle(tenant, 'advisories.example', { capacity: 1, refillPerSec: 1 });
  await ledger.addFailureSignature(tenant, {
    pattern: { error_code: 'LAYER_EXTRACT_FAILED' },
    outcome: {
      likely_cause: 'The registry returned a truncated layer',
      suggested_action: 'Re-run after the registry mirror resyncs (usually within 5 minutes)',
      mttr_p50_seconds: 300,
    },
    confidence: 0.87,
  });
  return { registry: registry.id, advisories: advisories.id };
}

/** What the demo enqueues, in order; the first is the job it follows live. */
export const JOBS: Array<{ behaviour: Behaviour; type: string; source: keyof Sources; label: string }> = [
  { behaviour: 'scan', type: 'scan', source: 'registry', label: 'registry.example/app:1.4.2' },
  { behaviour: 'scan', type: 'scan', source: 'registry', label: 'registry.example/api:2.0.0' },
  { behaviour: 'flaky', type: 'fetch', source: 'registry', label: 'advisories mirror' },
  { behaviour: 'broken', type: 'scan', source: 'registry', label: 'registry.example/legacy:0.9' },
  { behaviour: 'throttled-fetch', type: 'fetch', source: 'advisories', label: 'feed page 1' },
  { behaviour: 'upstream-429', type: 'fetch', source: 'advisories', label: 'feed page 2' },
  { behaviour: 'throttled-fetch', type: 'fetch', source: 'advisories', label: 'feed page 3' },
  { behaviour: 'throttled-fetch', type: 'fetch', source: 'advisories', label: 'feed page 4' },
  { behaviour: 'scan', type: 'scan', source: 'registry', label: 'registry.example/web:3.1.0' },
  { behaviour: 'scan', type: 'report', source: 'registry', label: 'weekly report' },
];

export interface WorkerStats {
  claims: number;
  retries: number;
  upstream429: number;
}

/** A loopback stand-in for advisories.example: its first request answers 429 with Retry-After: 2. */
async function startUpstream(): Promise<{ url: string; close: () => Promise<void> }> {
  let n = 0;
  const srv = createServer((req, res) => {
    req.resume();
    if (n++ === 0) {
      res.writeHead(429, { 'retry-after': '2', 'content-type': 'text/plain' });
      return res.end('Too Many Requests\n');
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"advisories":[]}');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => srv.close(() => r())) };
}

/**
 * Three OkitWorkers over the HTTP API, each handler doing what its job's payload says; they
 * run until `done()` says so, then drain.
 */
export async function runWorkers(client: OkitClient, stepMs: number, done: () => boolean, stats: WorkerStats): Promise<void> {
  const upstream = await startUpstream();
  const handler = async (job: { payload: unknown }, ctx: import('../worker/worker.js').JobContext) => {
    const { behaviour } = job.payload as { behaviour: Behaviour };
    if (behaviour === 'upstream-429' && ctx.attempt === 1) {
      await sleep(stepMs);
      const r = await fetch(`${upstream.url}/feed?page=2`, { signal: ctx.signal });
      await r.text();
      if (r.status === 429) {
        stats.upstream429++;
        // One call: the host's bucket adapts and the retry waits at least Retry-After.
        throw new UpstreamError(`advisories.example answered 429 Too Many Requests (Retry-After: ${r.headers.get('retry-after')})`, {
          status: 429,
          retryAfterSeconds: retryAfterSeconds(r.headers.get('retry-after')),
          host: 'advisories.example',
        });
      }
    }
    for (const step of PLAN[behaviour]) {
      const chunks = 4;
      for (let i = 1; i <= chunks; i++) {
        await sleep(stepMs);
        ctx.signal.throwIfAborted();
        await ctx.progress(step.phase, { summary: step.summary, itemsDone: Math.round((step.items * i) / chunks), itemsTotal: step.items });
      }
      if (behaviour === 'flaky' && ctx.attempt === 1) throw new RetryableError('mirror timed out after 30s', { code: 'FETCH_TIMEOUT' });
      if (behaviour === 'broken' && step.phase === 'analyze') throw Object.assign(new Error('layer 3 of 5 could not be extracted'), { code: 'LAYER_EXTRACT_FAILED' });
    }
    return { findings: 3 };
  };
  const workers = ['worker-1', 'worker-2', 'worker-3'].map((workerId) => {
    const w = new OkitWorker({ client, workerId, types: ['scan', 'fetch', 'report'], leaseSeconds: 15, claimWaitSeconds: 1, handler });
    w.on('claimed', () => stats.claims++);
    w.on('failed', (f) => f.retryable && stats.retries++);
    return w;
  });
  try {
    const running = workers.map((w) => w.run());
    const stopped = (async () => {
      while (!done()) await sleep(50);
      await Promise.all(workers.map((w) => w.stop()));
    })();
    await Promise.all([...running, stopped]);
  } finally {
    await upstream.close();
  }
}

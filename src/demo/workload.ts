/**
 * The demo's workload: real workers driving real jobs through the HTTP API of an in-process
 * `okit serve`. Each job's payload tells its worker what to do, so one small run shows phases
 * with progress, a throttled source (token bucket plus an upstream 429), a retry with backoff,
 * and a failure that matches a known failure signature (with next actions).
 */
import { OkitError } from '../errors.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Phase } from '../ledger/types.js';
import type { OkitClient } from '../worker/client.js';

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

/**
 * A worker loop over the HTTP API: claim, heartbeat, report progress, finish as the payload
 * says. Stops when `done()` says so.
 */
export async function runWorker(
  client: OkitClient,
  ledger: Ledger,
  tenant: string,
  workerId: string,
  stepMs: number,
  done: () => boolean,
  stats: WorkerStats,
): Promise<void> {
  while (!done()) {
    const claim = await client.claim({ workerId, types: ['scan', 'fetch', 'report'], leaseSeconds: 15 });
    if (!claim) {
      await sleep(stepMs / 2);
      continue;
    }
    stats.claims++;
    const job = claim.job;
    const lease = { workerId, leaseToken: claim.leaseToken };
    const payload = job.payload as { behaviour: Behaviour };
    const behaviour = payload.behaviour;
    try {
      if (behaviour === 'upstream-429' && claim.attempt === 1) {
        await sleep(stepMs);
        // The upstream said 429 Retry-After: 2; tell the ledger so the bucket adapts.
        await ledger.reportThrottle(tenant, 'advisories.example', { retryAfterSeconds: 2, status: 429, workerId });
        stats.upstream429++;
        await client.fail(job.id, { ...lease, code: 'UPSTREAM_429', message: 'advisories.example answered 429 Too Many Requests (Retry-After: 2)', retryable: true });
        stats.retries++;
        continue;
      }
      for (const step of PLAN[behaviour]) {
        const chunks = 4;
        for (let i = 1; i <= chunks; i++) {
          await sleep(stepMs);
          await client.progress(job.id, { ...lease, phase: step.phase, summary: step.summary, itemsDone: Math.round((step.items * i) / chunks), itemsTotal: step.items });
          await client.heartbeat(job.id, { ...lease, leaseSeconds: 15 });
        }
        if (behaviour === 'flaky' && claim.attempt === 1) {
          await client.fail(job.id, { ...lease, code: 'FETCH_TIMEOUT', message: 'mirror timed out after 30s', retryable: true });
          stats.retries++;
          break;
        }
        if (behaviour === 'broken' && step.phase === 'analyze') {
          await client.fail(job.id, { ...lease, code: 'LAYER_EXTRACT_FAILED', message: 'layer 3 of 5 could not be extracted', retryable: false });
          break;
        }
      }
      const now = await client.getJob(job.id);
      if (now.state === 'running') await client.complete(job.id, { ...lease, result: { findings: 3 } });
    } catch (e) {
      // A job canceled under its worker is the one expected refusal; anything else is a bug.
      if (!(e instanceof OkitError && (e.code === 'ILLEGAL_TRANSITION' || e.code === 'LEASE_NOT_HELD'))) throw e;
    }
  }
}

/**
 * `POST /workers/claim` with `wait`: claim at once if a job is free, else park on the claim
 * waiters (src/signals/claims.ts) and claim again when woken, until something is claimed or
 * the wait is over. Every claim is the ordinary ledger claim (the table is the truth).
 */
import type { ServerResponse } from 'node:http';
import type { ClaimedJob, ClaimInput, Ledger } from '../ledger/ledger.js';
import type { ClaimWaiters } from '../signals/claims.js';

/** Longest `wait` a claim may ask for, seconds. */
export const MAX_CLAIM_WAIT_SECONDS = 30;

/** Whether the client of this response is gone (it can no longer hear an answer). */
function clientGone(res: ServerResponse): boolean {
  return res.destroyed || res.socket === null || res.socket.destroyed;
}

/**
 * Claims up to `limit` jobs, waiting up to `waitSeconds` for one to become claimable. Stops at
 * `signal` (the client left, or the server is closing) without claiming. Jobs claimed for a
 * client that left meanwhile are handed back at once (`abandon`: lease_expired now), so they
 * do not sit out their lease.
 */
export async function claimWithWait(
  ledger: Ledger,
  waiters: ClaimWaiters | undefined,
  tenant: string,
  input: ClaimInput & { limit: number },
  waitSeconds: number,
  signal: AbortSignal,
  res: ServerResponse,
): Promise<ClaimedJob[]> {
  if (waitSeconds <= 0 || !waiters) return handBackIfGone(ledger, tenant, input, await ledger.claim(tenant, input), res);
  const deadline = performance.now() + waitSeconds * 1000;
  // Armed before the first claim query: a hint that arrives while it runs is kept.
  const armed = waiters.arm(tenant, input.types, input.limit);
  try {
    for (;;) {
      if (signal.aborted) return [];
      armed.claiming();
      const got = await ledger.claim(tenant, input);
      armed.claimed(got.length);
      if (got.length > 0) return handBackIfGone(ledger, tenant, input, got, res);
      const left = deadline - performance.now();
      if (left <= 0) return [];
      if ((await armed.wait(left, signal)) !== 'woken') return [];
    }
  } finally {
    armed.leave();
  }
}

async function handBackIfGone(ledger: Ledger, tenant: string, input: ClaimInput, got: ClaimedJob[], res: ServerResponse): Promise<ClaimedJob[]> {
  if (got.length === 0 || !clientGone(res)) return got;
  await Promise.allSettled(got.map((c) => ledger.abandon(tenant, c.job.id, { workerId: input.workerId, leaseToken: c.leaseToken })));
  return [];
}

/**
 * Issue 14's part of the simulation (kept apart from the simulator core, simulate.ts): workers
 * that go silent for a while (heartbeating, no progress) and the stall sweeper that marks them,
 * at the simulation's clock. Draws come from their own random stream, so the core's draws (and
 * so every other row) are what they would be without it. Learned signatures need no help: every
 * failure of the core workload learns (jobs.ts), and their MTTR follows the successes.
 */
import { Rng } from '../util/rng.js';
import type { Ledger } from './ledger.js';

/** stall_after in simulations: short, so that a silence of a few ticks is a stall (per type, as configured in production). */
export const SIM_STALL_AFTER = { defaultSeconds: 6, byType: { scan: 4 } } as const;

export class SimStalls {
  private readonly rng: Rng;
  /** Job id → the clock (µs) until which its worker sends no progress, only heartbeats. */
  private readonly silentUntil = new Map<string, bigint>();
  marked = 0;

  constructor(seed: number) {
    this.rng = new Rng((seed ^ 0x57a11) >>> 0);
  }

  /** A job just claimed: about one in eight goes silent for 5 to 12 s, once, at its first step. */
  claimed(jobId: string, now: bigint): void {
    if (this.rng.next() < 0.125) this.silentUntil.set(jobId, now + BigInt(this.rng.int(5, 12)) * 1_000_000n);
  }

  /** Whether the job's worker stays silent this tick (it only heartbeats); the silence ends once. */
  silent(jobId: string, now: bigint): boolean {
    const until = this.silentUntil.get(jobId);
    if (until === undefined) return false;
    if (now < until) return true;
    this.silentUntil.delete(jobId);
    return false;
  }

  forget(jobId: string): void {
    this.silentUntil.delete(jobId);
  }

  /** The sweeper's turn: mark stalled jobs at the simulation clock. */
  async sweep(ledger: Ledger, tenant: string): Promise<void> {
    this.marked += await ledger.markStalled({ tenant });
  }
}

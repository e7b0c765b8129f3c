/**
 * A small pool of verifier workers (verify-worker.ts). Each worker answers in the order it was
 * asked, so a FIFO of pending answers per worker is all the bookkeeping; the Verifier applies
 * the results in file order. Each worker's heap is capped: it holds one segment at a time.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DataFile } from './format.js';
import type { SegmentBuffers, SegmentResult } from './segments.js';
import type { SegmentReply, SegmentRequest } from './verify-worker.js';

/** The worker script: next to this module, or the build's copy when running from source (tests). */
function workerUrl(): URL {
  const here = new URL(import.meta.url);
  return here.pathname.endsWith('.ts') ? new URL('../../dist/bundle/verify-worker.js', here) : new URL('./verify-worker.js', here);
}

/** Workers worth starting on this machine: one per core, at most two (the reading thread is the third). */
export function defaultWorkers(): number {
  const n = availableParallelism();
  if (process.env.OKIT_DEV_WORKERS) return Number(process.env.OKIT_DEV_WORKERS);
  return n <= 1 ? 0 : Math.min(2, n);
}

interface Pending {
  resolve(r: SegmentResult): void;
  reject(e: Error): void;
}

export class SegmentWorkers {
  private readonly workers: Worker[] = [];
  private readonly pending_: Pending[][] = [];
  private failure: Error | null = null;
  /** Where segment buffers go back once checked. */
  buffers: SegmentBuffers | null = null;

  constructor(n: number) {
    for (let i = 0; i < n; i++) {
      const w = new Worker(workerUrl(), { resourceLimits: { maxOldGenerationSizeMb: 48, maxYoungGenerationSizeMb: Number(process.env.OKIT_DEV_YOUNG ?? 8) } });
      const q: Pending[] = [];
      w.on('message', (m: SegmentReply) => {
        this.buffers?.put(m.bytes);
        q.shift()?.resolve(m.r);
      });
      const fail = (e: Error) => {
        this.failure ??= new Error(`verifier worker failed: ${e.message}`);
        for (const p of q.splice(0)) p.reject(this.failure);
      };
      w.on('error', fail);
      w.on('exit', (code) => {
        if (q.length) fail(new Error(`exited with code ${code}`));
      });
      this.workers.push(w);
      this.pending_.push(q);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** Segments sent and not answered yet. */
  get pending(): number {
    let n = 0;
    for (const q of this.pending_) n += q.length;
    return n;
  }

  /**
   * Checks a segment on the least busy worker. The bytes are moved, not copied: `bytes` must
   * own its ArrayBuffer (Splitter's segments do) and is unusable afterwards.
   */
  check(f: DataFile, bytes: Buffer, tenant: string | null, last: boolean): Promise<SegmentResult> {
    if (this.failure) return Promise.reject(this.failure);
    let k = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.pending_[i]!.length < this.pending_[k]!.length) k = i;
    return new Promise<SegmentResult>((resolve, reject) => {
      this.pending_[k]!.push({ resolve, reject });
      const msg: SegmentRequest = { f, bytes, tenant, last };
      this.workers[k]!.postMessage(msg, [bytes.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * Per-job waiter sets: the in-process fan-out of NOTIFY hints. A waiter is a one-shot wake-up;
 * whoever wakes re-reads the snapshot (a wake is no guarantee of a change), and every wait is
 * bounded by its own timer, so a lost wake costs latency, never an update.
 */
export type Wake = () => void;

/** Arm with this job id to be woken by a change of any job of the tenant (a run's watchers). */
export const ANY_JOB = '*';

export class Waiters {
  private readonly byJob = new Map<string, Set<Wake>>();

  private static key(tenant: string, jobId: string): string {
    return `${tenant}/${jobId}`;
  }

  /** Registers a wake-up for a job; returns the function that removes it. */
  add(tenant: string, jobId: string, wake: Wake): () => void {
    const k = Waiters.key(tenant, jobId);
    let set = this.byJob.get(k);
    if (!set) this.byJob.set(k, (set = new Set()));
    set.add(wake);
    return () => {
      const s = this.byJob.get(k);
      if (!s) return;
      s.delete(wake);
      if (s.size === 0) this.byJob.delete(k);
    };
  }

  /**
   * Waits until woken, `ms` elapse, or `abort` fires. Resolves 'woken' | 'timeout' | 'aborted'.
   * The wake-up must be registered BEFORE the caller reads the state it compares against,
   * so use `arm()` first and `wait()` on its result after reading.
   */
  arm(tenant: string, jobId: string): Armed {
    let woken = false;
    let fire: (() => void) | null = null;
    const remove = this.add(tenant, jobId, () => {
      woken = true;
      fire?.();
    });
    return {
      wait(ms: number, abort?: AbortSignal): Promise<'woken' | 'timeout' | 'aborted'> {
        return new Promise((resolve) => {
          let timer: NodeJS.Timeout | undefined;
          const done = (why: 'woken' | 'timeout' | 'aborted') => {
            if (timer) clearTimeout(timer);
            abort?.removeEventListener('abort', onAbort);
            remove();
            resolve(why);
          };
          const onAbort = () => done('aborted');
          if (woken) return done('woken');
          if (abort?.aborted) return done('aborted');
          timer = setTimeout(() => done('timeout'), Math.max(0, ms));
          fire = () => done('woken');
          abort?.addEventListener('abort', onAbort, { once: true });
        });
      },
      cancel: remove,
    };
  }

  wakeJob(tenant: string, jobId: string): void {
    this.fire(this.byJob.get(Waiters.key(tenant, jobId)));
    this.fire(this.byJob.get(Waiters.key(tenant, ANY_JOB)));
  }

  wakeTenant(tenant: string): void {
    const prefix = `${tenant}/`;
    for (const [k, s] of this.byJob) if (k.startsWith(prefix)) this.fire(s);
  }

  wakeAll(): void {
    for (const s of this.byJob.values()) this.fire(s);
  }

  get size(): number {
    let n = 0;
    for (const s of this.byJob.values()) n += s.size;
    return n;
  }

  private fire(set: Set<Wake> | undefined): void {
    if (!set) return;
    for (const w of [...set]) w();
  }
}

export interface Armed {
  wait(ms: number, abort?: AbortSignal): Promise<'woken' | 'timeout' | 'aborted'>;
  cancel(): void;
}

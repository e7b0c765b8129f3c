import { formatMicros, parseMicros, type Micros } from './time.js';

/** The only source of "now" in the ledger. Injected so simulations and tests are reproducible. */
export interface Clock {
  now(): Micros;
}

/**
 * Wall clock with microsecond resolution, strictly increasing within the process
 * (two calls never return the same instant, so history rows always order by time too).
 */
export class SystemClock implements Clock {
  private last: Micros = 0n;
  private readonly originMs = Date.now();
  private readonly originHr = process.hrtime.bigint();
  now(): Micros {
    const elapsedUs = (process.hrtime.bigint() - this.originHr) / 1000n;
    let t = BigInt(this.originMs) * 1000n + elapsedUs;
    if (t <= this.last) t = this.last + 1n;
    this.last = t;
    return t;
  }
}

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  private t: Micros;
  constructor(start: Micros | string) {
    this.t = typeof start === 'string' ? parseMicros(start) : start;
  }
  now(): Micros {
    return this.t;
  }
  set(t: Micros): void {
    this.t = t;
  }
  advance(us: Micros): Micros {
    this.t += us;
    return this.t;
  }
  toString(): string {
    return formatMicros(this.t);
  }
}

export const systemClock: Clock = new SystemClock();

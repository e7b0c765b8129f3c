/**
 * Bounded label values. Prometheus keeps one series per label combination, so a label fed
 * from user data (tenants, hosts, job types, error codes) must not grow without bound: the
 * first `max` distinct values a process sees keep their own label, every later one is
 * counted under OTHER. `_other` cannot collide with a real value: tenants, hosts, job types
 * and error codes all start with a letter or digit.
 */
export const OTHER = '_other';

export class LabelCap {
  private readonly seen = new Set<string>();
  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('a label limit must be a positive integer');
  }

  of(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size < this.max) {
      this.seen.add(value);
      return value;
    }
    return OTHER;
  }

  /** Values kept so far, in first-seen order. */
  values(): string[] {
    return [...this.seen];
  }
}

/** Documented defaults: how many distinct values each capped label keeps. */
export const DEFAULT_LABEL_LIMITS = { tenants: 20, hosts: 50, types: 50, errorCodes: 50 } as const;
export type LabelLimits = { tenants: number; hosts: number; types: number; errorCodes: number };

/**
 * Histogram and counter families for the hot path (one observation per first-signal answer).
 * prom-client validates and hashes the label set on every observe()/inc(), about 1–2 µs a call
 * on this machine's class of CPU: at tens of thousands of answers a second that is several per
 * cent of the server. Here a labelled child is a plain record found once (by the caller's key)
 * and an observation is a bucket search and two additions. The families are registered in the
 * prom-client Registry and expose themselves through its `get()` contract, so the text format
 * is still prom-client's.
 */
import type { Metric, Registry } from 'prom-client';

type Labels = Record<string, string | number>;

/** What prom-client's Registry reads from a metric at scrape time (its `get()` contract). */
export interface Exported {
  name: string;
  help: string;
  type: 'histogram' | 'counter';
  values: Array<{ labels: Labels; value: number; metricName?: string }>;
  aggregator: 'sum';
}

interface HistChild {
  labels: Labels;
  counts: Float64Array; // per bucket, not cumulative; last = above every bound
  sum: number;
  count: number;
}

export interface FastHistogramChild {
  observe(v: number): void;
}
export interface FastCounterChild {
  inc(n?: number): void;
}

abstract class FastFamily<C> {
  readonly aggregator = 'sum' as const;
  protected readonly children = new Map<string, C>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  protected labelsOf(values: readonly string[]): Labels {
    if (values.length !== this.labelNames.length) throw new RangeError(`${this.name}: ${this.labelNames.length} label values expected`);
    const l: Labels = {};
    this.labelNames.forEach((n, i) => (l[n] = values[i]!));
    return l;
  }

  register(r: Registry): this {
    r.registerMetric(this as unknown as Metric);
    return this;
  }

  reset(): void {
    this.children.clear();
  }
}

export class FastHistogram extends FastFamily<HistChild> {
  readonly type = 'histogram' as const;
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[],
  ) {
    super(name, help, labelNames);
  }

  /** The child for these label values (in labelNames order); `key` identifies them for reuse. */
  child(key: string, values: () => readonly string[]): FastHistogramChild {
    let c = this.children.get(key);
    if (!c) this.children.set(key, (c = { labels: this.labelsOf(values()), counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 }));
    const child = c;
    const b = this.buckets;
    return {
      observe(v: number) {
        let i = 0;
        while (i < b.length && v > b[i]!) i++;
        child.counts[i]!++;
        child.sum += v;
        child.count++;
      },
    };
  }

  get(): Exported {
    const values: Exported['values'] = [];
    for (const c of this.children.values()) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += c.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...c.labels, le }, value: acc });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...c.labels, le: '+Inf' }, value: c.count });
      values.push({ metricName: `${this.name}_sum`, labels: c.labels, value: c.sum });
      values.push({ metricName: `${this.name}_count`, labels: c.labels, value: c.count });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: this.aggregator };
  }
}

export class FastCounter extends FastFamily<{ labels: Labels; value: number }> {
  readonly type = 'counter' as const;

  child(key: string, values: () => readonly string[]): FastCounterChild {
    let c = this.children.get(key);
    if (!c) this.children.set(key, (c = { labels: this.labelsOf(values()), value: 0 }));
    const child = c;
    return {
      inc(n = 1) {
        child.value += n;
      },
    };
  }

  get(): Exported {
    return { name: this.name, help: this.help, type: 'counter', values: [...this.children.values()].map((c) => ({ labels: c.labels, value: c.value })), aggregator: this.aggregator };
  }
}

/**
 * The bounded telemetry queue of a server: requests push events and return at once; a
 * writer inserts them in batches (one INSERT … SELECT FROM unnest per batch), off the hot
 * path, at most one batch per tick, so telemetry never costs Postgres more than
 * batchMax / flushMs rows a second (1,000 by default) however busy the server is. A full
 * queue drops what does not fit and counts it, so a flood of telemetry costs at most
 * `maxQueue` events of memory. A batch that fails because the database is away goes
 * back to the queue if there is room (else it is dropped and counted); a batch the database
 * refuses for any other reason is dropped and counted, never retried in a loop.
 */
import type { Pool } from '../db/pool.js';
import { isDbUnavailable } from '../http/errors.js';
import type { TtfsEvent } from './events.js';

export interface QueueOptions {
  /** Events held at most (default 10,000). */
  maxQueue?: number;
  /** Events per INSERT at most (default 1000). */
  batchMax?: number;
  /** How often a batch is written (default 1000 ms). */
  flushMs?: number;
  /** Called after each batch written: rows and milliseconds. */
  onBatch?: (rows: number, ms: number) => void;
  log?: (line: string) => void;
}

export type DropReason = 'queue_full' | 'write_failed';

/** Column order of the batch INSERT: one array parameter per column. */
const COLUMNS = ['ts', 'tenant', 'job_id', 'run_id', 'surface', 'event_type', 'ttfs_ms', 'server_ms', 'cache_hit', 'signal_source', 'kind', 'phase', 'error_code'] as const satisfies ReadonlyArray<keyof TtfsEvent>;

const INSERT = `INSERT INTO okit.ttfs_events (${COLUMNS.join(', ')})
  SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::numeric[], $8::numeric[],
    $9::boolean[], $10::text[], $11::text[], $12::text[], $13::text[])`;

export class TelemetryQueue {
  private buf: TtfsEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private closed = false;
  readonly maxQueue: number;
  readonly batchMax: number;
  private readonly flushMs: number;
  readonly stats = { accepted: 0, written: 0, batches: 0, writeErrors: 0, dropped: { queue_full: 0, write_failed: 0 } as Record<DropReason, number> };

  constructor(
    private readonly pool: Pool,
    private readonly o: QueueOptions = {},
  ) {
    this.maxQueue = o.maxQueue ?? 10_000;
    this.batchMax = o.batchMax ?? 1000;
    this.flushMs = o.flushMs ?? 1000;
    if (!(this.maxQueue >= 1 && this.batchMax >= 1 && this.flushMs >= 1)) throw new RangeError('telemetry queue: sizes and interval must be positive');
  }

  get depth(): number {
    return this.buf.length;
  }

  /** No room: a caller may skip building an event that would only be dropped (and counts it here). */
  dropIfFull(n = 1): boolean {
    if (!this.closed && this.buf.length + n <= this.maxQueue) return false;
    this.stats.dropped.queue_full += n;
    return true;
  }

  start(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => void this.flush(), this.flushMs);
    this.timer.unref();
  }

  /** Queues what fits; never waits. Returns how many were accepted and dropped. */
  push(events: readonly TtfsEvent[]): { accepted: number; dropped: number } {
    const room = this.closed ? 0 : Math.max(0, this.maxQueue - this.buf.length);
    const n = Math.min(room, events.length);
    for (let i = 0; i < n; i++) this.buf.push(events[i]!);
    const dropped = events.length - n;
    this.stats.accepted += n;
    this.stats.dropped.queue_full += dropped;
    return { accepted: n, dropped };
  }

  /** Writes one batch (the timer's tick), or with `all` everything queued, batch after batch. */
  flush(all = false): Promise<void> {
    if (this.writing) return this.writing;
    if (this.buf.length === 0) return Promise.resolve();
    this.writing = (async () => {
      try {
        while (this.buf.length > 0) {
          if (!(await this.write(this.buf.splice(0, this.batchMax))) || !all) break;
        }
      } finally {
        this.writing = null;
      }
    })();
    return this.writing;
  }

  private async write(batch: TtfsEvent[]): Promise<boolean> {
    const t0 = performance.now();
    const cols = COLUMNS.map((k) => batch.map((e) => e[k]));
    try {
      await this.pool.query(INSERT, cols);
      this.stats.written += batch.length;
      this.stats.batches++;
      this.o.onBatch?.(batch.length, performance.now() - t0);
      return true;
    } catch (e) {
      this.stats.writeErrors++;
      const room = this.maxQueue - this.buf.length;
      if (isDbUnavailable(e) && !this.closed && room >= batch.length) this.buf.unshift(...batch);
      else {
        this.stats.dropped.write_failed += batch.length;
        if (!isDbUnavailable(e)) this.o.log?.(`telemetry batch of ${batch.length} refused: ${(e as Error).message}`);
      }
      return false;
    }
  }

  /** Stops the timer and writes what is queued, for at most `ms`. */
  async close(ms = 2000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    let timer: NodeJS.Timeout | undefined;
    const out = new Promise<void>((r) => (timer = setTimeout(r, ms)));
    const drain = (async () => {
      await this.writing;
      await this.flush(true);
    })();
    await Promise.race([drain, out]);
    clearTimeout(timer);
    this.closed = true;
    // Whatever could not be written in time (database away) is lost, and counted.
    this.stats.dropped.write_failed += this.buf.length;
    this.buf = [];
  }
}

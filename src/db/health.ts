/**
 * Is the database answering right now? A probe (`SELECT 1`) every `intervalMs` on a
 * connection of its own (outside the query pool, so a busy pool is not mistaken for a sick
 * server), bounded by `timeoutMs`. Down as soon as a probe fails or has waited `timeoutMs`;
 * up again at the next probe that answers. `okit serve` reports it in /readyz and answers
 * 503 at once, instead of queueing requests behind a frozen server, while it is down.
 */
import type pg from 'pg';
import { createClient } from './pool.js';

export interface DbHealthOptions {
  url: string;
  intervalMs?: number;
  timeoutMs?: number;
  onChange?: (up: boolean, why: string) => void;
}

export class DbHealth {
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private probing = false;
  private closed = false;
  private state = true; // the server starts only after LISTEN worked: optimistic until the first probe
  readonly stats = { probes: 0, failures: 0 };

  constructor(private readonly o: DbHealthOptions) {}

  get up(): boolean {
    return this.state && !this.closed;
  }

  start(): void {
    void this.probe();
    this.timer = setInterval(() => void this.probe(), this.o.intervalMs ?? 1000);
    this.timer.unref();
  }

  private set(up: boolean, why: string): void {
    if (this.state === up || this.closed) return;
    this.state = up;
    this.o.onChange?.(up, why);
  }

  /** One probe; resolves true when the database answered in time. */
  async probe(): Promise<boolean> {
    if (this.probing || this.closed) return this.up;
    this.probing = true;
    this.stats.probes++;
    const timeoutMs = this.o.timeoutMs ?? 2000;
    // Down as soon as the bound passes, even while the probe itself is still waiting (one more
    // event-loop turn first, for an answer that arrived during a stall: see within()).
    let settled = false;
    const late = setTimeout(() => setImmediate(() => settled || this.set(false, `no answer within ${timeoutMs} ms`)), timeoutMs);
    try {
      if (!this.client) {
        // pg's own bounds sit a second above ours: they only free the connection; `late` decides.
        const c = createClient(this.o.url, 'okit-health', { connectTimeoutMs: timeoutMs + 1000 });
        c.on('error', () => this.drop(c));
        this.client = c;
        await c.connect();
      }
      await this.client.query({ text: 'SELECT 1', query_timeout: timeoutMs + 1000 } as pg.QueryConfig); // pg honours a per-query query_timeout; its types omit it
      settled = true;
      clearTimeout(late);
      if (!this.closed) this.set(true, 'answering');
      return true;
    } catch (e) {
      settled = true;
      clearTimeout(late);
      this.stats.failures++;
      if (this.client) this.drop(this.client);
      if (!this.closed) this.set(false, (e as Error).message);
      return false;
    } finally {
      this.probing = false;
    }
  }

  private drop(c: pg.Client): void {
    if (this.client === c) this.client = null;
    // end() destroys the socket when a query is still active (a frozen server never answers).
    c.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    const c = this.client;
    this.client = null;
    if (c) await Promise.race([c.end().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}

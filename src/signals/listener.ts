/**
 * The one LISTEN connection of a process: a pg-listen Subscriber on its own connection,
 * outside the query pool, fanned out to every waiter in the process.
 *
 * pg-listen gives up reconnecting after `retryTimeout` (default 3 s, issue #56) and its
 * close() does not stop an infinite retry loop (#61). So its own reconnecting is switched off
 * (`retryLimit: 1`: the first loss emits `error`) and this supervisor owns the lifecycle:
 * on any loss it retires the subscriber and builds a fresh one with capped backoff, forever,
 * until close(). Every (re)connect LISTENs first, then calls `onReconnect` (wake all waiters,
 * drop the cache) because anything sent while disconnected is lost. Every `checkMs` a probe
 * NOTIFY is sent on the listener's own connection and must come back through LISTEN within
 * `probeTimeoutMs`: that proves both the connection (a liveness query) and that the channel
 * is still listened to; a failed probe forces a reconnect (half-open connections).
 */
import { randomBytes } from 'node:crypto';
import pgListen, { type Subscriber } from 'pg-listen';
import { connectionConfig } from '../db/pool.js';
import { NOTIFY_CHANNEL } from '../ledger/ledger.js';

export interface ListenerOptions {
  url: string;
  onNotify: (tenant: string, jobIds: string[] | '*', claims?: ClaimHint) => void;
  onReconnect: () => void;
  onState?: (up: boolean) => void;
  log?: (line: string) => void;
  channel?: string;
  checkMs?: number;
  probeTimeoutMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

const PROBE = '!probe';

// pg-listen is CommonJS with `exports.default`: under NodeNext the default import is the module object.
type Create = typeof import('pg-listen').default;
const createSubscriber: Create = ((pgListen as unknown as { default?: Create }).default ?? pgListen) as Create;

/** Claim hints of a NOTIFY (writer.ts notifyPayload): per type, jobs claimable now, and the earliest later moment. */
export interface ClaimHint {
  /** Jobs claimable now, per type; '*': any type may have some (wake every claim waiter of the tenant). */
  ready: Map<string, number> | '*';
  /** Per type, the earliest moment (µs) a job becomes claimable later. */
  due: Map<string, bigint>;
}

/**
 * Parses `'<tenant> <jobId>... [+<type>=<n>]... [@<type>=<µs>]...'`, where the ids may be `*`
 * and the hints `+*`; anything else is ignored. `claims` is absent when there are no hints.
 */
export function parsePayload(payload: unknown): { tenant: string; jobIds: string[] | '*'; claims?: ClaimHint } | null {
  if (typeof payload !== 'string') return null;
  const parts = payload.split(' ').filter(Boolean);
  if (parts.length < 2 || parts[0]!.startsWith('!')) return null;
  const [tenant, ...rest] = parts;
  const ids: string[] = [];
  let all = false;
  let claims: ClaimHint | undefined;
  const hint = () => (claims ??= { ready: new Map(), due: new Map() });
  for (const t of rest) {
    if (t === '*') all = true;
    else if (t === '+*') hint().ready = '*';
    else if (t[0] === '+' || t[0] === '@') {
      const eq = t.lastIndexOf('=');
      const type = t.slice(1, eq);
      const num = t.slice(eq + 1);
      if (eq < 2 || !/^[0-9]{1,20}$/.test(num)) continue;
      const h = hint();
      if (t[0] === '+') {
        if (h.ready !== '*') h.ready.set(type, (h.ready.get(type) ?? 0) + Number(num));
      } else {
        const at = BigInt(num);
        const cur = h.due.get(type);
        if (cur === undefined || at < cur) h.due.set(type, at);
      }
    } else ids.push(t);
  }
  return claims ? { tenant: tenant!, jobIds: all ? '*' : ids, claims } : { tenant: tenant!, jobIds: all ? '*' : ids };
}

export class SignalListener {
  private sub: Subscriber | null = null;
  private up = false;
  private closed = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private checkTimer: NodeJS.Timeout | null = null;
  private readonly probes = new Map<string, () => void>();
  private readonly channel: string;
  readonly stats = { connects: 0, losses: 0, notifications: 0 };

  constructor(private readonly o: ListenerOptions) {
    this.channel = o.channel ?? NOTIFY_CHANNEL;
  }

  get ready(): boolean {
    return this.up && !this.closed;
  }

  /** Starts connecting; resolves after the first successful LISTEN (or rejects after `timeoutMs`). */
  start(timeoutMs = 30_000): Promise<void> {
    this.connect();
    this.checkTimer = setInterval(() => void this.check(), this.o.checkMs ?? 10_000);
    this.checkTimer.unref();
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const poll = () => {
        if (this.up) return resolve();
        if (this.closed) return reject(new Error('listener closed'));
        if (Date.now() - t0 > timeoutMs) return reject(new Error('could not LISTEN within ' + timeoutMs + ' ms'));
        setTimeout(poll, 20);
      };
      poll();
    });
  }

  private setUp(up: boolean): void {
    if (this.up === up) return;
    this.up = up;
    this.o.onState?.(up);
  }

  private connect(): void {
    if (this.closed) return;
    const sub = createSubscriber(connectionConfig(this.o.url, 'okit-listen'), {
      paranoidChecking: false, // replaced by the probe in check()
      retryLimit: 1, // no internal reconnect loop: losses surface as `error`, handled here
      parse: (s: string) => s,
      serialize: (s: unknown) => String(s),
    });
    this.sub = sub;
    // Always keep an error listener: a retired subscriber may still emit one late.
    sub.events.on('error', (e: Error) => {
      if (this.sub !== sub) return;
      this.o.log?.(`listener lost: ${e.message}`);
      this.lost(sub);
    });
    sub.events.on('notification', (n: { payload?: unknown }) => {
      if (this.sub !== sub) return;
      this.stats.notifications++;
      const payload = n.payload as unknown;
      if (typeof payload === 'string' && payload.startsWith(PROBE)) {
        this.probes.get(payload)?.();
        return;
      }
      const p = parsePayload(payload);
      if (p) this.o.onNotify(p.tenant, p.jobIds, p.claims);
    });
    (async () => {
      await sub.connect();
      await sub.listenTo(this.channel);
    })().then(
      () => {
        if (this.sub !== sub || this.closed) return;
        this.attempt = 0;
        this.stats.connects++;
        this.setUp(true);
        this.o.log?.('listening on ' + this.channel);
        // LISTEN is in place; whatever happened before it is re-read by everyone now.
        this.o.onReconnect();
      },
      (e: Error) => {
        if (this.sub !== sub) return;
        this.o.log?.(`listener connect failed: ${e.message}`);
        this.lost(sub);
      },
    );
  }

  private lost(sub: Subscriber): void {
    if (this.sub !== sub) return;
    this.sub = null;
    this.stats.losses++;
    this.setUp(false);
    retire(sub);
    // Waiters may have missed notifications: let them re-read (and fall back to polling).
    this.o.onReconnect();
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    const min = this.o.backoffMinMs ?? 100;
    const max = this.o.backoffMaxMs ?? 2000;
    const delay = Math.min(max, min * 2 ** Math.min(this.attempt, 10)) * (0.75 + Math.random() * 0.5);
    this.attempt++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
    this.retryTimer.unref();
  }

  /** Probe: NOTIFY on our own connection must come back through LISTEN. */
  async check(): Promise<boolean> {
    const sub = this.sub;
    if (!sub || !this.up || this.closed) return false;
    const token = `${PROBE} ${randomBytes(6).toString('hex')}`;
    const timeoutMs = this.o.probeTimeoutMs ?? 5000;
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.probes.set(token, () => {
        clearTimeout(timer);
        resolve(true);
      });
      sub.notify(this.channel, token).catch(() => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    this.probes.delete(token);
    if (!ok && this.sub === sub && !this.closed) {
      this.o.log?.('listener probe failed; reconnecting');
      this.lost(sub);
    }
    return ok;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.checkTimer) clearInterval(this.checkTimer);
    const sub = this.sub;
    this.sub = null;
    this.up = false; // closing on purpose: no "lost" report
    if (sub) await retire(sub);
  }
}

/** Ends a subscriber for good, including a connection its reconnect may still produce. */
function retire(sub: Subscriber): Promise<void> {
  sub.events.removeAllListeners('notification');
  sub.events.on('connected', () => void sub.close().catch(() => undefined));
  return Promise.race([sub.close().catch(() => undefined), new Promise<void>((r) => setTimeout(r, 1000).unref())]);
}

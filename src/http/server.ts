/**
 * `okit serve` as a library: one LISTEN connection, waiters, cache, routes, lease sweeper,
 * and a graceful close() (stop accepting, answer pending long-polls, end SSE streams, stop
 * the listener). The pool belongs to the caller.
 */
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { OkitError, isOkitError } from '../errors.js';
import type { Pool } from '../db/pool.js';
import type { Ledger } from '../ledger/ledger.js';
import type { SignalDeps } from '../signals/handlers.js';
import { ClaimWaiters } from '../signals/claims.js';
import { SignalListener } from '../signals/listener.js';
import { SignalStore } from '../signals/store.js';
import { Waiters } from '../signals/waiters.js';
import { startMetricsListener, type MetricsListener } from '../metrics/listen.js';
import { OkitMetrics, type MetricsOptions } from '../metrics/metrics.js';
import { pruneTelemetry } from '../telemetry/prune.js';
import { TelemetryQueue, type QueueOptions } from '../telemetry/queue.js';
import { ServerTelemetry } from '../telemetry/server.js';
import { buildRouter } from './api.js';
import { MAX_BODY_BYTES } from './body.js';
import { isDbUnavailable } from './errors.js';
import type { Ctx } from './router.js';
import { sendError } from './send.js';
import { TokenAuth } from './tokens.js';

export interface ServerOptions {
  url: string;
  pool: Pool;
  ledger: Ledger;
  host?: string;
  port?: number;
  log?: (line: string) => void;
  keepAliveMs?: number;
  fallbackPollMs?: number;
  sseRetryMs?: number;
  cacheTtlMs?: number;
  tokenTtlMs?: number;
  sweepMs?: number;
  listenerCheckMs?: number;
  listenerProbeTimeoutMs?: number;
  maxBodyBytes?: number;
  /** Array bodies (POST /jobs with up to 1,000 jobs), at most (default 4 MiB). */
  maxBatchBodyBytes?: number;
  /** How long close() lets in-flight requests finish before cutting connections. */
  drainMs?: number;
  /** TTFS telemetry (recording answers, the telemetry route, the batch writer); default on. */
  telemetry?: boolean;
  telemetryQueue?: Omit<QueueOptions, 'log'>;
  /** Delete telemetry older than this many seconds, at start and hourly (history is never pruned). */
  telemetryRetentionSeconds?: number;
  /** The metrics /metrics serves; made here (with metricsOptions) if not given. */
  metrics?: OkitMetrics;
  metricsOptions?: MetricsOptions;
  /** A second, unauthenticated, loopback-only listener for GET /metrics. */
  metricsListen?: { host: string; port: number };
}

export interface RunningServer {
  port: number;
  host: string;
  baseUrl: string;
  listener: SignalListener;
  waiters: Waiters;
  /** Parked `POST /workers/claim` calls with `wait`; `wakeTypes(tenant, types)` wakes them (e.g. a resumed type). */
  claims: ClaimWaiters;
  store: SignalStore;
  metrics: OkitMetrics;
  telemetry: ServerTelemetry | undefined;
  /** `http://127.0.0.1:PORT/metrics` of the --metrics-listen listener, if any. */
  metricsUrl: string | undefined;
  close(): Promise<void>;
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const log = o.log ?? (() => undefined);
  const waiters = new Waiters();
  const store = new SignalStore(o.ledger, o.cacheTtlMs ?? 1000);
  const shutdown = new AbortController();
  setMaxListeners(0, shutdown.signal); // one listener per in-flight request, removed when it ends
  // Claims with `wait` (called only once the listener below exists).
  const claims = new ClaimWaiters({ pool: o.pool, clock: o.ledger.clock, listenerReady: () => listener.ready, fallbackPollMs: o.fallbackPollMs, log });
  const listener = new SignalListener({
    url: o.url,
    log,
    checkMs: o.listenerCheckMs,
    probeTimeoutMs: o.listenerProbeTimeoutMs,
    onNotify: (tenant, ids, hints) => {
      if (hints) claims.notify(tenant, hints);
      if (ids === '*') {
        store.cache.invalidateTenant(tenant);
        waiters.wakeTenant(tenant);
        return;
      }
      for (const id of ids) {
        store.cache.invalidate(tenant, id);
        waiters.wakeJob(tenant, id);
      }
    },
    onReconnect: () => {
      store.cache.clear();
      waiters.wakeAll();
      claims.wakeAll();
    },
    onState: (up) => log(up ? 'ready: LISTEN is up' : 'not ready: LISTEN connection lost'),
  });
  // LISTEN first, then serve reads: the documented order for not missing a change.
  try {
    await listener.start();
  } catch (e) {
    await listener.close(); // else its reconnect loop and probe outlive the failed start
    throw e;
  }

  // Metrics and telemetry: recorded in memory on the hot path, written to Postgres in batches.
  const metrics = o.metrics ?? new OkitMetrics({ clock: o.ledger.clock, ...o.metricsOptions });
  const waiting = { long_poll: 0, sse: 0 };
  const queue = o.telemetry === false ? undefined : new TelemetryQueue(o.pool, { ...o.telemetryQueue, log });
  const telemetry = queue && new ServerTelemetry(metrics, queue, o.pool, o.ledger.clock);
  metrics.bind({ pool: o.pool, listener, waiting, queue });
  o.ledger.commitObservers.add(metrics.onCommit); // job outcomes and ledger transactions of this process
  await metrics.loadTargets(o.pool).catch(() => undefined);
  queue?.start();

  const signals: SignalDeps = {
    store,
    waiters,
    listenerReady: () => listener.ready,
    shutdown: shutdown.signal,
    keepAliveMs: o.keepAliveMs ?? 15_000,
    fallbackPollMs: o.fallbackPollMs ?? 1000,
    sseRetryMs: o.sseRetryMs ?? 2000,
    telemetry,
    waiting,
  };
  const requestSignals = new WeakMap<http.ServerResponse, AbortSignal>();
  const router = buildRouter({
    ledger: o.ledger,
    auth: new TokenAuth(o.pool, o.tokenTtlMs ?? 5000),
    signals,
    ready: () => ({ ready: listener.ready && !shutdown.signal.aborted, listener: listener.ready, shuttingDown: shutdown.signal.aborted }),
    signalFor: (ctx: Ctx) => requestSignals.get(ctx.res) ?? shutdown.signal,
    maxBodyBytes: o.maxBodyBytes ?? MAX_BODY_BYTES,
    maxBatchBodyBytes: o.maxBatchBodyBytes,
    metrics,
    telemetry,
    claims,
  });

  // Each request's AbortController, aborted when its client goes away, and by close() for all
  // in flight. (Neither AbortSignal.any nor a listener per request on the shutdown signal: with
  // thousands of pending long-polls, EventTarget's duplicate check makes each add O(n) — 5 % of
  // server CPU at 1,000 long-polls, bench/signal-latency.)
  const inflight = new Map<http.ServerResponse, AbortController>();
  const server = http.createServer((req, res) => {
    const stop = new AbortController();
    inflight.set(res, stop);
    res.on('close', () => {
      inflight.delete(res);
      if (!res.writableFinished) stop.abort();
    });
    requestSignals.set(res, stop.signal);
    void (async () => {
      try {
        if (shutdown.signal.aborted) {
          res.setHeader('Connection', 'close');
          throw new OkitError('SHUTTING_DOWN', 'the server is shutting down; retry on another instance');
        }
        const u = new URL(req.url ?? '/', 'http://localhost');
        const { handler, params } = router.match(req.method ?? 'GET', u.pathname);
        await handler({ req, res, params, query: u.searchParams });
      } catch (e) {
        if (!isOkitError(e) && !isDbUnavailable(e)) log(`internal error on ${req.method} ${req.url}: ${(e as Error)?.stack ?? e}`);
        sendError(res, e);
      }
    })();
  });
  server.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"error":{"code":"BAD_REQUEST","message":"malformed HTTP request"}}');
    else socket.destroy();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port ?? 8080, o.host ?? '127.0.0.1', () => resolve());
    });
  } catch (e) {
    // A port in use or an address not ours is the caller's to fix; and without closing the
    // LISTEN connection the process would never exit.
    await listener.close();
    await queue?.close(0);
    o.ledger.commitObservers.delete(metrics.onCommit);
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new OkitError('LISTEN_FAILED', `cannot listen on ${o.host ?? '127.0.0.1'}:${o.port ?? 8080}: ${code}`);
  }
  const addr = server.address() as AddressInfo;
  let metricsListener: MetricsListener | undefined;
  if (o.metricsListen) {
    try {
      metricsListener = await startMetricsListener(metrics, o.metricsListen);
    } catch (e) {
      await new Promise<void>((r) => server.close(() => r()));
      await listener.close();
      await queue?.close(0);
      o.ledger.commitObservers.delete(metrics.onCommit);
      throw e;
    }
  }

  // Telemetry retention: at start, then hourly. Only okit.ttfs_events; never the ledger.
  let pruning: Promise<unknown> = Promise.resolve();
  const retention = o.telemetryRetentionSeconds;
  const prune = () => {
    if (retention === undefined) return;
    pruning = pruneTelemetry(o.pool, o.ledger.clock.now() - BigInt(retention) * 1_000_000n)
      .then((n) => n > 0 && log(`pruned ${n} telemetry event(s) older than ${retention} s`))
      .catch((e) => isDbUnavailable(e) || log(`telemetry prune failed: ${(e as Error).message}`));
  };
  prune();
  const pruner = retention === undefined ? undefined : setInterval(prune, 3_600_000);
  pruner?.unref();

  // Leases of vanished workers go back to the queue (or dead-letter) without a worker's help.
  let sweeping = false;
  const sweeper = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    o.ledger
      .expireLeases()
      .then((n) => n > 0 && log(`returned ${n} expired lease(s)`))
      .catch((e) => isDbUnavailable(e) || log(`lease sweep failed: ${(e as Error).message}`))
      .finally(() => (sweeping = false));
  }, o.sweepMs ?? 5000);
  sweeper.unref();

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      shutdown.abort(); // pending long-polls answer now, SSE streams end
      for (const c of inflight.values()) c.abort();
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      const t0 = performance.now();
      while (inflight.size > 0 && performance.now() - t0 < (o.drainMs ?? 5000)) await new Promise((r) => setTimeout(r, 10));
      server.closeAllConnections();
      await closed;
      clearInterval(sweeper);
      while (sweeping) await new Promise((r) => setTimeout(r, 10));
      if (pruner) clearInterval(pruner);
      await pruning;
      await metricsListener?.close();
      await queue?.close();
      o.ledger.commitObservers.delete(metrics.onCommit);
      await listener.close();
    })());

  return {
    port: addr.port,
    host: addr.address,
    baseUrl: `http://${addr.address}:${addr.port}`,
    listener,
    waiters,
    claims,
    store,
    metrics,
    telemetry,
    metricsUrl: metricsListener?.url,
    close,
  };
}

/**
 * `okit serve` as a library: one LISTEN connection, a database health probe, waiters, cache,
 * routes, lease sweeper, connection caps and timeouts (limits.ts), and a graceful close()
 * (stop accepting, answer pending long-polls, end SSE streams, stop the listener). The pool
 * belongs to the caller (`okit serve` gives it SERVE_DB_TIMEOUTS).
 */
import { DEFAULT_JOB_STREAMS_PER_PRINCIPAL, DEFAULT_MAX_JOB_STREAMS, DEFAULT_MAX_STREAMS, DEFAULT_STREAMS_PER_PRINCIPAL, StreamSlots } from '../signals/slots.js';
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { OkitError, isOkitError } from '../errors.js';
import { DbHealth } from '../db/health.js';
import type { Pool } from '../db/pool.js';
import type { Ledger } from '../ledger/ledger.js';
import type { SignalDeps } from '../signals/handlers.js';
import { ClaimWaiters } from '../signals/claims.js';
import { SignalListener } from '../signals/listener.js';
import { SignalStore } from '../signals/store.js';
import { LiveQueue } from '../signals/live.js';
import { Waiters } from '../signals/waiters.js';
import { startMetricsListener, type MetricsListener } from '../metrics/listen.js';
import { OkitMetrics, type MetricsOptions } from '../metrics/metrics.js';
import { pruneTelemetry } from '../telemetry/prune.js';
import { TelemetryQueue, type QueueOptions } from '../telemetry/queue.js';
import { ServerTelemetry } from '../telemetry/server.js';
import { buildRouter } from './api.js';
import { MAX_BODY_BYTES } from './body.js';
import { errorBody, isDbUnavailable } from './errors.js';
import { addressKey, ConnectionCounter, defaultLimits, type ServerLimits } from './limits.js';
import { oneLine, RateLimitedLog } from './log.js';
import { parseTarget, type Ctx } from './router.js';
import { sendError } from './send.js';
import { TokenAuth } from './tokens.js';
import { COMMON_HEADERS, DEFAULT_CONSOLE_DIR, StaticFiles } from './console.js';
import { ConsoleSessions, pruneSessions } from './sessions.js';
import { MAX_STREAM_IDS } from '../signals/multi.js';

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
  /** Open multiplexed streams per console session or bearer token (default 4) and server-wide (default 200). */
  maxStreamsPerPrincipal?: number;
  maxStreams?: number;
  /** Per-job SSE streams per session or token (default 64); server-wide 5000. */
  maxJobStreamsPerPrincipal?: number;
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
  /** Connection caps and HTTP timeouts; unset fields take defaultLimits(). */
  limits?: Partial<ServerLimits>;
  /** Database health probe: every `dbProbeMs`, down after `dbProbeTimeoutMs` without an answer. */
  dbProbeMs?: number;
  dbProbeTimeoutMs?: number;
  /** A token not in the cache is looked up within this, else 503. */
  tokenLookupTimeoutMs?: number;
  /** Client-caused log lines (malformed requests, timeouts, refused connections) per 10 s. */
  clientLogPer10s?: number;
  /** TTFS telemetry (recording answers, the telemetry route, the batch writer); default on. */
  telemetry?: boolean;
  telemetryQueue?: Omit<QueueOptions, 'log'>;
  /** Delete telemetry older than this many seconds, at start and hourly (history is never pruned). */
  telemetryRetentionSeconds?: number;
  /** The metrics /metrics serves; made here (with metricsOptions) if not given. */
  metrics?: OkitMetrics;
  metricsOptions?: MetricsOptions;
  /** Console sessions: lifetime in seconds (default 12 h). */
  sessionTtlSeconds?: number;
  /** Mark the session cookie Secure over plain http too (TLS ends in a proxy in front); https requests always get it. */
  secureCookies?: boolean;
  /** Where the built console page is (default dist/console/ of this package). */
  consoleDir?: string;
  /** A second, unauthenticated, loopback-only listener for GET /metrics. */
  metricsListen?: { host: string; port: number };
}

export interface RunningServer {
  port: number;
  host: string;
  baseUrl: string;
  listener: SignalListener;
  health: DbHealth;
  waiters: Waiters;
  /** Parked `POST /workers/claim` calls with `wait`; `wakeTypes(tenant, types)` wakes them (e.g. a resumed type). */
  claims: ClaimWaiters;
  store: SignalStore;
  limits: ServerLimits;
  connections: ConnectionCounter;
  metrics: OkitMetrics;
  telemetry: ServerTelemetry | undefined;
  /** `http://127.0.0.1:PORT/metrics` of the --metrics-listen listener, if any. */
  metricsUrl: string | undefined;
  /** The routes this server answers (method and pattern, `:name` for a path parameter). */
  routes: Array<{ method: string; pattern: string }>;
  close(): Promise<void>;
}

/** A request line too long for the header limit because it lists too many ids for the multiplexed stream. */
function manyIds(e: Error): boolean {
  const raw = (e as Error & { rawPacket?: Buffer }).rawPacket;
  return raw !== undefined && /^(GET|HEAD) \/api\/v1\/orchestrator\/stream\/jobs\?(\S*&)?ids=/.test(raw.subarray(0, 200).toString('latin1'));
}

/** A complete raw HTTP response for a socket that has no request object (yet, or any more). */
function rawResponse(status: number, reason: string, err: OkitError, extra = ''): string {
  const body = errorBody(err);
  const common = Object.entries(COMMON_HEADERS).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${common}Connection: close\r\n${extra}\r\n${body}`;
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const log = o.log ?? (() => undefined);
  const clientLog = new RateLimitedLog(log, o.clientLogPer10s ?? 20, 10_000);
  const limits: ServerLimits = { ...defaultLimits(), ...o.limits };
  const waiters = new Waiters();
  const health = new DbHealth({
    url: o.url,
    intervalMs: o.dbProbeMs,
    timeoutMs: o.dbProbeTimeoutMs,
    onChange: (up, why) => {
      log(up ? 'database answering again' : `database not answering: ${why}`);
      // Make the LISTEN connection prove itself now rather than at its next probe.
      void listener.check();
    },
  });
  const dbUp = () => health.up;
  const live = new LiveQueue(o.ledger.pool, { cap: o.ledger.opts.queuePositionCap });
  const store = new SignalStore(o.ledger, o.cacheTtlMs ?? 1000, dbUp, live);
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
        store.invalidateTenant(tenant);
        waiters.wakeTenant(tenant);
        return;
      }
      for (const id of ids) {
        store.invalidate(tenant, id);
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

  health.start();

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
    streams: new StreamSlots(o.maxStreamsPerPrincipal ?? DEFAULT_STREAMS_PER_PRINCIPAL, o.maxStreams ?? DEFAULT_MAX_STREAMS),
    jobStreams: new StreamSlots(o.maxJobStreamsPerPrincipal ?? DEFAULT_JOB_STREAMS_PER_PRINCIPAL, DEFAULT_MAX_JOB_STREAMS, 'the multiplexed stream /stream/jobs?ids=… follows up to 500 jobs on one connection'),
    telemetry,
    waiting,
  };
  const requestSignals = new WeakMap<http.ServerResponse, AbortSignal>();
  const auth = new TokenAuth(o.pool, o.tokenTtlMs ?? 5000, { dbUp, lookupTimeoutMs: o.tokenLookupTimeoutMs ?? 2000 });
  // Sessions are checked like tokens: a revoked token or a logout bites within the token cache time.
  const sessions = new ConsoleSessions(o.pool, auth, o.ledger.clock, {
    ttlSeconds: o.sessionTtlSeconds,
    cacheTtlMs: o.tokenTtlMs ?? 5000,
    dbUp,
    lookupTimeoutMs: o.tokenLookupTimeoutMs ?? 2000,
    secureCookies: o.secureCookies,
  });
  const router = buildRouter({
    ledger: o.ledger,
    auth,
    sessions,
    files: new StaticFiles(o.consoleDir ?? DEFAULT_CONSOLE_DIR),
    signals,
    dbUp,
    ready: () => ({
      ready: listener.ready && health.up && !shutdown.signal.aborted,
      listener: listener.ready,
      db: health.up,
      shuttingDown: shutdown.signal.aborted,
    }),
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
  const server = http.createServer(
    {
      // Host is checked below so that its absence gets the documented JSON error, not Node's empty 400.
      requireHostHeader: false,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      maxHeaderSize: limits.maxHeaderBytes,
      // Node checks header/request deadlines on this period (default 30 s, which would let a
      // 10 s header timeout run to 40 s).
      connectionsCheckingInterval: Math.max(250, Math.min(1000, limits.headersTimeoutMs / 4)),
    },
    (req, res) => {
      const stop = new AbortController();
      inflight.set(res, stop);
      res.on('close', () => {
        inflight.delete(res);
        if (!res.writableFinished) stop.abort();
      });
      requestSignals.set(res, stop.signal);
      for (const [k, v] of Object.entries(COMMON_HEADERS)) res.setHeader(k, v);
      void (async () => {
        try {
          if (shutdown.signal.aborted) {
            res.setHeader('Connection', 'close');
            throw new OkitError('SHUTTING_DOWN', 'the server is shutting down; retry on another instance');
          }
          if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1 && !req.headers.host) {
            res.setHeader('Connection', 'close');
            throw new OkitError('BAD_REQUEST', 'an HTTP/1.1 request needs a Host header');
          }
          const { pathname, query } = parseTarget(req.url);
          const { handler, params } = router.match(req.method ?? 'GET', pathname);
          await handler({ req, res, params, query });
        } catch (e) {
          if (!isOkitError(e) && !isDbUnavailable(e))
            clientLog.line(`internal error on ${req.method} ${JSON.stringify(oneLine(req.url ?? '', 200))}: ${(e as Error)?.stack?.split('\n').slice(0, 4).join(' | ') ?? e}`);
          sendError(res, e);
        }
      })();
    },
  );
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.setTimeout(limits.socketIdleTimeoutMs); // no 'timeout' listener: Node destroys the idle socket

  // Connection caps, counted per client address (IPv6 per /64). A refused connection gets a
  // JSON 503 and is closed at once: it holds its file descriptor for microseconds.
  const connections = new ConnectionCounter(limits);
  server.on('connection', (socket: Socket) => {
    const key = addressKey(socket.remoteAddress);
    const verdict = connections.admit(key);
    if (verdict !== 'ok') {
      connections.stats.refused++;
      const err = new OkitError(
        'TOO_MANY_CONNECTIONS',
        verdict === 'total' ? `the server holds its maximum of ${limits.maxConnections} connections; retry shortly` : `at most ${limits.maxConnectionsPerIp} connections per client address; retry shortly`,
      );
      clientLog.line(`refused a connection from ${key}: ${verdict === 'total' ? `${connections.total} open in all` : `${connections.of(key)} open from it`}`);
      socket.on('error', () => undefined);
      socket.end(rawResponse(503, 'Service Unavailable', err, 'Retry-After: 1\r\n'));
      socket.destroySoon();
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    socket.once('close', () => connections.release(key));
  });

  // Malformed requests and timed-out ones: answer if nothing of a response has been written
  // yet, then destroy the socket (end() alone half-closes and keeps the fd while the client
  // holds its side open).
  server.on('clientError', (e: NodeJS.ErrnoException, socket: Socket) => {
    const code = e.code ?? '';
    socket.on('error', () => undefined);
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason, err] =
      code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ([408, 'Request Timeout', new OkitError('REQUEST_TIMEOUT', `the request did not arrive in time (headers within ${limits.headersTimeoutMs / 1000} s, all of it within ${limits.requestTimeoutMs / 1000} s)`)] as const)
        : code === 'HPE_HEADER_OVERFLOW' && manyIds(e)
          ? ([400, 'Bad Request', new OkitError('TOO_MANY_IDS', `ids: at most ${MAX_STREAM_IDS} job ids per stream (this request line alone is over ${limits.maxHeaderBytes} bytes)`, { limit: MAX_STREAM_IDS })] as const)
        : code === 'HPE_HEADER_OVERFLOW'
          ? ([431, 'Request Header Fields Too Large', new OkitError('HEADERS_TOO_LARGE', `request line and headers exceed ${limits.maxHeaderBytes} bytes`)] as const)
          : ([400, 'Bad Request', new OkitError('BAD_REQUEST', `malformed HTTP request (${code || 'parse error'})`)] as const);
    clientLog.line(`client error from ${addressKey(socket.remoteAddress)}: ${status} ${err.code} (${code || e.message})`);
    const pending = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (!pending?.headersSent) socket.write(rawResponse(status, reason, err));
    socket.destroy();
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
    await health.close();
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
      await health.close();
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

  // Console sessions and sign-in links a week past their end: at start, then hourly.
  let sessionPruning: Promise<unknown> = Promise.resolve();
  const pruneConsole = () => {
    sessionPruning = pruneSessions(o.pool, o.ledger.clock.now())
      .then((n) => n > 0 && log(`pruned ${n} ended console session(s) and link(s)`))
      .catch((e) => isDbUnavailable(e) || log(`console session prune failed: ${(e as Error).message}`));
  };
  pruneConsole();
  const sessionPruner = setInterval(pruneConsole, 3_600_000);
  sessionPruner.unref();

  // Leases of vanished workers go back to the queue (or dead-letter) without a worker's help.
  let sweeping = false;
  const sweeper = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    o.ledger
      .expireLeases()
      .then((n) => n > 0 && log(`returned ${n} expired lease(s)`))
      // Then running jobs silent for longer than their stall_after get their `stalled` mark.
      .then(() => o.ledger.markStalled())
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
      clearInterval(sessionPruner);
      await pruning;
      await sessionPruning;
      await metricsListener?.close();
      await queue?.close();
      o.ledger.commitObservers.delete(metrics.onCommit);
      await listener.close();
      await health.close();
      clientLog.flush();
    })());

  return {
    port: addr.port,
    host: addr.address,
    baseUrl: `http://${addr.address}:${addr.port}`,
    listener,
    health,
    waiters,
    claims,
    store,
    limits,
    connections,
    metrics,
    telemetry,
    metricsUrl: metricsListener?.url,
    routes: router.table(),
    close,
  };
}

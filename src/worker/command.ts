/**
 * Any program as a worker (`okit work`): an OkitWorker handler that runs a command per job.
 *
 *   stdin   the job's payload as one JSON line, then EOF
 *   env     OKIT_JOB_ID, OKIT_JOB_TYPE, OKIT_JOB_ATTEMPT, OKIT_TENANT, OKIT_WORKER_ID,
 *           OKIT_SOURCE_ID, OKIT_RUN_ID (empty when none); OKIT_TOKEN is removed
 *   stdout  a line that is a JSON object with `phase` is a progress report
 *           {"phase":"analyze","items_done":3,"items_total":10,"summary":"…"}; one with `result`
 *           is the result (the last one wins); one with `upstream`
 *           {"upstream":{"status":429,"retry_after_seconds":30,"host":"…"}} reports a throttle
 *           at once; any other line (and all of stderr) is the job's log
 *   exit    0 complete · 75 (EX_TEMPFAIL) retryable fail EXIT_75 · n terminal fail EXIT_<n> ·
 *           killed by a signal we did not send: retryable fail SIGNAL_<name>
 *
 * Memory stays bounded whatever the child prints: a line is cut at MAX_LINE_BYTES (the rest
 * of it is skipped, not buffered), and the log keeps only its last LOG_LINES lines, which go
 * into the failure message. A canceled job, a lost lease, a timeout or a stop kills the child's
 * process group: SIGTERM, then SIGKILL after `killGraceMs`.
 *
 * Lines are split here rather than by ndjson: ndjson drops (or reports 50 bytes of) a line
 * that is not JSON, and such lines are the job's log.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { OkitError, isOkitError } from '../errors.js';
import type { Job } from '../ledger/types.js';
import { RetryableError } from './errors.js';
import type { Handler, JobContext, ProgressReport } from './worker.js';
import { messageText } from './worker.js';

export const MAX_LINE_BYTES = 64 * 1024;
export const LOG_LINES = 20;
const LOG_LINE_CHARS = 500;
export const EX_TEMPFAIL = 75;

export interface CommandOptions {
  /** The program: a path, or a name looked up on PATH (resolved by resolveCommand). */
  command: string;
  args: string[];
  /** After SIGTERM, how long the child has before SIGKILL, ms (default 5000). */
  killGraceMs?: number;
  /** The environment children start from (default process.env). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Each log line of each job, as it comes (for `okit work --verbose`). */
  onLog?: (job: Job, line: string) => void;
  /** A line that looked like a report but was not a valid one. */
  onBadLine?: (job: Job, line: string, why: string) => void;
}

/**
 * The program's absolute path: as given when it holds a `/`, else the first match on PATH.
 * A program that does not exist or cannot be executed is a COMMAND_NOT_FOUND /
 * COMMAND_NOT_EXECUTABLE error, so `okit work` exits 2 before any claim.
 */
export function resolveCommand(command: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (!command) throw new OkitError('INVALID_INPUT', 'a command to run is needed: okit work --type T -- COMMAND [ARGS]');
  const candidates = command.includes('/') ? [path.resolve(cwd, command)] : (env.PATH ?? '').split(':').filter(Boolean).map((d) => path.join(d, command));
  let found: string | undefined;
  for (const c of candidates) {
    try {
      if (statSync(c).isFile()) {
        found ??= c;
        accessSync(c, constants.X_OK);
        return c;
      }
    } catch {
      /* next */
    }
  }
  if (found) throw new OkitError('COMMAND_NOT_EXECUTABLE', `${found}: not executable (chmod +x?)`);
  throw new OkitError('COMMAND_NOT_FOUND', command.includes('/') ? `${candidates[0]}: no such file` : `${command}: not found on PATH`);
}

/** Splits a byte stream into lines, each cut at `max` bytes; never buffers more than `max`. */
export class LineSplitter {
  private buf: Buffer[] = [];
  private len = 0;
  private skipping = false;
  constructor(
    private readonly onLine: (line: string, cut: boolean) => void,
    private readonly max = MAX_LINE_BYTES,
  ) {}

  write(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      const nl = chunk.indexOf(0x0a, off);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.skipping) {
        const take = Math.min(end - off, this.max - this.len);
        if (take > 0) {
          this.buf.push(chunk.subarray(off, off + take));
          this.len += take;
        }
        if (end - off > take) {
          this.emit(true);
          this.skipping = true;
        }
      }
      if (nl === -1) return;
      if (this.skipping) this.skipping = false;
      else this.emit(false);
      off = nl + 1;
    }
  }

  end(): void {
    if (!this.skipping && this.len > 0) this.emit(false);
    this.skipping = false;
  }

  private emit(cut: boolean): void {
    let s = Buffer.concat(this.buf, this.len).toString('utf8');
    if (s.endsWith('\r')) s = s.slice(0, -1);
    this.buf = [];
    this.len = 0;
    this.onLine(s, cut);
  }
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
const optNum = (x: unknown) => (x === undefined || x === null ? undefined : typeof x === 'number' ? x : NaN);

/** A stdout line as a report, or null when it is log; a string when it is a report gone wrong. */
export function parseReport(line: string): null | string | { kind: 'progress'; phase: string; report: ProgressReport } | { kind: 'result'; result: Obj } | { kind: 'upstream'; status: number; retryAfterSeconds?: number; host?: string } {
  const t = line.trim();
  if (!t.startsWith('{')) return null;
  let o: unknown;
  try {
    o = JSON.parse(t);
  } catch {
    return null; // text that happens to start with a brace: log
  }
  if (!isObj(o)) return null;
  if ('upstream' in o) {
    const u = o.upstream;
    if (!isObj(u) || typeof u.status !== 'number' || !Number.isInteger(u.status)) return 'upstream.status: must be an integer HTTP status';
    const ra = optNum(u.retry_after_seconds);
    if (Number.isNaN(ra)) return 'upstream.retry_after_seconds: must be a number';
    if (u.host !== undefined && u.host !== null && typeof u.host !== 'string') return 'upstream.host: must be a string';
    return { kind: 'upstream', status: u.status, retryAfterSeconds: ra, host: (u.host as string | null) ?? undefined };
  }
  if ('result' in o) {
    if (!isObj(o.result)) return 'result: must be a JSON object';
    return { kind: 'result', result: o.result };
  }
  if ('phase' in o) {
    if (typeof o.phase !== 'string') return 'phase: must be a string';
    const itemsDone = optNum(o.items_done);
    const itemsTotal = optNum(o.items_total);
    if (Number.isNaN(itemsDone)) return 'items_done: must be a number';
    if (Number.isNaN(itemsTotal)) return 'items_total: must be a number';
    if (o.summary !== undefined && o.summary !== null && typeof o.summary !== 'string') return 'summary: must be a string';
    return { kind: 'progress', phase: o.phase, report: { itemsDone, itemsTotal, summary: (o.summary as string | null) ?? undefined } };
  }
  return null;
}

/** The last `n` log lines, each cut to a readable length. */
class LogTail {
  private lines: string[] = [];
  constructor(private readonly n = LOG_LINES) {}
  push(line: string): void {
    this.lines.push(line.length > LOG_LINE_CHARS ? line.slice(0, LOG_LINE_CHARS) + '…' : line);
    if (this.lines.length > this.n) this.lines.shift();
  }
  text(): string {
    return this.lines.join('\n');
  }
}

/** The OkitWorker handler that runs `command args` for each job. */
export function commandHandler(o: CommandOptions): Handler {
  const killGraceMs = o.killGraceMs ?? 5000;
  return (job, ctx) => runChild(job, ctx, o, killGraceMs);
}

function childEnv(job: Job, ctx: JobContext, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  delete env.OKIT_TOKEN; // the child reports through us; it needs no credentials
  return {
    ...env,
    OKIT_JOB_ID: job.id,
    OKIT_JOB_TYPE: job.type,
    OKIT_JOB_ATTEMPT: String(ctx.attempt),
    OKIT_TENANT: job.tenant,
    OKIT_WORKER_ID: ctx.workerId,
    OKIT_SOURCE_ID: job.source_id ?? '',
    OKIT_RUN_ID: job.run_id ?? '',
  };
}

function runChild(job: Job, ctx: JobContext, o: CommandOptions, killGraceMs: number): Promise<Obj | undefined> {
  return new Promise((resolve, reject) => {
    const log = new LogTail();
    let result: Obj | undefined;
    let upstream: { status: number; retryAfterSeconds?: number; host?: string } | undefined;
    // Progress: one report in flight; a newer one replaces any waiting (the latest is what matters).
    let inFlight: Promise<void> | null = null;
    let waiting: { phase: string; report: ProgressReport } | null = null;
    const reports = new Set<Promise<unknown>>();
    const bad = (line: string, why: string) => {
      log.push(`okit: ignored line (${why}): ${line}`);
      o.onBadLine?.(job, line, why);
    };
    const sendProgress = () => {
      if (inFlight || !waiting || ctx.signal.aborted) return;
      const { phase, report } = waiting;
      waiting = null;
      inFlight = ctx
        .progress(phase, report)
        .catch((e: unknown) => {
          // Refused as a report (a bad phase, say): logged, never fatal. Canceled or lost: the signal aborts.
          if (isOkitError(e) && !['JOB_CANCELED', 'LEASE_NOT_HELD', 'ILLEGAL_TRANSITION'].includes(e.code)) bad(JSON.stringify({ phase, ...report }), `${e.code}: ${e.message}`);
        })
        .finally(() => {
          inFlight = null;
          sendProgress();
        });
    };
    const onStdout = (line: string, cut: boolean) => {
      const r = cut ? null : parseReport(line);
      if (r === null) {
        log.push(cut ? `${line.slice(0, LOG_LINE_CHARS)}… (line longer than ${MAX_LINE_BYTES} bytes, cut)` : line);
        o.onLog?.(job, line);
      } else if (typeof r === 'string') bad(line, r);
      else if (r.kind === 'progress') {
        waiting = { phase: r.phase, report: r.report };
        sendProgress();
      } else if (r.kind === 'result') result = r.result;
      else {
        upstream = r;
        // Slow the host's bucket now, for every worker: the default host is the job's source's.
        const p = ctx
          .reportThrottle(r.host ?? null, r.retryAfterSeconds, r.status)
          .catch((e: unknown) => bad(line, `throttle not reported: ${(e as Error).message}`))
          .finally(() => reports.delete(p));
        reports.add(p);
      }
    };
    const out = new LineSplitter(onStdout);
    const err = new LineSplitter((line) => {
      log.push(line);
      o.onLog?.(job, line);
    });

    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(o.command, o.args, { cwd: o.cwd, env: childEnv(job, ctx, o.env ?? process.env), stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    } catch (e) {
      return reject(new RetryableError(`cannot start ${o.command}: ${(e as Error).message}`, { code: 'SPAWN_FAILED' }));
    }
    let killTimer: NodeJS.Timeout | null = null;
    let weKilled = false;
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    const onAbort = () => {
      weKilled = true;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), killGraceMs);
      killTimer.unref();
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener('abort', onAbort, { once: true });

    child.stdin!.on('error', () => {
      /* the child did not read its payload (EPIPE): its business */
    });
    child.stdin!.end(JSON.stringify(job.payload) + '\n');
    child.stdout!.on('data', (b: Buffer) => out.write(b));
    child.stderr!.on('data', (b: Buffer) => err.write(b));

    let spawnError: Error | null = null;
    child.on('error', (e) => (spawnError = e));
    child.on('close', (code, signal) => {
      if (killTimer) clearTimeout(killTimer);
      ctx.signal.removeEventListener('abort', onAbort);
      // A grandchild that kept the group alive after SIGTERM gets SIGKILL too.
      if (weKilled) killGroup('SIGKILL');
      out.end();
      err.end();
      void (async () => {
        // Reports the child made go out before its outcome (a progress after complete would be refused).
        waiting = null;
        while (inFlight) await inFlight;
        await Promise.all([...reports]);
        const tail = log.text();
        const withTail = (m: string) => messageText(tail ? `${m}\n${tail}` : m);
        if (ctx.signal.aborted) return reject(ctx.signal.reason);
        if (spawnError) return reject(new RetryableError(withTail(`cannot run ${o.command}: ${spawnError.message}`), { code: 'SPAWN_FAILED' }));
        if (code === 0) return resolve(result);
        if (signal) return reject(new RetryableError(withTail(`${path.basename(o.command)} was killed by ${signal}`), { code: `SIGNAL_${signal}` }));
        const what = `${path.basename(o.command)} exited with ${code}`;
        // An upstream throttle was reported already (its line); the retry waits for the host's bucket.
        const code_ = upstream && code === EX_TEMPFAIL ? `UPSTREAM_${upstream.status}` : `EXIT_${code}`;
        if (code === EX_TEMPFAIL) return reject(new RetryableError(withTail(what), { code: code_ }));
        reject(Object.assign(new Error(withTail(what)), { code: `EXIT_${code}` }));
      })();
    });
  });
}


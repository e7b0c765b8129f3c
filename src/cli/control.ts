/**
 * The operator's commands, all through the HTTP API of `okit serve` (--url, --token or
 * OKIT_URL, OKIT_TOKEN): `okit sources|throttle|signatures|queue|run`, and `okit job
 * list|get|enqueue|retry|prioritize|cancel`. Each prints a table, or with --json one JSON value
 * per line; bad input exits 2 with the error's code.
 */
import type { Command } from 'commander';
import { OkitError } from '../errors.js';
import * as v from '../ledger/validate.js';
import { signalLine } from '../signals/signal.js';
import { TtfsReporter } from '../telemetry/reporter.js';
import { detectSurface } from '../telemetry/surface.js';
import type { ListFilters, OkitClient } from '../worker/client.js';
import { isRetryable } from '../worker/client.js';
import { terminalLine } from '../util/terminal.js';
import { action, EXIT, type Io } from './io.js';
import { clientFrom } from './job.js';
import { asLineError, readJobsFile } from './jsonl-jobs.js';
import { age, jsonLine, table } from './table.js';

interface Conn {
  url?: string;
  token?: string;
  json?: boolean;
}

const conn = (c: Command) =>
  c
    .option('--json', 'JSON output, one value per line')
    .option('--url <url>', 'server (default $OKIT_URL or http://127.0.0.1:8080)')
    .option('--token <token>', 'bearer token (default $OKIT_TOKEN)');

/** A number option as typed: decimal (with an optional fraction where `fraction`). */
function numberArg(text: string | undefined, field: string, min: number, max: number, fraction = false): number | undefined {
  if (text === undefined) return undefined;
  if (!(fraction ? /^[0-9]{1,12}(\.[0-9]{1,6})?$/ : /^-?[0-9]{1,12}$/).test(text))
    throw new OkitError('INVALID_INPUT', `${field}: must be a ${fraction ? 'decimal number' : 'decimal integer'} from ${min} to ${max}`, { field });
  const n = Number(text);
  if (n < min || n > max) throw new OkitError('INVALID_INPUT', `${field}: must be from ${min} to ${max}`, { field });
  return n;
}

function parseJson(text: string, field: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new OkitError('INVALID_INPUT', `${field}: not valid JSON (${(e as Error).message})`, { field });
  }
}

// ------------------------------------------------------------------ sources

export async function runSourcesAdd(o: Conn & { name: string; host: string }, io: Io): Promise<number> {
  const { source, created } = await clientFrom(o, io).createSource({ name: o.name, host: o.host });
  if (o.json) jsonLine(io, { source, created });
  else table(io, ['ID', 'NAME', 'HOST', 'CREATED'], [[source.id, source.name, source.host, created ? 'yes' : 'no (exists)']]);
  return EXIT.OK;
}

export async function runSourcesList(o: Conn, io: Io): Promise<number> {
  const sources = await clientFrom(o, io).listSources();
  if (o.json) for (const s of sources) jsonLine(io, s);
  else table(io, ['ID', 'NAME', 'HOST', 'CREATED_AT'], sources.map((s) => [s.id, s.name, s.host, s.created_at]));
  return EXIT.OK;
}

// ------------------------------------------------------------------ throttles

export async function runThrottleSet(host: string, o: Conn & { capacity: string; refill: string }, io: Io): Promise<number> {
  const b = await clientFrom(o, io).setThrottle({ host, capacity: numberArg(o.capacity, 'capacity', 1, 999999, true)!, refillPerSec: numberArg(o.refill, 'refill', 0.000001, 999999, true)! });
  if (o.json) jsonLine(io, b);
  else printBuckets(io, [b]);
  return EXIT.OK;
}

function printBuckets(io: Io, bs: Awaited<ReturnType<OkitClient['listThrottles']>>): void {
  table(
    io,
    ['HOST', 'TOKENS', 'CAPACITY', 'REFILL/S', 'BASE/S', 'PENALTY_UNTIL', 'LAST_UPSTREAM_THROTTLE'],
    bs.map((b) => [
      b.host,
      b.tokens,
      b.capacity,
      b.refill_per_sec,
      b.base_refill_per_sec,
      b.penalty_until,
      b.last_upstream_throttle ? `${b.last_upstream_throttle.status ?? '?'} at ${b.last_upstream_throttle.at} (retry after ${b.last_upstream_throttle.retry_after_seconds ?? '?'} s${b.last_upstream_throttle.worker_id ? `, ${b.last_upstream_throttle.worker_id}` : ''})` : null,
    ]),
  );
}

export async function runThrottleList(o: Conn, io: Io): Promise<number> {
  const bs = await clientFrom(o, io).listThrottles();
  if (o.json) for (const b of bs) jsonLine(io, b);
  else printBuckets(io, bs);
  return EXIT.OK;
}

// ------------------------------------------------------------------ signatures

export interface SignatureAddOptions extends Conn {
  type?: string;
  phase?: string;
  errorCode?: string;
  field?: string[];
  pattern?: string;
  cause?: string;
  action?: string;
  mttr?: string;
  outcome?: string;
  confidence?: string;
}

export async function runSignaturesAdd(o: SignatureAddOptions, io: Io): Promise<number> {
  let pattern: Record<string, unknown>;
  if (o.pattern !== undefined) pattern = parseJson(o.pattern, 'pattern') as Record<string, unknown>;
  else {
    pattern = {};
    if (o.type) pattern.type = o.type;
    if (o.phase) pattern.phase = o.phase;
    if (o.errorCode) pattern.error_code = o.errorCode;
    if (o.field?.length) {
      const fields: Record<string, string> = {};
      for (const f of o.field) {
        const i = f.indexOf('=');
        if (i <= 0) throw new OkitError('INVALID_INPUT', `--field: must be PATH=REGEX, got ${JSON.stringify(f)}`, { field: 'field' });
        fields[f.slice(0, i)] = f.slice(i + 1);
      }
      pattern.payload = fields;
    }
  }
  let outcome: Record<string, unknown>;
  if (o.outcome !== undefined) outcome = parseJson(o.outcome, 'outcome') as Record<string, unknown>;
  else {
    if (!o.cause) throw new OkitError('INVALID_INPUT', '--cause (the likely cause) or --outcome JSON is required', { field: 'cause' });
    outcome = { likely_cause: o.cause };
    if (o.action) outcome.suggested_action = o.action;
    if (o.mttr !== undefined) outcome.mttr_p50_seconds = numberArg(o.mttr, 'mttr', 0, 31_536_000);
  }
  const { signature, created } = await clientFrom(o, io).addSignature({ pattern, outcome, confidence: numberArg(o.confidence, 'confidence', 0, 1, true) });
  if (o.json) jsonLine(io, { signature, created });
  else printSignatures(io, [signature]);
  return EXIT.OK;
}

function printSignatures(io: Io, sigs: Awaited<ReturnType<OkitClient['listSignatures']>>): void {
  table(
    io,
    ['ID', 'PATTERN', 'LIKELY_CAUSE', 'SUGGESTED_ACTION', 'MTTR_S', 'CONFIDENCE', 'SEEN', 'LAST_SEEN', 'RETIRED'],
    // Learned values (issue 14) where there are any: the MTTR measured, else the operator's.
    sigs.map((s) => [
      s.id,
      JSON.stringify(s.pattern),
      s.outcome.likely_cause ?? (s.learned_key ? '(learned)' : null),
      s.outcome.suggested_action,
      s.mttr_p50_seconds ?? s.outcome.mttr_p50_seconds,
      s.confidence,
      s.sample_count,
      s.last_seen,
      s.retired_at ? `${s.retired_at} by ${s.retired_by}` : null,
    ]),
  );
}

export async function runSignaturesList(o: Conn & { all?: boolean }, io: Io): Promise<number> {
  const sigs = await clientFrom(o, io).listSignatures({ includeRetired: !!o.all });
  if (o.json) for (const s of sigs) jsonLine(io, s);
  else printSignatures(io, sigs);
  return EXIT.OK;
}

export async function runSignaturesRetire(id: string, o: Conn, io: Io): Promise<number> {
  v.uuid(id, 'signature_id');
  const s = await clientFrom(o, io).retireSignature(id);
  if (o.json) jsonLine(io, s);
  else io.out(terminalLine(`retired ${s.id} at ${s.retired_at} by ${s.retired_by}`));
  return EXIT.OK;
}

// ------------------------------------------------------------------ jobs

export interface JobListOptions extends Conn {
  state?: string;
  kind?: string;
  type?: string;
  run?: string;
  source?: string;
  errorCode?: string;
  createdAfter?: string;
  createdBefore?: string;
  updatedAfter?: string;
  updatedBefore?: string;
  sort?: string;
  order?: string;
  limit?: string;
  cursor?: string;
  all?: boolean;
}

function filtersOf(o: JobListOptions): ListFilters {
  return {
    state: o.state,
    kind: o.kind,
    type: o.type,
    run_id: o.run,
    source_id: o.source,
    error_code: o.errorCode,
    created_after: o.createdAfter,
    created_before: o.createdBefore,
    updated_after: o.updatedAfter,
    updated_before: o.updatedBefore,
    sort: o.sort as ListFilters['sort'],
    order: o.order as ListFilters['order'],
    limit: o.limit === undefined ? undefined : v.decimalArg(o.limit, 'limit', 1, 500),
    cursor: o.cursor,
  };
}

/** id, type, state, signal summary, age; a dead letter (or failed job) also its last error, attempts and matched signature. */
export async function runJobList(o: JobListOptions, io: Io, runId?: string): Promise<number> {
  const client = clientFrom(o, io);
  let f = filtersOf(o);
  const rows = [];
  let totals: Record<string, number> | null = null;
  for (let pages = 0; ; pages++) {
    const page = runId ? await client.runJobs(runId, f) : await client.listJobs(f);
    totals ??= page.totals;
    rows.push(...page.jobs);
    if (!o.all || !page.next_cursor || pages >= 1000) {
      if (o.json) {
        for (const j of rows) jsonLine(io, j);
        jsonLine(io, { totals, next_cursor: o.all ? null : page.next_cursor });
        return EXIT.OK;
      }
      const review = rows.some((j) => j.state === 'dead_letter' || j.state === 'failed');
      const now = Date.now();
      table(
        io,
        review ? ['ID', 'TYPE', 'STATE', 'SIGNAL', 'AGE', 'ATTEMPTS', 'LAST_ERROR', 'SIGNATURE'] : ['ID', 'TYPE', 'STATE', 'SIGNAL', 'AGE'],
        rows.map((j) => {
          const base = [j.id, j.type, j.state, j.signal ? signalLine(j.signal) : null, age(j.created_at, now)];
          if (!review) return base;
          return [
            ...base,
            `${j.attempt}/${j.max_attempts}`,
            j.last_error ? `${j.last_error.code}: ${j.last_error.message}` : null,
            j.signature ? `${String(j.signature.likely_cause)} (${String(j.signature.id)})` : null,
          ];
        }),
      );
      io.out(`totals: ${Object.entries(totals).filter(([, n]) => n > 0).map(([s, n]) => `${s}=${n}`).join(' ') || 'none'}`);
      if (!o.all && page.next_cursor) io.out(terminalLine(`more: --cursor ${page.next_cursor}`));
      return EXIT.OK;
    }
    f = { ...f, cursor: page.next_cursor };
  }
}

export async function runJobGet(id: string, o: Conn, io: Io): Promise<number> {
  v.uuid(id, 'job_id');
  const client = clientFrom(o, io);
  const job = await client.getJob(id);
  const fs = await client.firstSignal(id);
  const signal = fs.status === 200 ? fs.signal : null;
  if (o.json) {
    jsonLine(io, { job, signal });
    return EXIT.OK;
  }
  const rows: Array<[string, unknown]> = [
    ['id', job.id], ['type', job.type], ['state', job.state], ['signal', signal ? signalLine(signal) : null], ['priority', job.priority],
    ['attempt', `${job.attempt}/${job.max_attempts}`], ['run_id', job.run_id], ['source_id', job.source_id], ['idempotency_key', job.idempotency_key],
    ['not_before', job.not_before], ['created_at', job.created_at], ['updated_at', job.updated_at], ['lease_owner', job.lease_owner],
    ['payload', JSON.stringify(job.payload)],
  ];
  for (const [k, x] of rows) io.out(terminalLine(`${k.padEnd(16)} ${x === null || x === undefined ? '-' : String(x)}`));
  return EXIT.OK;
}

export interface JobEnqueueOptions extends Conn {
  type?: string;
  payload?: string;
  file?: string;
  priority?: string;
  maxAttempts?: string;
  idempotencyKey?: string;
  source?: string;
  run?: string;
  notBefore?: string;
}

/** Prints each job's id and whether it was created; --file is one transaction, all or nothing. */
export async function runJobEnqueue(o: JobEnqueueOptions, io: Io): Promise<number> {
  const client = clientFrom(o, io);
  let out: Array<{ job: { id: string; type: string; state: string }; created: boolean }>;
  if (o.file !== undefined) {
    if (o.type !== undefined || o.payload !== undefined) throw new OkitError('INVALID_INPUT', '--file takes the jobs from the file: no --type or --payload with it', { field: 'file' });
    const { jobs, lines } = await readJobsFile(o.file);
    try {
      out = await client.enqueueMany(jobs);
    } catch (e) {
      throw asLineError(e, lines);
    }
  } else {
    if (!o.type) throw new OkitError('INVALID_INPUT', '--type (or --file) is required', { field: 'type' });
    out = [
      await client.enqueue({
        type: o.type,
        payload: o.payload === undefined ? undefined : parseJson(o.payload, 'payload'),
        priority: o.priority === undefined ? undefined : numberArg(o.priority, 'priority', -1000, 1000),
        maxAttempts: o.maxAttempts === undefined ? undefined : v.decimalArg(o.maxAttempts, 'max_attempts', 1, 100),
        idempotencyKey: o.idempotencyKey,
        sourceId: o.source,
        runId: o.run,
        notBefore: o.notBefore,
      }),
    ];
  }
  if (o.json) for (const x of out) jsonLine(io, { id: x.job.id, type: x.job.type, state: x.job.state, created: x.created });
  else table(io, ['ID', 'TYPE', 'CREATED'], out.map((x) => [x.job.id, x.job.type, x.created ? 'yes' : 'no (idempotency key seen)']));
  return EXIT.OK;
}

export async function runJobRetry(id: string | undefined, o: Conn & { allDeadLetters?: boolean; type?: string; limit?: string; reason?: string }, io: Io): Promise<number> {
  const client = clientFrom(o, io);
  if (o.allDeadLetters) {
    if (id !== undefined) throw new OkitError('INVALID_INPUT', 'give a job id or --all-dead-letters --type T, not both', { field: 'job_id' });
    if (!o.type) throw new OkitError('INVALID_INPUT', '--all-dead-letters needs --type T', { field: 'type' });
    const r = await client.retryDeadLetters({ type: o.type, limit: o.limit === undefined ? undefined : v.decimalArg(o.limit, 'limit', 1, 1000), reason: o.reason });
    if (o.json) {
      for (const j of r.jobs) jsonLine(io, { id: j.job.id, state: j.job.state, signal: j.signal });
      jsonLine(io, { retried: r.jobs.length, more: r.more });
    } else {
      table(io, ['ID', 'TYPE', 'SIGNAL'], r.jobs.map((j) => [j.job.id, j.job.type, signalLine(j.signal)]));
      io.out(`retried ${r.jobs.length} dead-lettered ${o.type} job(s)${r.more ? '; more remain (run again)' : ''}`);
    }
    return EXIT.OK;
  }
  if (id === undefined) throw new OkitError('INVALID_INPUT', 'a job id (or --all-dead-letters --type T) is required', { field: 'job_id' });
  v.uuid(id, 'job_id');
  return printReply(io, o, await client.retry(id, { reason: o.reason }));
}

function printReply(io: Io, o: Conn, r: Awaited<ReturnType<OkitClient['retry']>>): number {
  if (o.json) jsonLine(io, { job_id: r.jobId, etag: r.etag, signal: r.signal });
  else io.out(terminalLine(`${r.jobId} ${signalLine(r.signal)}`));
  return EXIT.OK;
}

export async function runJobPrioritize(id: string, priority: string, o: Conn & { reason?: string }, io: Io): Promise<number> {
  v.uuid(id, 'job_id');
  return printReply(io, o, await clientFrom(o, io).prioritize(id, { priority: numberArg(priority, 'priority', -1000, 1000)!, reason: o.reason }));
}

export async function runJobCancel(id: string, o: Conn & { reason?: string }, io: Io): Promise<number> {
  v.uuid(id, 'job_id');
  return printReply(io, o, await clientFrom(o, io).cancel(id, { reason: o.reason }));
}

// ------------------------------------------------------------------ queues

export async function runQueuePause(type: string, o: Conn & { reason?: string }, io: Io, resume = false): Promise<number> {
  v.jobType(type);
  const client = clientFrom(o, io);
  const r = resume ? await client.resumeQueue(type, { reason: o.reason }) : await client.pauseQueue(type, { reason: o.reason });
  if (o.json) jsonLine(io, r);
  else
    io.out(
      terminalLine(
        `${r.type}: ${resume ? (r.changed ? 'resumed' : 'was not paused') : r.changed ? 'paused' : 'already paused'}; ${r.jobs} waiting job(s) ${resume ? 'resumed' : 'marked paused'}`,
      ),
    );
  return EXIT.OK;
}

export async function runQueueList(o: Conn, io: Io): Promise<number> {
  const qs = await clientFrom(o, io).listQueues();
  if (o.json) for (const q of qs) jsonLine(io, q);
  else
    table(
      io,
      ['TYPE', 'QUEUED', 'THROTTLED', 'RUNNING', 'PAUSED'],
      qs.map((q) => [q.type, q.counts.queued, q.counts.throttled, q.counts.running, q.paused ? `by ${q.paused.actor} at ${q.paused.paused_at}${q.paused.reason ? `: ${q.paused.reason}` : ''}` : 'no']),
    );
  return EXIT.OK;
}

// ------------------------------------------------------------------ runs

export async function runRunCreate(o: Conn & { source?: string; id?: string }, io: Io): Promise<number> {
  const { run, created } = await clientFrom(o, io).createRun({ sourceId: o.source, id: o.id });
  if (o.json) jsonLine(io, { run, created });
  else table(io, ['ID', 'SOURCE', 'CREATED'], [[run.id, run.source_id, created ? 'yes' : 'no (exists)']]);
  return EXIT.OK;
}

const TERMINAL_RUN = new Set(['succeeded', 'failed', 'canceled']);

/**
 * One line per run-signal change (`[started] 7 of 10 jobs done, 1 failed`); with --watch until
 * every job is finished, woken by the 2-second long-poll like `okit job status`. Exit 0 when the
 * run succeeded (or is not finished without --watch), 1 when it failed or was canceled. Reports
 * its time to first signal (as cli or ci) for the run's first job, as `job status` does.
 */
export async function runRunStatus(runId: string, o: Conn & { watch?: boolean; verbose?: boolean }, io: Io): Promise<number> {
  const startedAt = io.startedAt ?? performance.now();
  v.uuid(runId, 'run_id');
  const surface = detectSurface(io.env);
  const client = clientFrom(o, io, surface);
  const reporter = new TtfsReporter(client, { surface, startedAt, verbose: !!o.verbose, err: io.err });
  let etag: string | undefined;
  let last: Awaited<ReturnType<OkitClient['getRun']>> = null;
  let failures = 0;
  try {
    for (;;) {
      let s;
      try {
        s = await client.getRun(runId, etag && o.watch ? { etag, wait: 2 } : {});
        failures = 0;
      } catch (e) {
        if (!o.watch || !isRetryable(e)) throw e;
        if (failures++ === 0) io.err(terminalLine(`okit: ${(e as Error).message}; retrying`));
        await new Promise((r) => setTimeout(r, Math.min(2000, 200 * 2 ** Math.min(failures, 4))));
        continue;
      }
      if (s && s.etag !== etag) {
        etag = s.etag;
        last = s;
        if (o.json) jsonLine(io, { run_id: runId, etag: s.etag, items: s.items, counts: s.counts, signal: s.signal });
        else io.out(terminalLine(signalLine({ kind: s.signal.kind, phase: 'unknown', summary: s.signal.summary })));
        if (s.first_job_id) reporter.firstSignal(s.first_job_id, { status: 200, etag: s.etag, source: 'snapshot', signal: { ...s.signal, phase: 'unknown', last_known_outcome: null, next_actions: null, diagnostics: {} }, serverMs: null, cacheHit: null }, runId);
      }
      if (!o.watch || (last && TERMINAL_RUN.has(last.signal.kind))) break;
    }
  } catch (e) {
    if (last?.first_job_id) reporter.error(last.first_job_id, e);
    throw e;
  } finally {
    await reporter.flush();
  }
  return last && (last.signal.kind === 'failed' || last.signal.kind === 'canceled') ? EXIT.CHECK_FAILED : EXIT.OK;
}

// ------------------------------------------------------------------ registration

const listOptions = (c: Command) =>
  conn(c)
    .option('--state <states>', 'queued, throttled, running, succeeded, failed, dead_letter, canceled (comma-separated)')
    .option('--kind <kinds>', 'signal kinds (comma-separated): queued, started, phase, blocked, failed, succeeded, canceled')
    .option('--type <type>', 'job type')
    .option('--source <id>', 'source id')
    .option('--error-code <code>', 'last error code')
    .option('--created-after <ts>', 'RFC 3339, inclusive')
    .option('--created-before <ts>', 'RFC 3339, exclusive')
    .option('--updated-after <ts>', 'RFC 3339, inclusive')
    .option('--updated-before <ts>', 'RFC 3339, exclusive')
    .option('--sort <by>', 'created (default) or updated')
    .option('--order <dir>', 'desc (default) or asc')
    .option('--limit <n>', 'jobs per page, 1..500 (default 50)')
    .option('--cursor <c>', 'the next page (printed after a full page)')
    .option('--all', 'every page');

/** `okit job list|get|enqueue|retry|prioritize|cancel` on the existing `okit job` command. */
export function registerJobCommands(job: Command, io: Io): void {
  listOptions(job.command('list').description('list and search jobs: id, type, state, signal, age (dead letters also last error, attempts, signature); totals per state'))
    .option('--run <id>', 'run id')
    .action(action(io, (o: JobListOptions) => runJobList(o, io)));
  conn(job.command('get <jobId>').description('a job: its row, payload and current signal')).action(action(io, (id: string, o: Conn) => runJobGet(id, o, io)));
  conn(job.command('enqueue').description('enqueue a job (--type, --payload JSON) or a JSONL file of jobs (--file; one transaction: all or nothing)'))
    .option('--type <type>', 'job type')
    .option('--payload <json>', 'payload JSON')
    .option('--file <path>', 'jobs.jsonl: one job object per line (type, payload, priority, max_attempts, idempotency_key, not_before, source_id, run_id), at most 1,000')
    .option('--priority <n>', '-1000..1000')
    .option('--max-attempts <n>', '1..100')
    .option('--idempotency-key <key>', 'the same key again answers the same job')
    .option('--source <id>', 'source id')
    .option('--run <id>', 'run id')
    .option('--not-before <ts>', 'RFC 3339')
    .action(action(io, (o: JobEnqueueOptions) => runJobEnqueue(o, io)));
  conn(job.command('retry [jobId]').description('failed, dead_letter or canceled → queued, attempts given back (admin)'))
    .option('--all-dead-letters', 'retry the dead letters of --type (bounded by --limit)')
    .option('--type <type>', 'with --all-dead-letters')
    .option('--limit <n>', 'with --all-dead-letters: at most this many, 1..1000 (default 100)')
    .option('--reason <text>', 'recorded in the ledger')
    .action(action(io, (id: string | undefined, o: Conn & { allDeadLetters?: boolean; type?: string; limit?: string; reason?: string }) => runJobRetry(id, o, io)));
  conn(job.command('prioritize <jobId> <priority>').description('a queued or throttled job’s new priority, -1000..1000 (admin)'))
    .option('--reason <text>', 'recorded in the ledger')
    .action(action(io, (id: string, p: string, o: Conn & { reason?: string }) => runJobPrioritize(id, p, o, io)));
  conn(job.command('cancel <jobId>').description('cancel a job that has not finished (admin)'))
    .option('--reason <text>', 'recorded in the ledger')
    .action(action(io, (id: string, o: Conn & { reason?: string }) => runJobCancel(id, o, io)));
}

export function register(program: Command, io: Io): void {
  const sources = program.command('sources').description('sources jobs fetch from (a name and a host)');
  conn(sources.command('add').description('add a source (admin)'))
    .requiredOption('--name <name>', 'unique per tenant')
    .requiredOption('--host <host>', 'host[:port]; its token bucket is `okit throttle set HOST`')
    .action(action(io, (o: Conn & { name: string; host: string }) => runSourcesAdd(o, io)));
  conn(sources.command('list').description('the tenant’s sources')).action(action(io, (o: Conn) => runSourcesList(o, io)));

  const throttle = program.command('throttle').description('token buckets per source host');
  conn(throttle.command('set <host>').description('configure a host’s bucket (admin): a full bucket to start'))
    .requiredOption('--capacity <c>', 'tokens, 1..999999')
    .requiredOption('--refill <r>', 'tokens per second')
    .action(action(io, (h: string, o: Conn & { capacity: string; refill: string }) => runThrottleSet(h, o, io)));
  conn(throttle.command('list').description('every bucket with its state now')).action(action(io, (o: Conn) => runThrottleList(o, io)));

  const sig = program.command('signatures').description('failure signatures: known failure patterns and their likely cause');
  conn(sig.command('add').description('add a signature (admin); the same pattern again updates it'))
    .option('--type <type>', 'pattern: job type')
    .option('--phase <phase>', 'pattern: phase of the last progress report')
    .option('--error-code <code>', 'pattern: error code')
    .option('--field <path=regex...>', 'pattern: a payload field (dotted path) and an RE2 regex its value must match (repeatable)')
    .option('--pattern <json>', 'the whole pattern as JSON instead')
    .option('--cause <text>', 'outcome: likely cause')
    .option('--action <text>', 'outcome: suggested action')
    .option('--mttr <seconds>', 'outcome: median time to repair')
    .option('--outcome <json>', 'the whole outcome as JSON instead')
    .option('--confidence <c>', '0..1 (default 0.5): the most confident match wins')
    .action(action(io, (o: SignatureAddOptions) => runSignaturesAdd(o, io)));
  conn(sig.command('list').description('the tenant’s signatures, most confident first')).option('--all', 'retired ones too').action(action(io, (o: Conn & { all?: boolean }) => runSignaturesList(o, io)));
  conn(sig.command('retire <id>').description('retire a signature (admin): it matches nothing from now on')).action(action(io, (id: string, o: Conn) => runSignaturesRetire(id, o, io)));

  const queue = program.command('queue').description('pause and resume job types');
  conn(queue.command('pause <type>').description('pause a job type (admin): claims skip it, its waiting jobs say who paused it'))
    .option('--reason <text>', 'shown in the waiting jobs’ signals')
    .action(action(io, (t: string, o: Conn & { reason?: string }) => runQueuePause(t, o, io)));
  conn(queue.command('resume <type>').description('resume a paused job type (admin)'))
    .option('--reason <text>', 'recorded in the ledger')
    .action(action(io, (t: string, o: Conn & { reason?: string }) => runQueuePause(t, o, io, true)));
  conn(queue.command('list').description('job types with waiting or running jobs, and paused ones')).action(action(io, (o: Conn) => runQueueList(o, io)));

  const run = program.command('run').description('runs: groups of jobs');
  conn(run.command('create').description('create a run (worker); enqueue its jobs with --run'))
    .option('--source <id>', 'the run’s source')
    .option('--id <uuid>', 'choose its id')
    .action(action(io, (o: Conn & { source?: string; id?: string }) => runRunCreate(o, io)));
  conn(run.command('status <runId>').description("print the run's signal; with --watch follow it to the end (exit 0 succeeded, 1 failed or canceled)"))
    .option('--watch', 'follow with the 2-second long-poll until every job is finished')
    .option('--verbose', 'also print the time to first signal (on stderr)')
    .action(action(io, (id: string, o: Conn & { watch?: boolean; verbose?: boolean }) => runRunStatus(id, o, io)));
  listOptions(run.command('jobs <runId>').description("the run's jobs, as `okit job list`")).action(action(io, (id: string, o: JobListOptions) => runJobList(o, io, id)));
}

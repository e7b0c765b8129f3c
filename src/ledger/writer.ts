/**
 * The batching writer: the only code that takes a tenant's ledger head lock.
 *
 * Group commit. Concurrent changes of one tenant (units: a transition, an enqueue of one or
 * many jobs, a claim of up to N jobs, a throttle event) are written in one transaction, a batch:
 *
 *   BEGIN + the units' reads, batched, before the lock (batch.ts; one message per round) →
 *   okit.write_batch: takes the positions and writes every history row, throttle event, job
 *   row, snapshot and bucket of the batch, with its one NOTIFY → COMMIT
 *
 * so the head is locked for a write and a COMMIT per batch instead of per change, and a batch's
 * positions are contiguous, in the order its rows are written. Several processes on one
 * database interleave whole batches: the head row stays the one serialisation point.
 *
 * Scheduling, per tenant: a unit joins the tenant's open batch. A batch starts at once (on the
 * next event-loop turn, which gathers the units submitted in this one) while fewer than
 * `batchesInFlight` batches of the tenant are running: an idle tenant adds no latency. Otherwise
 * it collects units until a batch finishes, until it holds `batchMaxSize` rows' worth of units,
 * or for at most `batchMaxWaitMs`, whichever comes first. Two batches in flight let one do its
 * reads while the other holds the head.
 *
 * Failures. A unit's own refusal (bad state, lease not held, not found: an OkitError raised
 * before it recorded anything) fails only that unit's caller. Any other error, a database
 * error in any statement above, rolls the batch back and its units are retried one by one, each
 * in a batch of its own, so one bad unit never fails its neighbours; a lone unit's database
 * error reaches its caller as a typed error (DB_UNAVAILABLE, WRITE_REFUSED). If the connection
 * is lost during COMMIT, the writer looks for the batch's first row in the ledger (position and
 * hash) before it decides between "committed" and "retry": nothing is written twice or half.
 * (Write and COMMIT go as two messages: measured here, one message holding both took longer.)
 */
import { createHash, randomBytes } from 'node:crypto';
import { isOkitError, OkitError } from '../errors.js';
import { isDbTimeout, isDbUnavailable } from '../db/errors.js';
import type { Pool, PoolClient } from '../db/pool.js';
import { Batch, Deferred, type ClaimHints, type UnitView } from './batch.js';
import { KnownJobs } from './known.js';
import type { CommitInfo } from './ledger.js';

export const NOTIFY_CHANNEL = 'okit_signal';
/** NOTIFY payloads must stay under 8000 bytes; past this many, listeners get "<tenant> *". */
export const MAX_NOTIFY_BYTES = 7000;

/** A unit of work for one batch. `run` reads and records; the function it returns gives the caller's answer after COMMIT. */
export interface Unit<R> {
  /** Rows it may write, at most: bounds the batch size. */
  weight: number;
  run(b: UnitView): Promise<() => R>;
}

export interface BatchStats {
  tenant: string;
  /** Units in the batch (callers served together). */
  units: number;
  /** Ledger positions taken (history rows + throttle events). */
  positions: number;
  /** From BEGIN to the end of COMMIT (or ROLLBACK), ms. */
  txMs: number;
  /** From the head update to the end of COMMIT, ms (0 when nothing took a position). */
  lockedMs: number;
  /** Messages (round trips) the transaction sent, BEGIN and COMMIT included. */
  messages: number;
  /** true: rolled back; its units are retried one by one (each then reports a batch of its own). */
  failed: boolean;
  /** true for a batch that is a one-by-one retry. */
  retry: boolean;
}

export interface WriterOptions {
  /** Rows per batch, at most (a unit bigger than this runs alone). Default 100. */
  batchMaxSize?: number;
  /** How long an open batch waits for a free slot before it starts anyway, ms. Default 5. */
  batchMaxWaitMs?: number;
  /** Batches of one tenant running at once in this process. Default 2. */
  batchesInFlight?: number;
  /** Called after every batch transaction, for metrics (batch sizes, transaction and lock times). */
  onBatch?: (s: BatchStats) => void;
  /** Called after every committed batch with what it wrote (when wantsCommits() says anyone listens). */
  onCommit?: (info: CommitInfo) => void;
  wantsCommits?: () => boolean;
}

interface Member {
  unit: Unit<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface TenantQueue {
  tenant: string;
  open: Member[];
  weight: number;
  inFlight: number;
  scheduled: boolean;
  timer: NodeJS.Timeout | null;
}

/** Takes `n` positions: the head row is locked from here to COMMIT, so positions are in commit order. */
const TAKE_POSITIONS = `INSERT INTO okit.ledger_heads (tenant, pos) VALUES ($1, $2::int8)
  ON CONFLICT (tenant) DO UPDATE SET pos = okit.ledger_heads.pos + $2::int8 RETURNING pos`;

/** okit.write_batch (migration 010) writes every row of a batch; its arguments in order: tenant, guess, expected head, positions, Batch.knownParams(), Batch.writeParams() after the first. */
const WRITE_ARGS = [
  'text', 'boolean', 'int8', 'int8',
  'uuid[]', 'int4[]', 'text[]', 'text[]', 'int4[]', 'text[]', 'timestamptz[]', 'text[]', 'timestamptz[]',
  'int8[]', 'uuid[]', 'int4[]', 'timestamptz[]', 'text[]', 'text[]', 'text[]', 'jsonb[]', 'text[]', 'text[]',
  'int8[]', 'text[]', 'timestamptz[]', 'text[]', 'jsonb[]',
  'uuid[]', 'uuid[]', 'uuid[]', 'text[]', 'jsonb[]', 'text[]', 'text[]', 'int4[]', 'int4[]', 'int4[]', 'text[]', 'timestamptz[]', 'text[]',
  'timestamptz[]', 'timestamptz[]', 'timestamptz[]', 'int4[]', 'text[]',
  'uuid[]', 'int4[]', 'text[]', 'timestamptz[]', 'text[]', 'timestamptz[]', 'timestamptz[]', 'int4[]', 'text[]', 'text[]', 'int4[]',
  'uuid[]', 'uuid[]', 'text[]', 'text[]', 'text[]', 'int8[]', 'jsonb[]', 'jsonb[]', 'jsonb[]', 'text[]', 'int4[]', 'text[]', 'timestamptz[]', 'timestamptz[]', 'boolean[]',
  'text[]', 'numeric[]', 'numeric[]', 'numeric[]', 'numeric[]', 'timestamptz[]', 'timestamptz[]',
  'int8[]', 'text[]', 'timestamptz[]', 'text[]', 'jsonb[]',
  'text[]', 'text[]', 'text[]', 'timestamptz[]', 'text[]',
  'text[]', 'boolean[]',
  'text',
];
const WRITE_BATCH = `SELECT okit.write_batch(${WRITE_ARGS.map((t, i) => `$${i + 1}::${t}`).join(', ')}) AS status`;

/**
 * The write's statement. It answers 'ok'; or, having written nothing, 'stale' (a known job
 * changed since this process wrote it) or, with `guess`, 'moved' (the head is not at `expect`).
 */
function writeStmt(b: Batch, tenant: string, guess: boolean, expect: bigint, notify: string | null): { text: string; params: unknown[] } {
  const [, ...rows] = b.writeParams(notify);
  return { text: WRITE_BATCH, params: [tenant, guess, String(expect), b.positions, ...b.knownParams(), ...rows] };
}

type Outcome =
  | { kind: 'done' }
  | { kind: 'moved' }
  | { kind: 'stale' }
  | { kind: 'failed'; error: unknown }
  | { kind: 'deferred'; members: Member[] }
  | { kind: 'recheck'; members: Member[] };

/**
 * The batch's one NOTIFY payload: `<tenant>`, the ids of the jobs whose signal changed, then the
 * claim hints: `+<type>=<n>` (n jobs of the type claimable now) and `@<type>=<µs>` (the earliest
 * moment a job of the type becomes claimable later). Types never contain `=`, `+`, `@` or `*`,
 * ids are UUIDs. When it would not fit in MAX_NOTIFY_BYTES, the ids become `*` (recheck the
 * tenant's jobs), and if the hints alone do not fit either, they become `+*` (every claim
 * waiter of the tenant looks again).
 */
export function notifyPayload(tenant: string, ids: readonly string[], hints?: ClaimHints): string | null {
  const hintTokens: string[] = [];
  for (const [type, n] of hints?.ready ?? []) hintTokens.push(`+${type}=${n}`);
  for (const [type, at] of hints?.due ?? []) hintTokens.push(`@${type}=${at}`);
  if (ids.length === 0 && hintTokens.length === 0) return null;
  let hintText = hintTokens.length ? ' ' + hintTokens.join(' ') : '';
  if (Buffer.byteLength(tenant) + 2 + Buffer.byteLength(hintText) > MAX_NOTIFY_BYTES) hintText = ' +*';
  const head = ids.length ? `${tenant} ${ids.join(' ')}` : tenant;
  if (Buffer.byteLength(head) + Buffer.byteLength(hintText) <= MAX_NOTIFY_BYTES) return head + hintText;
  return `${tenant} *${hintText}`;
}

/** A lone unit's database error, as the caller sees it. */
export function typedDbError(e: unknown): unknown {
  if (isOkitError(e)) return e;
  if (isDbUnavailable(e)) return new OkitError('DB_UNAVAILABLE', 'the database is unavailable; retry shortly', { cause: messageOf(e) });
  const err = e as { code?: unknown; constraint?: unknown };
  // Data exceptions and integrity violations: Postgres refused what validation let through.
  if (typeof err.code === 'string' && /^2[23][0-9A-Z]{3}$/.test(err.code))
    return Object.assign(
      new OkitError('WRITE_REFUSED', `the database refused the change (${messageOf(e)}); nothing was written`, {
        sqlstate: err.code,
        ...(typeof err.constraint === 'string' ? { constraint: err.constraint } : {}),
      }),
      { cause: e },
    );
  return e;
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));
const isRetryable = (e: unknown) => typeof (e as { code?: unknown })?.code === 'string' && /^40(001|P01)$/.test((e as { code: string }).code);

/** Batches of a tenant that take the head lock first after a guess found the head moved. */
const LOCKING_AFTER_MOVE = 8;
/** Tenants whose head this process remembers, at most (beyond, it forgets and locks first again). */
const MAX_KNOWN_HEADS = 10_000;

/**
 * What this process knows of a tenant's head. Batches seal in some order; each guessing batch
 * expects the head where the previously sealed one leaves it, and waits (inside Postgres, on that
 * batch's transaction-level advisory lock, taken with its BEGIN) until that one has finished:
 * so a guess is wrong only if the previous batch failed or another process wrote in between.
 */
interface HeadState {
  /** The last position taken by this process's latest sealed batch, if known. */
  head: bigint | null;
  /** That batch's advisory lock key, while its transaction may be open. */
  sealedBy: number | null;
  /** Sequence for advisory lock keys. */
  seq: number;
  /** Batches still to take the lock first after a wrong guess. */
  lockingFor: number;
}

export class BatchWriter {
  private readonly queues = new Map<string, TenantQueue>();
  private readonly heads = new Map<string, HeadState>();
  /** Running jobs as this process's commits left them (src/ledger/known.ts). */
  readonly known = new KnownJobs();
  /** Each tenant's batches in flight: a job one of them holds is read, not taken from `known`, by the others. */
  private readonly inFlightBatches = new Map<string, Set<Batch>>();
  /** First half of this process's advisory lock keys: distinct per process and tenant. */
  private readonly keySalt = randomBytes(8).toString('hex');
  private readonly maxSize: number;
  private readonly maxWaitMs: number;
  private readonly inFlight: number;

  constructor(
    private readonly pool: Pool,
    private readonly queuePositionCap: number,
    private readonly opts: WriterOptions = {},
  ) {
    this.maxSize = opts.batchMaxSize ?? 100;
    this.maxWaitMs = opts.batchMaxWaitMs ?? 5;
    this.inFlight = opts.batchesInFlight ?? 2;
  }

  /** Runs the unit in the tenant's next batch; resolves once that batch has committed. */
  submit<R>(tenant: string, unit: Unit<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      let q = this.queues.get(tenant);
      if (!q) this.queues.set(tenant, (q = { tenant, open: [], weight: 0, inFlight: 0, scheduled: false, timer: null }));
      q.open.push({ unit: unit as Unit<unknown>, resolve: resolve as (v: unknown) => void, reject });
      q.weight += unit.weight;
      this.pump(q);
    });
  }

  private pump(q: TenantQueue): void {
    if (q.open.length === 0) return;
    if (q.inFlight < this.inFlight) {
      if (!q.scheduled) {
        q.scheduled = true;
        setImmediate(() => {
          q.scheduled = false;
          while (q.open.length > 0 && q.inFlight < this.inFlight) this.start(q);
          this.pump(q);
        });
      }
      return;
    }
    if (q.weight >= this.maxSize) this.start(q);
    else if (!q.timer)
      q.timer = setTimeout(() => {
        q.timer = null;
        if (q.open.length > 0) this.start(q);
      }, this.maxWaitMs);
  }

  /** Takes up to batchMaxSize rows' worth of units off the open batch and runs them. */
  private start(q: TenantQueue): void {
    const members: Member[] = [];
    let w = 0;
    while (q.open.length > 0 && (members.length === 0 || w + q.open[0]!.unit.weight <= this.maxSize)) {
      const m = q.open.shift()!;
      w += m.unit.weight;
      members.push(m);
    }
    q.weight -= w;
    if (q.open.length === 0 && q.timer) {
      clearTimeout(q.timer);
      q.timer = null;
    }
    q.inFlight++;
    void this.runBatch(q, members, false).finally(() => {
      q.inFlight--;
      if (q.open.length === 0 && q.inFlight === 0 && !q.timer) this.queues.delete(q.tenant);
      else this.pump(q);
    });
  }

  private async runBatch(q: TenantQueue, members: Member[], retry: boolean, useKnown = true): Promise<void> {
    let outcome = await this.transact(q.tenant, members, retry, true, useKnown);
    // A job it knew had changed: the same batch again, reading every job.
    if (outcome.kind === 'stale') outcome = await this.transact(q.tenant, members, retry, true, false);
    // The head had moved (another process wrote): the same batch again, taking the lock first.
    if (outcome.kind === 'moved') outcome = await this.transact(q.tenant, members, retry, false, false);
    if (outcome.kind === 'done') return;
    if (outcome.kind === 'deferred') {
      for (const m of outcome.members) m.reject(new Deferred());
      return;
    }
    // Refused on what this process knew of a job, unread: refused only if a read says so too.
    if (outcome.kind === 'recheck') return this.runBatch(q, outcome.members, retry, false);
    const error = outcome.kind === 'failed' ? outcome.error : new Error('the ledger head kept moving');
    // Rolled back (or not committed): one by one, so a bad unit fails alone. A lone unit gets
    // one more try when the failure was the database's (a lost connection, a deadlock), not its own.
    // A timeout is no unit's fault and trying again (one by one, or once more) would multiply a
    // frozen database's bounded wait: every caller gets DB_UNAVAILABLE now.
    if (isDbUnavailable(error) && isDbTimeout(error)) {
      for (const m of members) m.reject(typedDbError(error));
      return;
    }
    if (members.length > 1 || (!retry && (isRetryable(error) || isDbUnavailable(error)))) {
      for (const m of members) await this.runBatch(q, [m], true, false);
      return;
    }
    members[0]!.reject(typedDbError(error));
  }

  /**
   * One batch transaction. With `mayGuess`, a batch whose tenant this process has written
   * recently expects the head where its last batch left it: the write takes the positions
   * itself, with no round trip to take them first. The statement
   * checks the guess; if another process moved the head, nothing is written ('moved') and the
   * batch runs again the locking way, as the next few batches of the tenant do. With `useKnown`,
   * jobs this process wrote last are taken from `known` unread (the write checks them: 'stale').
   */
  private async transact(tenant: string, members: Member[], retry: boolean, mayGuess: boolean, useKnown: boolean): Promise<Outcome> {
    const t0 = performance.now();
    let locked = NaN;
    let positions = 0;
    let batch: Batch | undefined;
    const report = (failed: boolean) => {
      try {
        this.opts.onBatch?.({
          tenant,
          units: members.length,
          positions,
          txMs: performance.now() - t0,
          lockedMs: Number.isNaN(locked) ? 0 : performance.now() - locked,
          messages: batch?.messages ?? 0,
          failed,
          retry,
        });
      } catch {
        // an observer's bug must not fail a committed batch
      }
    };
    let c: PoolClient;
    try {
      c = await this.pool.connect();
    } catch (e) {
      report(true);
      return { kind: 'failed', error: e };
    }
    // pg-pool listens for errors only on idle clients: a held client whose server goes away
    // emits an error nobody handles. Listen while it is held; destroy it rather than reuse it.
    let broken: Error | undefined;
    const onError = (e: Error) => (broken = e);
    c.on('error', onError);
    const release = (e?: unknown) => {
      c.removeListener('error', onError);
      // A lost connection may not have emitted its error yet: never hand it back to the pool.
      c.release(broken ?? (e !== undefined && isDbUnavailable(e) ? (e as Error) : undefined));
    };

    const hs = this.headState(tenant);
    const key = (hs.seq = (hs.seq % 0x7fffffff) + 1);
    const lockKey = this.lockKey(tenant);
    let inFlight = this.inFlightBatches.get(tenant);
    if (!inFlight) this.inFlightBatches.set(tenant, (inFlight = new Set()));
    const takeKnown = (id: string) => {
      for (const other of inFlight!) if (other !== batch && other.hasJob(id)) return null;
      return this.known.take(tenant, id);
    };
    batch = new Batch(c, tenant, this.queuePositionCap, [{ text: 'SELECT pg_advisory_xact_lock($1::int4, $2::int4)', params: [lockKey, key] }], useKnown ? takeKnown : null);
    const b = batch;
    inFlight.add(b);
    let left = false;
    const finished = () => {
      if (hs.sealedBy === key) hs.sealedBy = null;
      if (!left) {
        left = true;
        inFlight!.delete(b);
        if (inFlight!.size === 0 && this.inFlightBatches.get(tenant) === inFlight) this.inFlightBatches.delete(tenant);
      }
    };
    // A batch that did not commit may have guessed wrong about the jobs it knew: forget them.
    const forgetKnown = () => this.known.forget(tenant, b.knownSlots.map((s) => s.job.id));
    const views = members.map(() => b.view());
    const done: Array<{ m: Member; finish: () => unknown }> = [];
    const refused: Array<{ m: Member; error: unknown }> = [];
    const recheck: Member[] = [];
    const deferred: Member[] = [];
    let committing = false;
    let sealed = false;
    try {
      const settled = await Promise.allSettled(members.map((m, i) => m.unit.run(views[i]!)));
      let failure: unknown;
      settled.forEach((st, i) => {
        const m = members[i]!;
        if (st.status === 'fulfilled') done.push({ m, finish: st.value });
        else if (st.reason instanceof Deferred) deferred.push(m);
        else if (isOkitError(st.reason) && views[i]!.changes === 0) (views[i]!.usedKnown ? recheck.push(m) : refused.push({ m, error: st.reason }));
        else failure ??= st.reason;
      });
      if (failure !== undefined) throw failure;
      positions = b.positions;
      const notify = () => notifyPayload(tenant, b.changedJobs, b.claimHints());
      if (positions === 0) {
        committing = true;
        // Nothing written; a unit may still have asked to wake claim waiters (wakeClaims).
        const hint = notify();
        await b.send(hint === null ? [] : [{ text: 'SELECT pg_notify($1, $2)', params: [NOTIFY_CHANNEL, hint] }], 'COMMIT');
      } else if (mayGuess && hs.head !== null && !b.preWrites && hs.lockingFor === 0) {
        const after = hs.sealedBy;
        const base = hs.head;
        b.seal(base + 1n);
        sealed = true;
        hs.head = base + BigInt(positions);
        hs.sealedBy = key;
        const wait = after === null ? [] : [{ text: 'SELECT pg_advisory_xact_lock($1::int4, $2::int4)', params: [lockKey, after] }];
        const write = writeStmt(b, tenant, true, base, notify());
        locked = performance.now();
        const res = await b.send([...wait, write]);
        const status = res[res.length - 1]![0]!.status;
        if (status !== 'ok') {
          hs.head = null;
          if (status === 'moved') hs.lockingFor = LOCKING_AFTER_MOVE;
          else forgetKnown();
          finished();
          await c.query('ROLLBACK');
          release();
          report(true);
          return { kind: status === 'moved' ? 'moved' : 'stale' };
        }
        committing = true;
        await b.send([], 'COMMIT');
      } else {
        if (hs.lockingFor > 0) hs.lockingFor--;
        locked = performance.now();
        const [head] = await b.send([{ text: TAKE_POSITIONS, params: [tenant, positions] }]);
        const end = BigInt(String(head![0]!.pos));
        b.seal(end - BigInt(positions) + 1n);
        sealed = true;
        hs.head = end;
        hs.sealedBy = key;
        const [res] = await b.send([writeStmt(b, tenant, false, end - BigInt(positions), notify())]);
        if (res![0]!.status !== 'ok') {
          hs.head = null;
          forgetKnown();
          finished();
          await c.query('ROLLBACK');
          release();
          report(true);
          return { kind: 'stale' };
        }
        committing = true;
        await b.send([], 'COMMIT');
      }
      finished();
      release();
    } catch (e) {
      if (sealed) hs.head = null;
      finished();
      forgetKnown();
      // A statement's error (a CHECK, a deadlock) rolls back; a lost connection may have lost the
      // answer to a COMMIT that went through: the batch's first row then says which.
      const ambiguous = committing && (broken !== undefined || isDbUnavailable(e));
      if (!broken && !isDbUnavailable(e)) await c.query('ROLLBACK').catch(() => undefined);
      release(e);
      if (!ambiguous) {
        report(true);
        return { kind: 'failed', error: e };
      }
      const committed = await this.wasCommitted(tenant, b).catch(() => undefined);
      if (committed === undefined) {
        report(true);
        const err = new OkitError('DB_UNAVAILABLE', 'the database connection was lost while committing; whether the change was written is unknown', {
          cause: messageOf(e),
        });
        for (const m of members) m.reject(err);
        return { kind: 'done' };
      }
      if (!committed) {
        report(true);
        return { kind: 'failed', error: e };
      }
    }
    report(false);
    this.known.remember(tenant, b.changedSlots);
    if (this.opts.wantsCommits?.()) {
      try {
        this.opts.onCommit?.({ tenant, batchSize: members.length, ms: performance.now() - t0, ...b.committed() });
      } catch {
        // an observer's bug must not fail a committed batch
      }
    }
    for (const { m, finish } of done) {
      try {
        m.resolve(finish());
      } catch (e) {
        m.reject(e);
      }
    }
    for (const { m, error } of refused) m.reject(error);
    if (recheck.length > 0) {
      this.known.forget(tenant, b.knownSlots.filter((s) => s.rows.length === 0).map((s) => s.job.id));
      if (deferred.length > 0) for (const m of deferred) m.reject(new Deferred());
      return { kind: 'recheck', members: recheck };
    }
    return deferred.length > 0 ? { kind: 'deferred', members: deferred } : { kind: 'done' };
  }

  private headState(tenant: string): HeadState {
    let hs = this.heads.get(tenant);
    if (!hs) {
      if (this.heads.size >= MAX_KNOWN_HEADS) for (const [t, h] of this.heads) if (h.sealedBy === null) this.heads.delete(t);
      this.heads.set(tenant, (hs = { head: null, sealedBy: null, seq: 0, lockingFor: 0 }));
    }
    return hs;
  }

  private lockKey(tenant: string): number {
    return createHash('sha256').update(`${this.keySalt}\n${tenant}`).digest().readInt32BE(0);
  }

  private async wasCommitted(tenant: string, batch: Batch): Promise<boolean> {
    const m = batch.marker;
    if (!m || m.pos === undefined) return false;
    const { rows } =
      m.table === 'job_history'
        ? await this.pool.query('SELECT 1 FROM okit.job_history WHERE tenant = $1 AND pos = $2 AND hash = $3', [tenant, m.pos, m.hash])
        : m.table === 'queue_events'
          ? await this.pool.query('SELECT 1 FROM okit.queue_events WHERE tenant = $1 AND pos = $2 AND type = $3 AND event = $4 AND at = $5 AND data = $6::jsonb', [
              tenant, m.pos, m.host, m.event, m.at, m.data,
            ])
          : await this.pool.query('SELECT 1 FROM okit.throttle_events WHERE tenant = $1 AND pos = $2 AND host = $3 AND event = $4 AND at = $5 AND data = $6::jsonb', [
              tenant, m.pos, m.host, m.event, m.at, m.data,
            ]);
    return rows.length > 0;
  }
}

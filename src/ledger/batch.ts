/**
 * One batch transaction's working state, seen by its units (the job operations of
 * src/ledger/jobs.ts and src/ledger/sources.ts) and sealed by the writer (src/ledger/writer.ts).
 *
 * Units run concurrently inside the batch. They read through the loaders below, which gather
 * every read the units ask for in one event-loop turn into one query per kind (the jobs all
 * units touch are locked in one statement, their histories read in one more), so a batch's
 * reads cost a few round trips whatever its size; all of them happen before the tenant's head is
 * locked. Units record their changes in memory (`transition`, `enqueue`, `throttleEvent`,
 * `setBucket`): each check and the change it guards run in one synchronous step, so a unit sees
 * the changes of units recorded before it, exactly as if they had run one after another.
 * Positions, hashes and snapshots are computed at `seal()`, once the writer holds the head.
 */
import { OkitError } from '../errors.js';
import { inline } from '../db/literal.js';
import type { PoolClient } from '../db/pool.js';
import { canonicalize, type Json } from '../util/canonical.js';
import { formatMicros, parseMicros, type Micros } from '../util/time.js';
import { rowHash } from './chain.js';
import { project } from './projection.js';
import { HISTORY_COLUMNS, JOB_COLUMNS, toHistory, toJob, ts } from './rows.js';
import { isAllowed, type JobEvent, type JobState } from './states.js';
import { fromMicroUnits, toBucket, type Bucket } from './throttle.js';
import type { HistoryRow, Job, Snapshot } from './types.js';
import type { CommitInfo } from './ledger.js';

/** A job as this batch sees it: loaded and row-locked, or created by this batch. */
export interface Slot {
  job: Job;
  isNew: boolean;
  /** Canonical payload text, for a job this batch creates. */
  payloadText?: string;
  /** The job's source host, for claim candidates. */
  host: string | null;
  /** Committed rows, then (after seal) this batch's. */
  history: HistoryRow[];
  /** This batch's rows for the job, in order. */
  rows: PendingRow[];
  lastHash: string | null;
  /** The lease's fencing token (never in the public job row): set by a claim, cleared outside running. */
  leaseToken: string | null;
  /**
   * Set when the slot came from the writer's known jobs (this process's own last write of the
   * job) instead of a read: the job row as it was then. The write checks, and locks, that the row
   * still is so; if not, the batch is run again with reads.
   */
  knownAs?: KnownRow;
}

/** The job-row columns a known slot is checked against before the write (okit.write_batch's k_* arguments). */
export interface KnownRow {
  n: number;
  hash: string;
  state: string;
  attempt: number;
  owner: string | null;
  lease: string | null;
  token: string | null;
  notBefore: string;
}

/** Where a batch may find a job it need not read: the writer's known jobs (null: none). */
export type KnownJobs = (id: string) => Slot | null;

interface PendingRow {
  slot: Slot;
  event: JobEvent;
  from: JobState | null;
  to: JobState;
  data: { [k: string]: Json };
  at: string;
  n: number;
  row?: HistoryRow;
  /** The job's history length up to and including this row, after seal. */
  upto?: number;
  /** The job row just after this change (its last_hash is this row's hash, known at seal). */
  jobAfter: Job;
}

interface PendingEvent {
  /** throttle_events (by host) or queue_events (by job type, in `host`). */
  table: 'throttle_events' | 'queue_events';
  host: string;
  event: string;
  at: string;
  data: string;
  pos?: string;
}

type Entry = { row: PendingRow; event?: undefined } | { event: PendingEvent; row?: undefined };

/** A recorded transition; its row and snapshot exist once the batch is sealed. */
export class Change {
  constructor(private readonly p: PendingRow) {}
  get row(): HistoryRow {
    return this.p.row!;
  }
  get slot(): Slot {
    return this.p.slot;
  }
  /** The job row as this change left it. */
  get job(): Job {
    return { ...this.p.jobAfter, last_hash: this.p.row!.hash };
  }
  /** The job's snapshot just after this row. */
  snapshot(): Snapshot {
    return snapshotUpTo(this.p.slot, this.p.upto!);
  }
}

export interface LastOutcome {
  job_id: string;
  status: string;
  finished_at: string;
}

/** A paused job type: who paused it, why, when. */
export interface EtaRow {
  durationsUs: bigint[];
  workers: number;
}

export interface PauseRow {
  type: string;
  actor: string;
  reason: string | null;
  paused_at: string;
}

/** An enabled failure signature as the matcher holds it. */
export interface SignatureRow {
  id: string;
  pattern: { [k: string]: Json };
  outcome: { [k: string]: Json };
  /** What it learned so far (migration 015); a failure in this batch moves these in memory too. */
  learnedKey?: { [k: string]: Json } | null;
  sampleCount?: number;
  lastSeenUs?: bigint | null;
  mttrUs?: bigint[];
  /** A retired learned signature: it matches nothing, and its key is not learned again. */
  retired?: boolean;
}

export interface SourceRow {
  id: string;
  tenant: string;
  name: string;
  host: string;
  created_at: string;
}

/** Values for a bucket row that may not exist yet (inserted if absent, before it is locked). */
export interface BucketSeed {
  capacity: number;
  refillPerSec: number;
  now: Micros;
}

/** Claim hints of a batch (see Batch.claimHints): ready counts and earliest future due moment, per job type. */
export interface ClaimHints {
  ready: Map<string, number>;
  due: Map<string, Micros>;
}

/** Thrown by a unit that must run in a later batch (it collides with another unit of this one). */
export class Deferred extends Error {
  constructor() {
    super('deferred to the next batch');
  }
}

type Rows = Array<Record<string, unknown>>;

/** One statement of a read round. */
export interface Stmt {
  text: string;
  params: unknown[];
}

/** A loader's share of a read round: its statements, and what it makes of their results. */
interface Part {
  stmts: Stmt[];
  take(results: Rows[]): Promise<void>;
  fail(e: unknown): void;
}

interface Flushable {
  pending(): boolean;
  part(): Part;
}

/** Memoised keyed reads; every loader with pending keys sends its statements in the same message. */
class Loader<K, V> implements Flushable {
  private readonly memo = new Map<K, Promise<V>>();
  private queue: Array<{ k: K; resolve: (v: V) => void; reject: (e: unknown) => void }> = [];
  constructor(
    private readonly batch: Batch,
    private readonly plan: (keys: K[]) => { stmts: Stmt[]; read(results: Rows[]): Map<K, V> | Promise<Map<K, V>> },
    private readonly missing: V,
  ) {}
  load(k: K): Promise<V> {
    let p = this.memo.get(k);
    if (!p) {
      p = new Promise<V>((resolve, reject) => this.queue.push({ k, resolve, reject }));
      this.memo.set(k, p);
      this.batch.schedule();
    }
    return p;
  }
  pending(): boolean {
    return this.queue.length > 0;
  }
  part(): Part {
    const q = this.queue;
    this.queue = [];
    const plan = this.plan(q.map((x) => x.k));
    return {
      stmts: plan.stmts,
      take: async (results) => {
        const got = await plan.read(results);
        for (const x of q) x.resolve(got.has(x.k) ? got.get(x.k)! : this.missing);
      },
      fail: (e) => {
        for (const x of q) x.reject(e);
      },
    };
  }
}

interface CandidateRequest {
  types: string[];
  now: Micros;
  want: number;
  resolve: (s: Slot[]) => void;
  reject: (e: unknown) => void;
}

const CLAIM_COLUMNS = JOB_COLUMNS.split(', ')
  .map((c) => 'j.' + c)
  .join(', ');

/**
 * Claim candidates, locked, each with its source host and history rows (h_*) in the same
 * statement. The locking scan reads jobs alone and, for one type, by equality: it then walks
 * jobs_claim_idx in claim order and stops at the limit (a join there, or `type = ANY(...)`, makes
 * Postgres sort every queued job of the types first: O(queue) per claim).
 */
const candidates = (oneType: boolean) => `WITH c AS MATERIALIZED (
    SELECT ${CLAIM_COLUMNS}, j.lease_token
    FROM okit.jobs j
    WHERE j.tenant = $1 AND ${oneType ? 'j.type = ($2::text[])[1]' : 'j.type = ANY($2::text[])'} AND j.state IN ('queued', 'throttled') AND j.not_before <= $3::timestamptz
      AND NOT (j.id = ANY($5::uuid[]))
    ORDER BY j.priority DESC, j.not_before, j.created_at, j.id
    LIMIT $4::int8 FOR UPDATE OF j SKIP LOCKED)
  SELECT c.*, s.host, h.pos AS h_pos, h.n AS h_n, h.at AS h_at, h.event AS h_event, h.from_state AS h_from, h.to_state AS h_to,
    h.data AS h_data, h.prev_hash AS h_prev, h.hash AS h_hash
  FROM c LEFT JOIN okit.sources s ON s.id = c.source_id LEFT JOIN okit.job_history h ON h.job_id = c.id
  ORDER BY c.priority DESC, c.not_before, c.created_at, c.id, h.n`;
const CANDIDATES_OF_TYPE = candidates(true);
const CANDIDATES_OF_TYPES = candidates(false);

export class Batch {
  readonly tenant: string;
  private readonly c: PoolClient;
  private readonly slots = new Map<string, Slot>();
  private readonly entries: Entry[] = [];
  private readonly changed: string[] = [];
  private readonly buckets = new Map<string, { bucket: Bucket; dirty: boolean }>();
  private readonly keys = new Map<string, unknown>();
  private readonly enqueuedOfType = new Map<string, number>();
  private scheduled = false;
  private begun = false;
  /** Rows written before the head lock (a new run, a new host's bucket): the batch must not commit without its own rows. */
  preWrites = false;
  /** Messages sent to the database (round trips), for the breakdown benchmark. */
  messages = 0;
  private candidateQueue: CandidateRequest[] = [];

  private readonly jobLoader: Loader<string, Slot | null>;
  private readonly skipLockedLoader: Loader<string, Slot | null>;
  private readonly bucketLoader: Loader<string, Bucket | null>;
  private readonly seededBucketLoader: Loader<string, Bucket | null>;
  private readonly bucketSeeds = new Map<string, BucketSeed>();
  private readonly sourceLoader: Loader<string, SourceRow | null>;
  private readonly runLoader: Loader<string, string | null>;
  private readonly runSeeds = new Map<string, { sourceId: string | null; now: Micros }>();
  private readonly aheadLoader: Loader<string, number>;
  private readonly lastLoader: Loader<string, LastOutcome | null>;
  private readonly etaLoader: Loader<string, EtaRow>;
  private readonly signatureLoader: Loader<string, SignatureRow[]>;
  private readonly pauseLoader: Loader<string, Map<string, PauseRow>>;
  /** This batch's pause changes (null: resumed), seen by its later units. */
  private readonly pauseChanges = new Map<string, PauseRow | null>();
  /** Pause state of each type a unit relied on, as read: write_batch checks it under the head lock. */
  private readonly assumed = new Map<string, boolean>();
  /** Statement order within a round: locks are taken jobs first, then buckets, then runs, in every batch. */
  private readonly flushOrder: Flushable[];

  constructor(
    c: PoolClient,
    tenant: string,
    private readonly queuePositionCap: number,
    /** Statements that open the transaction with its first message (after BEGIN). */
    private readonly opening: Stmt[] = [],
    /** Jobs this process wrote last and knows as they are: used instead of a read. */
    private readonly known: KnownJobs | null = null,
  ) {
    this.c = c;
    this.tenant = tenant;
    this.jobLoader = new Loader(this, (ids) => this.lockJobs(ids, 'FOR UPDATE'), null);
    this.skipLockedLoader = new Loader(this, (ids) => this.lockJobs(ids, 'FOR UPDATE SKIP LOCKED'), null);
    this.bucketLoader = new Loader(this, (hosts) => this.lockBuckets(hosts, false), null);
    this.seededBucketLoader = new Loader(this, (hosts) => this.lockBuckets(hosts, true), null);
    this.sourceLoader = new Loader(this, (ids) => this.readSources(ids), null);
    this.runLoader = new Loader(this, (ids) => this.upsertRuns(ids), null);
    this.aheadLoader = new Loader(this, (types) => this.countAhead(types), 0);
    this.lastLoader = new Loader(this, (types) => this.lastOutcomes(types), null);
    this.etaLoader = new Loader(this, (types) => this.etaRows(types), { durationsUs: [], workers: 0 });
    this.signatureLoader = new Loader(this, () => this.readSignatures(), []);
    this.pauseLoader = new Loader(this, () => this.readPauses(), new Map());
    this.flushOrder = [
      this.jobLoader,
      this.skipLockedLoader,
      { pending: () => this.candidateQueue.length > 0, part: () => this.candidatesPart() },
      this.seededBucketLoader,
      this.bucketLoader,
      this.sourceLoader,
      this.runLoader,
      this.aheadLoader,
      this.lastLoader,
      this.etaLoader,
      this.signatureLoader,
      this.pauseLoader,
    ];
  }

  /** A unit's window on the batch: the same reads and changes, counting the changes it records. */
  view(): UnitView {
    return new UnitView(this);
  }

  // ------------------------------------------------------------ I/O

  /**
   * Sends statements as one simple-query message: one round trip however many there are. The
   * batch's first message also opens its transaction; `tail` (e.g. COMMIT) ends the message.
   * Each statement still runs with its own snapshot, so a read after a lock sees what the lock waited for.
   */
  async send(stmts: Stmt[], tail?: string): Promise<Rows[]> {
    const first = !this.begun;
    this.begun = true;
    const head = first ? ['BEGIN', ...this.opening.map((st) => inline(st.text, st.params))] : [];
    const texts = [...head, ...stmts.map((st) => inline(st.text, st.params)), ...(tail ? [tail] : [])];
    this.messages++;
    const out = await this.c.query(texts.join(';\n'));
    const results = (Array.isArray(out) ? out : [out]) as Array<{ rows: Rows }>;
    return results.slice(head.length, head.length + stmts.length).map((r) => r.rows);
  }

  /** Whether the transaction is open (a batch with no reads opens it with its write). */
  get open(): boolean {
    return this.begun;
  }

  // ------------------------------------------------------------ reads (before the head lock)

  /** Reads asked for in this event-loop turn go in one message; reads asked for meanwhile in the next. */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.flushAll());
  }

  private async flushAll(): Promise<void> {
    const parts = this.flushOrder.filter((l) => l.pending()).map((l) => l.part());
    let results: Rows[] | undefined;
    try {
      results = await this.send(parts.flatMap((p) => p.stmts));
    } catch (e) {
      for (const p of parts) p.fail(e);
    }
    if (results) {
      let i = 0;
      for (const p of parts) {
        const mine = results.slice(i, (i += p.stmts.length));
        try {
          await p.take(mine);
        } catch (e) {
          p.fail(e);
        }
      }
    }
    this.scheduled = false;
    if (this.flushOrder.some((l) => l.pending())) this.schedule();
  }

  /**
   * The job, row-locked, with its history; null when the tenant has no such job. A job this
   * process wrote last comes from the writer's known jobs, unread and not yet locked: the write
   * locks it and checks that it is unchanged (see Slot.knownAs).
   */
  job(id: string): Promise<Slot | null> {
    const held = this.slots.get(id);
    if (held) return Promise.resolve(held);
    const known = this.known?.(id);
    if (known) {
      this.slots.set(id, known);
      return Promise.resolve(known);
    }
    return this.jobLoader.load(id);
  }

  /** Slots of this batch that came from the writer's known jobs. */
  get knownSlots(): Slot[] {
    return [...this.slots.values()].filter((s) => s.knownAs);
  }

  /** The slots this batch changed (after seal: as its commit leaves them). */
  get changedSlots(): Slot[] {
    return [...this.slots.values()].filter((s) => s.rows.length > 0);
  }

  /** okit.write_batch's k_* arguments: the known slots this batch changes, as they were. */
  knownParams(): unknown[] {
    const ks = this.knownSlots.filter((s) => s.rows.length > 0).map((s) => [s.job.id, s.knownAs!] as const);
    return [
      ks.map(([id]) => id),
      ks.map(([, k]) => k.n),
      ks.map(([, k]) => k.hash),
      ks.map(([, k]) => k.state),
      ks.map(([, k]) => k.attempt),
      ks.map(([, k]) => k.owner),
      ks.map(([, k]) => k.lease),
      ks.map(([, k]) => k.token),
      ks.map(([, k]) => k.notBefore),
    ];
  }

  /** Like job(), but null also when another transaction holds the row. */
  jobIfFree(id: string): Promise<Slot | null> {
    const held = this.slots.get(id);
    return held ? Promise.resolve(held) : this.skipLockedLoader.load(id);
  }

  /**
   * Up to `want` claimable jobs of these types, best first, row-locked with FOR UPDATE SKIP
   * LOCKED, never one this batch already holds. Requests for the same types in one round share
   * one query, and are served in the order they were made.
   */
  candidates(types: string[], now: Micros, want: number): Promise<Slot[]> {
    return new Promise((resolve, reject) => {
      this.candidateQueue.push({ types, now, want, resolve, reject });
      this.schedule();
    });
  }

  /** The host's bucket, row-locked (inserted first from `seed` when absent); null when it has none. */
  async bucket(host: string, seed?: BucketSeed): Promise<Bucket | null> {
    const known = this.buckets.get(host);
    if (known) return known.bucket;
    if (seed && !this.bucketSeeds.has(host)) this.bucketSeeds.set(host, seed);
    const b = await (seed ? this.seededBucketLoader : this.bucketLoader).load(host);
    if (!b) return null;
    if (!this.buckets.has(host)) this.buckets.set(host, { bucket: b, dirty: false });
    return this.buckets.get(host)!.bucket;
  }

  /** The bucket as this batch holds it now (after bucket() loaded it); changes since are in it. */
  bucketNow(host: string): Bucket | null {
    return this.buckets.get(host)?.bucket ?? null;
  }

  source(id: string): Promise<SourceRow | null> {
    return this.sourceLoader.load(id);
  }

  /** Creates the run if new (with this source and time); answers the tenant that owns it. */
  ensureRun(runId: string, sourceId: string | null, now: Micros): Promise<string | null> {
    if (!this.runSeeds.has(runId)) this.runSeeds.set(runId, { sourceId, now });
    return this.runLoader.load(runId);
  }

  /** Queued or throttled jobs of the type, counted once per batch, up to the cap. */
  queueAhead(type: string): Promise<number> {
    return this.aheadLoader.load(type);
  }

  lastOutcome(type: string): Promise<LastOutcome | null> {
    return this.lastLoader.load(type);
  }

  /** The type's recent run durations and active workers, read once per batch (docs/eta.md). */
  etaRow(type: string): Promise<EtaRow> {
    return this.etaLoader.load(type);
  }

  /** The tenant's enabled failure signatures, most confident first (read once per batch). */
  signatures(): Promise<SignatureRow[]> {
    return this.signatureLoader.load('all');
  }

  /** The tenant's paused types as committed (read once per batch). */
  async pausedTypes(): Promise<Map<string, PauseRow>> {
    return (this.committedPauses ??= await this.pauseLoader.load('all'));
  }

  private committedPauses: Map<string, PauseRow> | null = null;

  /**
   * Whether the type is paused, as this batch sees it (its own pauses and resumes included),
   * after pausedTypes() was awaited: synchronous, so a unit checks and records in one step.
   * The committed state read is recorded: the write checks it still holds under the head lock.
   */
  pauseNow(type: string): PauseRow | null {
    const committed = this.committedPauses;
    if (!committed) throw new Error('pauseNow before pausedTypes() was awaited');
    if (!this.assumed.has(type)) this.assumed.set(type, committed.has(type));
    return this.pauseChanges.has(type) ? this.pauseChanges.get(type)! : (committed.get(type) ?? null);
  }

  /** Records a pause (a row) or a resume (null) of the type in this batch. */
  setPause(type: string, row: PauseRow | null): void {
    this.pauseChanges.set(type, row);
  }

  /**
   * Up to `limit` jobs of one type in the given states, with id after `after`, in id order,
   * row-locked (waiting for other transactions) with their histories: sweeps and bulk actions.
   */
  async jobsWhere(type: string, states: readonly string[], after: string | null, limit: number, order: 'id' | 'updated' = 'id'): Promise<Slot[]> {
    const orderBy = order === 'id' ? 'j.id' : 'j.updated_at, j.id';
    const [rows] = await this.send([
      {
        text: `WITH c AS MATERIALIZED (
            SELECT ${CLAIM_COLUMNS}, j.lease_token FROM okit.jobs j
            WHERE j.tenant = $1 AND j.type = $2 AND j.state = ANY($3::text[]) AND ($4::uuid IS NULL OR j.id > $4::uuid) AND NOT (j.id = ANY($6::uuid[]))
            ORDER BY ${orderBy} LIMIT $5::int8 FOR UPDATE OF j)
          SELECT c.*, h.pos AS h_pos, h.n AS h_n, h.at AS h_at, h.event AS h_event, h.from_state AS h_from, h.to_state AS h_to,
            h.data AS h_data, h.prev_hash AS h_prev, h.hash AS h_hash
          FROM c LEFT JOIN okit.job_history h ON h.job_id = c.id ORDER BY ${order === 'id' ? 'c.id' : 'c.updated_at, c.id'}, h.n`,
        params: [this.tenant, type, states, after, limit, [...this.slots.keys()]],
      },
    ]);
    const jobs: Array<{ r: Record<string, unknown>; hist: HistoryRow[] }> = [];
    for (const r of rows!) {
      if (jobs.length === 0 || jobs[jobs.length - 1]!.r.id !== r.id) jobs.push({ r, hist: [] });
      if (r.h_n !== null && r.h_n !== undefined)
        jobs[jobs.length - 1]!.hist.push(toHistory({ tenant: r.tenant, pos: r.h_pos, job_id: r.id, n: r.h_n, at: r.h_at, event: r.h_event, from_state: r.h_from, to_state: r.h_to, data: r.h_data, prev_hash: r.h_prev, hash: r.h_hash }));
    }
    // A row locked after a concurrent commit is its newest version; its history, read in the same statement, may be older.
    const stale = jobs.filter(({ r, hist }) => hist.length !== Number(r.history_n) || hist[hist.length - 1]?.hash !== r.last_hash).map(({ r }) => String(r.id));
    if (stale.length > 0) {
      const [again] = await this.send([{ text: `SELECT ${HISTORY_COLUMNS} FROM okit.job_history WHERE tenant = $1 AND job_id = ANY($2::uuid[]) ORDER BY job_id, n`, params: [this.tenant, stale] }]);
      for (const j of jobs) if (stale.includes(String(j.r.id))) j.hist = again!.filter((h) => h.job_id === j.r.id).map(toHistory);
    }
    return jobs.map(({ r, hist }) => this.slotOf(r, hist, null));
  }

  private slotOf(r: Record<string, unknown>, history: HistoryRow[], host: string | null): Slot {
    const job = toJob(r);
    const s: Slot = { job, isNew: false, host, history, rows: [], lastHash: job.last_hash, leaseToken: (r.lease_token as string | null) ?? null };
    this.slots.set(job.id, s);
    return s;
  }

  private lockJobs(ids: string[], lock: string) {
    return {
      stmts: [
        // One statement, in id order: two batches locking overlapping jobs wait, never deadlock.
        { text: `SELECT ${JOB_COLUMNS}, lease_token FROM okit.jobs WHERE tenant = $1 AND id = ANY($2::uuid[]) ORDER BY id ${lock}`, params: [this.tenant, ids] },
        // Its own statement, so its snapshot comes after the locks: it sees every row committed before.
        { text: `SELECT ${HISTORY_COLUMNS} FROM okit.job_history WHERE tenant = $1 AND job_id = ANY($2::uuid[]) ORDER BY job_id, n`, params: [this.tenant, ids] },
      ],
      read: ([jobs, hist]: Rows[]) => {
        const byJob = new Map<string, HistoryRow[]>();
        for (const r of hist!) {
          const h = toHistory(r);
          if (!byJob.has(h.job_id)) byJob.set(h.job_id, []);
          byJob.get(h.job_id)!.push(h);
        }
        const out = new Map<string, Slot>();
        for (const r of jobs!) out.set(String(r.id), this.slots.get(String(r.id)) ?? this.slotOf(r, byJob.get(String(r.id)) ?? [], null));
        return out;
      },
    };
  }

  private candidatesPart(): Part {
    const q = this.candidateQueue;
    this.candidateQueue = [];
    const groups = new Map<string, CandidateRequest[]>();
    for (const r of q) {
      const k = r.types.join('\u0000');
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k)!.push(r);
    }
    const reqs = [...groups.values()];
    const exclude = [...this.slots.keys()];
    return {
      stmts: reqs.map((g) => ({
        text: g[0]!.types.length === 1 ? CANDIDATES_OF_TYPE : CANDIDATES_OF_TYPES,
        params: [this.tenant, g[0]!.types, formatMicros(g.reduce((m, r) => (r.now < m ? r.now : m), g[0]!.now)), g.reduce((n, r) => n + r.want, 0), exclude],
      })),
      take: async (results) => {
        for (const [gi, g] of reqs.entries()) {
          const rows = results[gi]!;
          const jobs: Array<{ r: Record<string, unknown>; hist: HistoryRow[] }> = [];
          for (const r of rows) {
            if (jobs.length === 0 || jobs[jobs.length - 1]!.r.id !== r.id) jobs.push({ r, hist: [] });
            if (r.h_n !== null && r.h_n !== undefined) jobs[jobs.length - 1]!.hist.push(toHistory({ ...r, tenant: r.tenant, pos: r.h_pos, job_id: r.id, n: r.h_n, at: r.h_at, event: r.h_event, from_state: r.h_from, to_state: r.h_to, data: r.h_data, prev_hash: r.h_prev, hash: r.h_hash }));
          }
          // A candidate locked after a concurrent commit is its newest version; its history, read
          // in the same statement, may be older. The job row's head says; read such a history again.
          const stale = jobs.filter(({ r, hist }) => hist.length !== Number(r.history_n) || hist[hist.length - 1]?.hash !== r.last_hash).map(({ r }) => String(r.id));
          if (stale.length > 0) {
            const [again] = await this.send([{ text: `SELECT ${HISTORY_COLUMNS} FROM okit.job_history WHERE tenant = $1 AND job_id = ANY($2::uuid[]) ORDER BY job_id, n`, params: [this.tenant, stale] }]);
            for (const j of jobs) if (stale.includes(String(j.r.id))) j.hist = again!.filter((h) => h.job_id === j.r.id).map(toHistory);
          }
          const slots = jobs.map(({ r, hist }) => this.slotOf(r, hist, (r.host as string | null) ?? null));
          let i = 0;
          for (const r of g) {
            r.resolve(slots.slice(i, i + r.want));
            i += r.want;
          }
        }
      },
      fail: (e) => {
        for (const r of q) r.reject(e);
      },
    };
  }

  private lockBuckets(hosts: string[], seeded: boolean) {
    const sorted = [...hosts].sort();
    const stmts: Stmt[] = [];
    if (seeded) {
      this.preWrites = true;
      // Two first reports for a new host may race: the loser then locks the winner's row.
      stmts.push({
        text: `INSERT INTO okit.throttles (tenant, host, capacity, base_refill_per_sec, refill_per_sec, tokens, updated_at)
          SELECT $1, x.host, x.capacity, x.refill, x.refill, x.capacity, x.at
          FROM unnest($2::text[], $3::numeric[], $4::numeric[], $5::timestamptz[]) AS x(host, capacity, refill, at)
          ON CONFLICT (tenant, host) DO NOTHING`,
        params: [
          this.tenant,
          sorted,
          sorted.map((h) => String(this.bucketSeeds.get(h)!.capacity)),
          sorted.map((h) => String(this.bucketSeeds.get(h)!.refillPerSec)),
          sorted.map((h) => formatMicros(this.bucketSeeds.get(h)!.now)),
        ],
      });
    }
    stmts.push({
      text: `SELECT host, capacity, base_refill_per_sec, refill_per_sec, tokens, updated_at, penalty_until
        FROM okit.throttles WHERE tenant = $1 AND host = ANY($2::text[]) ORDER BY host FOR UPDATE`,
      params: [this.tenant, sorted],
    });
    return { stmts, read: (res: Rows[]) => new Map(res[res.length - 1]!.map((r) => [String(r.host), toBucket(r)])) };
  }

  private readSources(ids: string[]) {
    return {
      stmts: [{ text: 'SELECT id, tenant, name, host, created_at FROM okit.sources WHERE tenant = $1 AND id = ANY($2::uuid[])', params: [this.tenant, ids] }],
      read: ([rows]: Rows[]) =>
        new Map(rows!.map((r) => [String(r.id), { id: String(r.id), tenant: String(r.tenant), name: String(r.name), host: String(r.host), created_at: ts(r.created_at) }])),
    };
  }

  private upsertRuns(ids: string[]) {
    this.preWrites = true;
    const sorted = [...ids].sort();
    return {
      stmts: [
        {
          text: `INSERT INTO okit.runs (id, tenant, source_id, created_at)
            SELECT x.id, $1, x.source_id, x.at FROM unnest($2::uuid[], $3::uuid[], $4::timestamptz[]) AS x(id, source_id, at)
            ON CONFLICT (tenant, id) DO NOTHING`,
          params: [this.tenant, sorted, sorted.map((id) => this.runSeeds.get(id)!.sourceId), sorted.map((id) => formatMicros(this.runSeeds.get(id)!.now))],
        },
        { text: 'SELECT id, tenant FROM okit.runs WHERE tenant = $1 AND id = ANY($2::uuid[])', params: [this.tenant, sorted] },
      ],
      read: ([, rows]: Rows[]) => new Map(rows!.map((r) => [String(r.id), String(r.tenant)])),
    };
  }

  private countAhead(types: string[]) {
    // Counting is O(queue length), so it stops at the cap: past that the signal says
    // "more than N ahead" rather than every enqueue paying for a long queue.
    return {
      stmts: [
        {
          text: `SELECT x.type, (SELECT count(*)::int FROM (SELECT 1 FROM okit.jobs WHERE tenant = $1 AND type = x.type AND state IN ('queued', 'throttled') LIMIT $3::int8) q) AS n
            FROM unnest($2::text[]) AS x(type)`,
          params: [this.tenant, types, this.queuePositionCap],
        },
      ],
      read: ([rows]: Rows[]) => new Map(rows!.map((r) => [String(r.type), Number(r.n)])),
    };
  }

  private lastOutcomes(types: string[]) {
    return {
      stmts: [
        {
          text: `SELECT x.type, l.id, l.state, l.updated_at FROM unnest($2::text[]) AS x(type)
            JOIN LATERAL (SELECT id, state, updated_at FROM okit.jobs
              WHERE tenant = $1 AND type = x.type AND state IN ('succeeded', 'failed', 'dead_letter', 'canceled')
              ORDER BY updated_at DESC, id DESC LIMIT 1) l ON true`,
          params: [this.tenant, types],
        },
      ],
      read: ([rows]: Rows[]) => new Map(rows!.map((r) => [String(r.type), { job_id: String(r.id), status: String(r.state), finished_at: ts(r.updated_at) }])),
    };
  }

  private etaRows(types: string[]) {
    return {
      stmts: [
        {
          // Workers: distinct lease owners of the type's running jobs (bounded by what is running).
          text: `SELECT x.type, d.durations_us::text[] AS d,
              (SELECT count(DISTINCT lease_owner)::int FROM okit.jobs WHERE tenant = $1 AND type = x.type AND state = 'running') AS w
            FROM unnest($2::text[]) AS x(type) LEFT JOIN okit.type_durations d ON d.tenant = $1 AND d.type = x.type`,
          params: [this.tenant, types],
        },
      ],
      read: ([rows]: Rows[]) =>
        new Map(rows!.map((r) => [String(r.type), { durationsUs: ((r.d as string[] | null) ?? []).map((x) => BigInt(x)), workers: Number(r.w) }])),
    };
  }

  private readSignatures() {
    return {
      stmts: [
        {
          // Operator-defined signatures first (most confident first), then learned ones.
          text: `SELECT id, pattern, outcome, learned_key, sample_count, (extract(epoch FROM last_seen) * 1000000)::bigint::text AS last_seen_us, mttr_us::text[] AS mttr_us,
                        NOT (enabled AND retired_at IS NULL) AS retired
                   FROM okit.failure_signatures WHERE tenant = $1 AND ((enabled AND retired_at IS NULL) OR learned_key IS NOT NULL)
                   ORDER BY learned_key IS NOT NULL, confidence DESC, id`,
          params: [this.tenant],
        },
      ],
      read: ([rows]: Rows[]) =>
        new Map([
          [
            'all',
            rows!.map((r): SignatureRow => ({
              id: String(r.id),
              pattern: JSON.parse(String(r.pattern)) as { [k: string]: Json },
              outcome: JSON.parse(String(r.outcome)) as { [k: string]: Json },
              learnedKey: r.learned_key == null ? null : (JSON.parse(String(r.learned_key)) as { [k: string]: Json }),
              sampleCount: Number(r.sample_count),
              lastSeenUs: r.last_seen_us == null ? null : BigInt(String(r.last_seen_us)),
              mttrUs: ((r.mttr_us as string[] | null) ?? []).map((x) => BigInt(x)),
              retired: r.retired === true || r.retired === 't',
            })),
          ],
        ]),
    };
  }

  private readPauses() {
    return {
      stmts: [{ text: 'SELECT type, actor, reason, paused_at FROM okit.queue_pauses WHERE tenant = $1 ORDER BY type', params: [this.tenant] }],
      read: ([rows]: Rows[]) =>
        new Map([
          ['all', new Map(rows!.map((r) => [String(r.type), { type: String(r.type), actor: String(r.actor), reason: (r.reason ?? null) as string | null, paused_at: ts(r.paused_at) }]))],
        ]),
    };
  }

  // ------------------------------------------------------------ changes (in memory)

  /** Claims an idempotency key for this batch; false when another unit of the batch holds it. */
  reserveKey(key: string, owner: unknown): boolean {
    const held = this.keys.get(key);
    if (held !== undefined && held !== owner) return false;
    this.keys.set(key, owner);
    return true;
  }

  /** Appends a transition of `slot` (checked against the state machine first: nothing is recorded when refused). */
  transition(slot: Slot, event: JobEvent, to: JobState, data: { [k: string]: Json }, now: Micros, set: Partial<Job> = {}, leaseToken?: string): Change {
    const from = slot.job.state;
    if (!isAllowed(event, from, to))
      throw new OkitError('ILLEGAL_TRANSITION', `job ${slot.job.id}: ${event} is not allowed from ${from} to ${to}`, { job_id: slot.job.id, event, from, to });
    const c = this.append(slot, event, from, to, data, now, set);
    slot.leaseToken = to === 'running' ? (leaseToken ?? slot.leaseToken) : null;
    return c;
  }

  /** A new job and its `enqueued` row. */
  enqueue(job: Omit<Job, 'state' | 'attempt' | 'lease_owner' | 'lease_expires_at' | 'created_at' | 'updated_at' | 'history_n' | 'last_hash'>, payloadText: string, data: { [k: string]: Json }, now: Micros): Change {
    const at = formatMicros(now);
    const full: Job = { ...job, attempt: 0, state: 'queued', lease_owner: null, lease_expires_at: null, created_at: at, updated_at: at, history_n: 0, last_hash: '' };
    const slot: Slot = { job: full, isNew: true, payloadText, host: null, history: [], rows: [], lastHash: null, leaseToken: null };
    this.slots.set(job.id, slot);
    this.enqueuedOfType.set(job.type, (this.enqueuedOfType.get(job.type) ?? 0) + 1);
    return this.append(slot, 'enqueued', null, 'queued', data, now, {});
  }

  /** How many jobs of the type this batch has enqueued so far (they queue behind the counted ones). */
  enqueuedSoFar(type: string): number {
    return this.enqueuedOfType.get(type) ?? 0;
  }

  hasJob(id: string): boolean {
    return this.slots.has(id);
  }

  private append(slot: Slot, event: JobEvent, from: JobState | null, to: JobState, data: { [k: string]: Json }, now: Micros, set: Partial<Job>): Change {
    const at = formatMicros(now);
    const n = slot.job.history_n + 1;
    slot.job = { ...slot.job, ...set, state: to, updated_at: at, history_n: n };
    const p: PendingRow = { slot, event, from, to, data: JSON.parse(canonicalize(data)) as { [k: string]: Json }, at, n, jobAfter: slot.job };
    if (slot.rows.length === 0) this.changed.push(slot.job.id);
    slot.rows.push(p);
    this.entries.push({ row: p });
    return new Change(p);
  }

  /** A throttle event: it takes a ledger position like a history row, but signals nobody. */
  throttleEvent(host: string, event: string, data: { [k: string]: Json }, now: Micros): void {
    this.entries.push({ event: { table: 'throttle_events', host, event, at: formatMicros(now), data: canonicalize(data) } });
  }

  /** A queue event (paused, resumed of a job type): a ledger position, no signal. */
  queueEvent(type: string, event: 'paused' | 'resumed', data: { [k: string]: Json }, now: Micros): void {
    this.entries.push({ event: { table: 'queue_events', host: type, event, at: formatMicros(now), data: canonicalize(data) } });
  }

  setBucket(host: string, bucket: Bucket): void {
    this.buckets.set(host, { bucket, dirty: true });
  }

  // ------------------------------------------------------------ sealing (head locked)

  /** Positions this batch takes: one per history row and throttle event. */
  get positions(): number {
    return this.entries.length;
  }

  /** Job ids whose signal this batch changes, in the order they first changed. */
  get changedJobs(): readonly string[] {
    return this.changed;
  }

  /** Types a unit asks to wake claim waiters for even without a job change (a resumed type, say). */
  private readonly extraReady = new Set<string>();
  wakeClaims(type: string): void {
    this.extraReady.add(type);
  }

  /**
   * What claim waiters need to hear of this batch (the NOTIFY's claim hints): per job type, how
   * many of its jobs the batch left claimable now (queued or throttled, due by the batch's last
   * change of the job), and the earliest due moment of those it left claimable only later (a
   * retry's backoff, a throttle's wait, a future not_before).
   */
  claimHints(): ClaimHints {
    const ready = new Map<string, number>();
    const due = new Map<string, Micros>();
    for (const s of this.slots.values()) {
      const last = s.rows[s.rows.length - 1];
      if (!last || (s.job.state !== 'queued' && s.job.state !== 'throttled')) continue;
      const nb = parseMicros(s.job.not_before);
      if (nb <= parseMicros(last.at)) ready.set(s.job.type, (ready.get(s.job.type) ?? 0) + 1);
      else if (!due.has(s.job.type) || nb < due.get(s.job.type)!) due.set(s.job.type, nb);
    }
    for (const t of this.extraReady) if (!ready.has(t)) ready.set(t, 1);
    return { ready, due };
  }

  /** Assigns positions first..first+positions-1 in recording order and chains every row. */
  seal(first: bigint): void {
    let pos = first;
    for (const e of this.entries) {
      if (e.row) {
        const p = e.row;
        const s = p.slot;
        const base = {
          tenant: this.tenant,
          pos: String(pos),
          job_id: s.job.id,
          n: p.n,
          at: p.at,
          event: p.event,
          from_state: p.from,
          to_state: p.to,
          data: p.data,
          prev_hash: s.lastHash,
        };
        p.row = { ...base, hash: rowHash(base) };
        s.lastHash = p.row.hash;
        s.history.push(p.row);
        p.upto = s.history.length;
      } else e.event.pos = String(pos);
      pos++;
    }
    for (const s of this.slots.values()) if (s.rows.length > 0) s.job = { ...s.job, last_hash: s.lastHash! };
  }

  /** What the batch wrote, for commit observers (metrics), after seal. */
  committed(): Pick<CommitInfo, 'transitions' | 'throttles'> {
    const transitions: Array<CommitInfo['transitions'][number]> = [];
    const throttles: Array<CommitInfo['throttles'][number]> = [];
    for (const e of this.entries) {
      if (e.row) {
        const r = e.row.row;
        if (!r) continue; // not sealed: nothing was written
        transitions.push({ jobId: r.job_id, type: e.row.slot.job.type, createdAt: e.row.slot.job.created_at, event: r.event, to: r.to_state, at: r.at, data: r.data });
      } else if (e.event.table === 'throttle_events') throttles.push({ host: e.event.host, event: e.event.event });
    }
    return { transitions, throttles };
  }

  /** The first entry, to recognise this batch in the ledger after a lost COMMIT acknowledgement. */
  get marker(): { table: 'job_history'; pos: string; hash: string } | { table: 'throttle_events' | 'queue_events'; pos: string; host: string; event: string; at: string; data: string } | null {
    const e = this.entries[0];
    if (!e) return null;
    if (e.row) return { table: 'job_history', pos: e.row.row!.pos, hash: e.row.row!.hash };
    return { table: e.event.table, pos: e.event.pos!, host: e.event.host, event: e.event.event, at: e.event.at, data: e.event.data };
  }

  /** Arguments of okit.write_batch (migration 010) after its first four, after seal. */
  writeParams(notify: string | null): unknown[] {
    const rows = this.entries.flatMap((e) => (e.row ? [e.row.row!] : []));
    const events = this.entries.flatMap((e) => (e.event?.table === 'throttle_events' ? [e.event] : []));
    const qevents = this.entries.flatMap((e) => (e.event?.table === 'queue_events' ? [e.event] : []));
    const paused = [...this.pauseChanges.values()].filter((p): p is PauseRow => p !== null);
    const resumed = [...this.pauseChanges.entries()].filter(([, p]) => p === null).map(([t]) => t);
    const assumed = [...this.assumed.entries()];
    const touched = [...this.slots.values()].filter((s) => s.rows.length > 0);
    const created = touched.filter((s) => s.isNew).map((s) => s.job);
    const updated = touched.filter((s) => !s.isNew).map((s) => s.job);
    const snaps = touched.map((s) => snapshotUpTo(s, s.history.length));
    const isNew = touched.map((s) => s.isNew);
    const dirty = [...this.buckets.entries()].filter(([, b]) => b.dirty);
    const col = <T, V>(xs: T[], f: (x: T) => V) => xs.map(f);
    const json = (v: Json | null) => (v === null ? null : canonicalize(v));
    return [
      this.tenant,
      // job_history $2..$11
      col(rows, (r) => r.pos),
      col(rows, (r) => r.job_id),
      col(rows, (r) => r.n),
      col(rows, (r) => r.at),
      col(rows, (r) => r.event),
      col(rows, (r) => r.from_state),
      col(rows, (r) => r.to_state),
      col(rows, (r) => canonicalize(r.data)),
      col(rows, (r) => r.prev_hash),
      col(rows, (r) => r.hash),
      // throttle_events $12..$16
      col(events, (e) => e.pos),
      col(events, (e) => e.host),
      col(events, (e) => e.at),
      col(events, (e) => e.event),
      col(events, (e) => e.data),
      // new jobs $17..$34
      col(created, (j) => j.id),
      col(created, (j) => j.run_id),
      col(created, (j) => j.source_id),
      col(created, (j) => j.type),
      col(created, (j) => this.slots.get(j.id)!.payloadText!),
      col(created, (j) => j.payload_sha256),
      col(created, (j) => j.idempotency_key),
      col(created, (j) => j.priority),
      col(created, (j) => j.max_attempts),
      col(created, (j) => j.attempt),
      col(created, (j) => j.state),
      col(created, (j) => j.not_before),
      col(created, (j) => j.lease_owner),
      col(created, (j) => j.lease_expires_at),
      col(created, (j) => j.created_at),
      col(created, (j) => j.updated_at),
      col(created, (j) => j.history_n),
      col(created, (j) => j.last_hash),
      // changed jobs $35..$43
      col(updated, (j) => j.id),
      col(updated, (j) => j.attempt),
      col(updated, (j) => j.state),
      col(updated, (j) => j.not_before),
      col(updated, (j) => j.lease_owner),
      col(updated, (j) => j.lease_expires_at),
      col(updated, (j) => j.updated_at),
      col(updated, (j) => j.history_n),
      col(updated, (j) => j.last_hash),
      col(updated, (j) => this.slots.get(j.id)!.leaseToken),
      col(updated, (j) => j.priority),
      // snapshots $44..$57
      col(snaps, (s) => s.job_id),
      col(snaps, (s) => s.run_id),
      col(snaps, (s) => s.kind),
      col(snaps, (s) => s.phase),
      col(snaps, (s) => s.summary),
      col(snaps, (s) => s.eta_seconds),
      col(snaps, (s) => json(s.last_known_outcome)),
      col(snaps, (s) => json(s.next_actions as Json | null)),
      col(snaps, (s) => canonicalize(s.diagnostics)),
      col(snaps, (s) => s.source),
      col(snaps, (s) => s.history_n),
      col(snaps, (s) => s.history_hash),
      col(snaps, (s) => s.created_at),
      col(snaps, (s) => s.updated_at),
      isNew,
      // buckets $58..$64
      col(dirty, ([h]) => h),
      col(dirty, ([, b]) => fromMicroUnits(b.bucket.capacity)),
      col(dirty, ([, b]) => fromMicroUnits(b.bucket.baseRefill)),
      col(dirty, ([, b]) => fromMicroUnits(b.bucket.refill)),
      col(dirty, ([, b]) => fromMicroUnits(b.bucket.tokens)),
      col(dirty, ([, b]) => formatMicros(b.bucket.updatedAt)),
      col(dirty, ([, b]) => (b.bucket.penaltyUntil === null ? null : formatMicros(b.bucket.penaltyUntil))),
      // queue events, pause state, assumptions
      col(qevents, (e) => e.pos),
      col(qevents, (e) => e.host),
      col(qevents, (e) => e.at),
      col(qevents, (e) => e.event),
      col(qevents, (e) => e.data),
      col(paused, (p) => p.type),
      col(paused, (p) => p.actor),
      col(paused, (p) => p.reason),
      col(paused, (p) => p.paused_at),
      resumed,
      col(assumed, ([t]) => t),
      col(assumed, ([, p]) => p),
      notify,
    ];
  }
}

const snapshotCache = new WeakMap<Slot, Map<number, Snapshot>>();

function snapshotUpTo(slot: Slot, upto: number): Snapshot {
  let m = snapshotCache.get(slot);
  if (!m) snapshotCache.set(slot, (m = new Map()));
  let s = m.get(upto);
  if (!s) m.set(upto, (s = project(slot.history.slice(0, upto))));
  return s;
}

/**
 * What one unit sees of its batch. It counts the unit's recorded changes: a unit that throws
 * before recording anything is refused alone; one that throws after has half-done work in the
 * batch, which is then rolled back and retried unit by unit.
 */
export class UnitView {
  changes = 0;
  /** Whether a job it looked at came from the writer's known jobs (a refusal is then checked against a read). */
  usedKnown = false;
  constructor(private readonly b: Batch) {}
  get tenant(): string {
    return this.b.tenant;
  }
  async job(id: string): Promise<Slot | null> {
    const s = await this.b.job(id);
    if (s?.knownAs) this.usedKnown = true;
    return s;
  }
  jobIfFree(id: string): Promise<Slot | null> {
    return this.b.jobIfFree(id);
  }
  candidates(types: string[], now: Micros, want: number): Promise<Slot[]> {
    return this.b.candidates(types, now, want);
  }
  bucket(host: string, seed?: BucketSeed): Promise<Bucket | null> {
    return this.b.bucket(host, seed);
  }
  bucketNow(host: string): Bucket | null {
    return this.b.bucketNow(host);
  }
  source(id: string): Promise<SourceRow | null> {
    return this.b.source(id);
  }
  ensureRun(runId: string, sourceId: string | null, now: Micros): Promise<string | null> {
    return this.b.ensureRun(runId, sourceId, now);
  }
  queueAhead(type: string): Promise<number> {
    return this.b.queueAhead(type);
  }
  lastOutcome(type: string): Promise<LastOutcome | null> {
    return this.b.lastOutcome(type);
  }
  etaRow(type: string): Promise<EtaRow> {
    return this.b.etaRow(type);
  }
  signatures(): Promise<SignatureRow[]> {
    return this.b.signatures();
  }
  pausedTypes(): Promise<Map<string, PauseRow>> {
    return this.b.pausedTypes();
  }
  pauseNow(type: string): PauseRow | null {
    return this.b.pauseNow(type);
  }
  jobsWhere(...args: Parameters<Batch['jobsWhere']>): Promise<Slot[]> {
    return this.b.jobsWhere(...args);
  }
  setPause(type: string, row: PauseRow | null): void {
    this.b.setPause(type, row);
    this.changes++;
  }
  queueEvent(type: string, event: 'paused' | 'resumed', data: { [k: string]: Json }, now: Micros): void {
    this.b.queueEvent(type, event, data, now);
    this.changes++;
  }
  reserveKey(key: string): boolean {
    return this.b.reserveKey(key, this);
  }
  enqueuedSoFar(type: string): number {
    return this.b.enqueuedSoFar(type);
  }
  hasJob(id: string): boolean {
    return this.b.hasJob(id);
  }
  transition(slot: Slot, event: JobEvent, to: JobState, data: { [k: string]: Json }, now: Micros, set?: Partial<Job>, leaseToken?: string): Change {
    const c = this.b.transition(slot, event, to, data, now, set, leaseToken);
    this.changes++;
    return c;
  }
  enqueue(...args: Parameters<Batch['enqueue']>): Change {
    const c = this.b.enqueue(...args);
    this.changes++;
    return c;
  }
  throttleEvent(host: string, event: string, data: { [k: string]: Json }, now: Micros): void {
    this.b.throttleEvent(host, event, data, now);
    this.changes++;
  }
  setBucket(host: string, bucket: Bucket): void {
    this.b.setBucket(host, bucket);
    this.changes++;
  }
  /** Wakes claim waiters of the type when the batch commits (its NOTIFY carries `+type`): for changes that make jobs claimable without a job transition. */
  wakeClaims(type: string): void {
    this.b.wakeClaims(type);
  }
}

/**
 * Offline verification: an ordered pipeline over the tar stream (never extracted, no
 * database, no network). Every problem is collected with a stable code; each check that
 * passes prints one line of positive evidence. Keys come only from the caller (--pubkey).
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { HistoryRow, Job, Snapshot } from '../ledger/types.js';
import { canonicalize } from '../util/canonical.js';
import { parseMicros } from '../util/time.js';
import {
  DATA_FILES, entriesOf, MANIFEST, MAX_DATA_BYTES, MAX_LINE_BYTES, MAX_MANIFEST_BYTES, MAX_SUMS_BYTES, SIGNATURE,
  SIGNATURE_BYTES, SUMS, tarEncodingOf, type DataFile, type Manifest, type VerifyCode,
} from './format.js';
import { verifySignature, type PublicKey } from './keys.js';
import { manifestProblems, readableVersion, renderSums } from './manifest.js';
import { PositionCover } from './positions.js';
import { checkSegment, HASH_OK, LINE_INVALID, LINE_NOT_CANONICAL, PREV_NULL, SegmentBuffers, Splitter, TENANT_OK, type SegmentResult } from './segments.js';
import { compareIds, hashText, ID_BYTES, idText, JobTable, sameHash } from './jobtable.js';
import { defaultWorkers, SegmentWorkers } from './workers.js';
import { TarReader, type EntryPlace } from './tar.js';
import { sha256Hex } from '../util/hash.js';

export interface Finding {
  code: VerifyCode;
  message: string;
  file?: string;
  line?: number;
  job_id?: string;
}

export interface Throttle {
  tenant: string;
  pos: string;
  host: string;
  at: string;
  event: string;
  data: Record<string, unknown>;
}

/** A queue event (format v3): a job type paused or resumed. */
export interface QueueEvent {
  tenant: string;
  pos: string;
  type: string;
  at: string;
  event: string;
  data: Record<string, unknown>;
}

export interface BundleData {
  jobs: Job[];
  history: HistoryRow[];
  throttles: Throttle[];
  /** Empty for v1 and v2 bundles. */
  queues: QueueEvent[];
  snapshots: Snapshot[];
}

/** A job's last row seen so far (in this bundle or the supplied previous ones). */
export interface ChainHead {
  n: number;
  hash: string;
  posN: Pos;
  to_state: string;
}

export interface VerifyReport {
  ok: boolean;
  label: string;
  /** sha256 of the whole bundle file. */
  sha256: string;
  manifest: Manifest | null;
  manifestSha256: string | null;
  evidence: string[];
  problems: Finding[];
  /** Problems beyond MAX_PROBLEMS, counted but not listed. */
  moreProblems: number;
  notes: string[];
  /** Where each entry's body lies in the file (to read one again: replay, import). */
  places: EntryPlace[];
  /** True when verification stopped at the container: signature and contents were not checked. */
  stoppedAtContainer: boolean;
  data?: BundleData;
  /** With collect: the history rows of the supplied previous bundles, oldest first. */
  earlier?: HistoryRow[];
}

export type BundleSource = Buffer | string;

export interface VerifyOptions {
  pubkeys: readonly { key: PublicKey; label: string }[];
  /** Earlier bundles of the same chain, any order. */
  previous?: readonly BundleSource[];
  /** Keep parsed lines (replay, import). */
  collect?: boolean;
  /**
   * Stop at the first problem, and check each data file's hash before parsing its lines
   * (the body is held in memory). For bulk negative tests; the CLI always reports everything.
   */
  failFast?: boolean;
  /**
   * Worker threads that check the lines (0: in this thread). Default: for a bundle file of
   * PARALLEL_MIN_BYTES or more, one per core up to two; in process for buffers, small files,
   * collect and failFast. Problems and evidence are the same either way.
   */
  workers?: number;
  /** Segment size (default SEGMENT_BYTES): small ones let tests cross many segment boundaries. */
  segmentBytes?: number;
}

/** Below this size a bundle file is checked in process (starting workers costs ~50 ms). */
export const PARALLEL_MIN_BYTES = 4 * 1024 * 1024;

const MAX_PROBLEMS = 200;

/** Each check: the codes that make it fail, in pipeline order. */
const CHECKS: Array<{ id: string; codes: VerifyCode[] }> = [
  { id: 'tar', codes: ['TAR_TRUNCATED', 'TAR_BAD_CHECKSUM', 'TAR_BAD_HEADER', 'TAR_ENTRY_TYPE', 'TAR_UNSAFE_PATH', 'TAR_DUPLICATE', 'TAR_UNEXPECTED_ENTRY', 'TAR_MISSING_ENTRY', 'TAR_OVERSIZED', 'TAR_BAD_PADDING', 'TAR_TRAILING_DATA', 'TAR_MTIME_MISMATCH'] },
  { id: 'manifest', codes: ['MANIFEST_INVALID', 'MANIFEST_VERSION'] },
  { id: 'key', codes: ['KEY_UNKNOWN'] },
  { id: 'signature', codes: ['SIGNATURE_INVALID'] },
  { id: 'sums', codes: ['SUMS_MISMATCH'] },
  { id: 'files', codes: ['FILE_SIZE_MISMATCH', 'FILE_HASH_MISMATCH', 'LINE_COUNT_MISMATCH', 'COUNT_MISMATCH'] },
  { id: 'lines', codes: ['LINE_NOT_CANONICAL', 'LINE_INVALID', 'SORT_ORDER', 'TENANT_MISMATCH'] },
  { id: 'positions', codes: ['POSITION_OUT_OF_WINDOW', 'POSITION_DUPLICATE', 'POSITION_GAP'] },
  { id: 'chains', codes: ['CHAIN_HASH_MISMATCH', 'CHAIN_LINK_BROKEN', 'CHAIN_GAP', 'CHAIN_ORDER'] },
  { id: 'jobs', codes: ['JOB_MISSING', 'JOB_WITHOUT_HISTORY', 'JOB_HEAD_MISMATCH', 'SNAPSHOT_MISSING', 'SNAPSHOT_UNEXPECTED', 'SNAPSHOT_HEAD_MISMATCH'] },
  { id: 'previous', codes: ['PREVIOUS_MISMATCH', 'PREVIOUS_GAP', 'PREVIOUS_INVALID'] },
];


/** Per-job flags (JobTable column). */
const LAST_SEEN = 1; // the row n = history_n has passed: the job row's last_hash was compared
const HEAD_OK = 2;
const HAS_SNAPSHOT = 4;

/** A ledger position: a number while exact (any real ledger), a bigint beyond 2^53. */
export type Pos = number | bigint;
/** Positions are canonical decimal text (lines.ts): up to 15 digits is an exact double. */
export const posOf = (text: string): Pos => (text.length <= 15 ? Number(text) : BigInt(text));

/** One step of the ordered pipeline: a segment's result once it is back, or a deferred action. */
interface Step {
  ready: boolean;
  run(): void;
}

/** Segments in flight to the workers at most (each SEGMENT_BYTES): bounds memory. */
const MAX_IN_FLIGHT = 6;
/** Segments queued per worker before this thread checks the next one itself. */
const WORKER_QUEUE = 2;
/** Steps (results waiting for an earlier one) at most before reading pauses. */
const MAX_QUEUED = 24;

/** The line-reading state of the data file whose lines are being applied. */
interface LineFile {
  f: DataFile;
  /** Lines applied so far. */
  base: number;
  abandoned: boolean;
  /** The last key: a position, or (jobs, snapshots) lastId holds an id. */
  lastKey: Pos | null;
  lastId: Uint8Array | null;
}

/**
 * The verifier's state over one bundle's byte stream. Reading (tar, hashes, cutting each data
 * file into segments) happens as bytes arrive; everything that depends on line content is a
 * step of one ordered queue, so problems are found and listed in file order whether segments
 * are checked in process or by workers.
 */
class Verifier {
  readonly problems: Finding[] = [];
  moreProblems = 0;
  private readonly codes = new Set<VerifyCode>();
  readonly notes: string[] = [];
  readonly whole = createHash('sha256');
  manifest: Manifest | null = null;
  manifestBytes: Buffer | null = null;
  manifestSha256: string | null = null;
  readonly tar: TarReader;
  private keyLabel: string | null = null;
  // reading state
  private small: Buffer[] = [];
  private file: DataFile | null = null;
  private fileHash: Hash | null = null;
  private fileBytes = 0;
  private splitter: Splitter | null = null;
  private readonly buffers: SegmentBuffers;
  // ordered state
  private readonly queue: Step[] = [];
  private inFlight = 0;
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private lf: LineFile | null = null;
  private readonly fileLines = new Map<DataFile, number>();
  /**
   * Per job of jobs.jsonl, in typed arrays: what its row says (history_n, last_hash, state)
   * and what its chain in this bundle shows (the last row's n, hash, position, to_state).
   */
  private readonly jobs = new JobTable();
  private readonly jHistoryN = this.jobs.float();
  private readonly jLast = this.jobs.hashes();
  private readonly jState = this.jobs.int();
  private readonly jN = this.jobs.float();
  private readonly jHash = this.jobs.hashes();
  /** NaN: a position beyond 2^53, in bigPosOf. */
  private readonly jPos = this.jobs.float();
  private readonly bigPosOf = new Map<number, bigint>();
  private readonly jTo = this.jobs.int();
  private readonly jFlags = this.jobs.int();
  /** State names by code (segments send their own small tables). */
  private readonly stateNames: string[] = [];
  private readonly stateCodes = new Map<string, number>();
  /** Heads carried from earlier bundles (read only), and rows of jobs absent from jobs.jsonl. */
  private readonly anchors: Map<string, ChainHead>;
  private readonly orphans = new Map<string, ChainHead>();
  private inBundle = 0;
  private snapshots = 0;
  private readonly cover = new PositionCover();
  private readonly histPos = this.cover.source();
  private readonly thrPos = this.cover.source();
  private readonly queuePos = this.cover.source();
  /** The manifest's version once read: it fixes the entry list (v3 has queues.jsonl). */
  private version: number | null = null;
  private anchored = 0;
  private unanchored = 0;
  private historyRows = 0;
  private lineTotal = 0;
  private win: [Pos, Pos] | null = null;
  data: BundleData | undefined;

  constructor(
    private readonly opts: VerifyOptions,
    anchors: Map<string, ChainHead>,
    private readonly chainComplete: boolean,
    private readonly workers: SegmentWorkers | null = null,
  ) {
    this.anchors = anchors;
    this.buffers = workers?.buffers ?? new SegmentBuffers();
    if (opts.collect) this.data = { jobs: [], history: [], throttles: [], queues: [], snapshots: [] };
    this.tar = new TarReader(
      {
        entry: (name) => this.entry(name),
        data: (b) => this.data_(b),
        entryEnd: (name) => this.entryEnd(name),
        problem: (p) => this.later(() => this.add(p.code as VerifyCode, p.message)),
      },
      (name) => (name === MANIFEST ? MAX_MANIFEST_BYTES : name === SIGNATURE ? SIGNATURE_BYTES : name === SUMS ? MAX_SUMS_BYTES : MAX_DATA_BYTES),
      () => entriesOf(this.version ?? 3),
    );
  }

  private stopped = false;
  private deferred: Buffer[] = [];
  /** failFast: bodies and the signature, checked after every cheaper check passed. */
  private readonly held = new Map<DataFile, Buffer[]>();
  private heldSig: Buffer | null = null;

  add(code: VerifyCode, message: string, extra: Omit<Finding, 'code' | 'message'> = {}): void {
    this.codes.add(code);
    if (this.opts.failFast) this.stopped = true;
    if (this.problems.length >= MAX_PROBLEMS) {
      this.moreProblems++;
      return;
    }
    this.problems.push({ code, message, ...extra });
  }

  // ---- the ordered queue

  /** Runs `run` after every step queued before it (at once when nothing is pending). */
  private later(run: () => void): void {
    if (this.queue.length === 0) run();
    else this.queue.push({ ready: true, run });
  }

  private pump(): void {
    while (this.queue.length && this.queue[0]!.ready) this.queue.shift()!.run();
    if (this.wake && (this.roomy() || this.failure)) {
      const w = this.wake;
      this.wake = null;
      w();
    }
  }

  /** Fewer than MAX_IN_FLIGHT segments at the workers, and fewer than MAX_QUEUED steps waiting. */
  private roomy(): boolean {
    return this.inFlight < MAX_IN_FLIGHT && this.queue.length < MAX_QUEUED;
  }

  /** Resolves once there is room for more input (at once without workers). */
  room(): Promise<void> | null {
    if (this.failure) throw this.failure;
    if (this.roomy()) return null;
    return new Promise<void>((r) => (this.wake = r)).then(() => {
      if (this.failure) throw this.failure;
    });
  }

  private async drained(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((r) => (this.wake = r));
    if (this.failure) throw this.failure;
    this.pump();
  }

  // ---- reading

  write(chunk: Buffer): void {
    if (!this.opts.failFast) this.whole.update(chunk);
    if (!this.stopped) this.tar.write(chunk);
  }

  private entry(name: string): void {
    this.small = [];
    if ((DATA_FILES as readonly string[]).includes(name)) {
      const f = name as DataFile;
      this.file = f;
      this.fileHash = createHash('sha256');
      this.fileBytes = 0;
      this.deferred = [];
      this.splitter = this.opts.failFast ? null : this.splitterFor(f);
    } else this.file = null;
  }

  private splitterFor(f: DataFile): Splitter {
    this.later(() => (this.lf = { f, base: 0, abandoned: false, lastKey: null, lastId: null }));
    return new Splitter(
      (seg, last) => this.segment(f, seg, last),
      () => this.later(() => this.overlongLine(f)),
      this.buffers,
      this.opts.segmentBytes,
    );
  }

  private data_(b: Buffer): void {
    if (!this.file) {
      this.small.push(b);
      return;
    }
    this.fileHash!.update(b);
    this.fileBytes += b.length;
    if (this.opts.failFast) this.deferred.push(b);
    else this.splitter!.write(b);
  }

  /**
   * A segment is checked by a worker when one has room (WORKER_QUEUE segments each), else here
   * and now: this thread keeps reading, hashing and applying, and takes a share of the parsing
   * whenever the workers are busy (two threads on two cores, whatever their speeds).
   */
  private segment(f: DataFile, bytes: Buffer, last: boolean): void {
    if (!this.workers || this.workers.pending >= this.workers.size * WORKER_QUEUE) {
      if (this.queue.length === 0) {
        // Nothing before it is pending: check and apply at once (in process, always this way).
        if (!this.stopped && !this.lf!.abandoned) this.apply(f, checkSegment(f, bytes, this.manifest?.tenant ?? null, last, this.opts.collect));
        this.buffers.put(bytes);
        return;
      }
      const r = checkSegment(f, bytes, this.manifest?.tenant ?? null, last, this.opts.collect);
      this.buffers.put(bytes);
      this.queue.push({ ready: true, run: () => this.apply(f, r) });
      return;
    }
    const step: Step = { ready: false, run: () => undefined };
    this.queue.push(step);
    this.inFlight++;
    this.workers.check(f, bytes, this.manifest?.tenant ?? null, last).then(
      (r) => {
        step.run = () => this.apply(f, r);
        step.ready = true;
        this.inFlight--;
        this.pump();
      },
      (e: Error) => {
        this.failure ??= e;
        step.ready = true;
        this.inFlight--;
        this.pump();
      },
    );
  }

  private entryEnd(name: string): void {
    if (name === MANIFEST) {
      const b = Buffer.concat(this.small);
      return this.later(() => this.onManifest(b));
    }
    if (name === SIGNATURE) {
      const b = Buffer.concat(this.small);
      return this.later(() => this.onSignature(b));
    }
    if (name === SUMS) {
      const b = Buffer.concat(this.small);
      return this.later(() => this.onSums(b));
    }
    const f = this.file!;
    const sha = this.fileHash!.digest('hex');
    const bytes = this.fileBytes;
    this.file = null;
    if (this.opts.failFast) {
      this.later(() => this.checkFile(f, sha, bytes));
      this.held.set(f, this.deferred);
      this.deferred = [];
      return;
    }
    this.splitter!.end();
    this.splitter = null;
    this.later(() => {
      this.endLines();
      this.checkFile(f, sha, bytes);
    });
  }

  // ---- line results, in file order

  /** A line the Splitter skipped: longer than the limit. */
  private overlongLine(f: DataFile): void {
    const L = this.lf!;
    if (this.stopped || L.abandoned) return;
    const n = ++L.base;
    this.add('LINE_NOT_CANONICAL', `${f} line ${n}: longer than ${MAX_LINE_BYTES} bytes`, { file: f, line: n });
  }

  private endLines(): void {
    const L = this.lf;
    if (L && !this.stopped) this.fileLines.set(L.f, L.abandoned ? -1 : L.base);
    this.lf = null;
  }

  private checkLines(f: DataFile): void {
    const e = this.manifest?.files.find((x) => x.name === f);
    const lines = this.fileLines.get(f) ?? 0;
    if (e && !this.stopped && lines >= 0 && e.lines !== lines) this.add('LINE_COUNT_MISMATCH', `${f}: ${lines} lines, the manifest says ${e.lines}`, { file: f });
  }

  private checkFile(f: DataFile, sha: string, bytes: number): void {
    if (this.stopped) return;
    const e = this.manifest?.files.find((x) => x.name === f);
    if (e) {
      if (e.bytes !== bytes) this.add('FILE_SIZE_MISMATCH', `${f}: ${bytes} bytes, the manifest says ${e.bytes}`, { file: f });
      if (!this.opts.failFast) this.checkLines(f);
      if (e.sha256 !== sha) this.add('FILE_HASH_MISMATCH', `${f}: sha256 ${sha}, the manifest says ${e.sha256}`, { file: f });
      const key = f.replace('.jsonl', '') as keyof Manifest['counts'];
      if (this.manifest!.counts[key] !== e.lines) this.add('COUNT_MISMATCH', `counts.${key} is ${this.manifest!.counts[key]}, files says ${e.lines} lines`, { file: f });
    }
  }

  /** Applies one segment's per-line results, in order, with the checks that need order. */
  private apply(f: DataFile, r: SegmentResult): void {
    const L = this.lf!;
    if (this.stopped || L.abandoned) return;
    const m = this.manifest;
    const codes = r.states.map((name) => this.stateCode(name));
    const ids32 = new Uint32Array(r.ids.buffer, r.ids.byteOffset, r.ids.byteLength / 4);
    const hashes32 = new Uint32Array(r.hashes.buffer, r.hashes.byteOffset, r.hashes.byteLength / 4);
    const prevs32 = new Uint32Array(r.prevs.buffer, r.prevs.byteOffset, r.prevs.byteLength / 4);
    const byId = f === 'jobs.jsonl' || f === 'snapshots.jsonl';
    let ok = 0;
    let why = 0;
    let tenant = 0;
    let big = 0;
    for (let i = 0; i < r.lines && !this.stopped; i++) {
      const ln = L.base + i + 1;
      const kind = r.kinds[i];
      if (kind === LINE_NOT_CANONICAL) {
        this.add('LINE_NOT_CANONICAL', `${f} line ${ln}: ${r.whys[why++]}`, { file: f, line: ln });
        continue;
      }
      this.lineTotal++;
      if (kind === LINE_INVALID) {
        this.add('LINE_INVALID', `${f} line ${ln}: ${r.whys[why++]}`, { file: f, line: ln });
        continue;
      }
      const j = ok++;
      if (m && !(r.flags[j]! & TENANT_OK)) this.add('TENANT_MISMATCH', `${f} line ${ln}: tenant ${r.tenants[tenant++]}, the bundle is for ${m.tenant}`, { file: f, line: ln });
      const v = r.values?.[j];
      if (byId) {
        if (L.lastId !== null && compareIds(r.ids, j, L.lastId, 0) <= 0)
          this.add('SORT_ORDER', `${f} line ${ln}: ${idText(r.ids, j * ID_BYTES)} is not after ${idText(L.lastId, 0)}`, { file: f, line: ln });
        (L.lastId ??= new Uint8Array(ID_BYTES)).set(r.ids.subarray(j * ID_BYTES, (j + 1) * ID_BYTES));
        if (f === 'jobs.jsonl') this.onJob(r, ids32, j, codes[r.state[j]!]!, v as Job | undefined);
        else this.onSnapshot(r, ids32, hashes32, j, ln, v as Snapshot | undefined);
        continue;
      }
      const p = r.pos[j]!;
      const key: Pos = Number.isNaN(p) ? BigInt(r.bigPos[big++]!) : p;
      if (L.lastKey !== null && !(key > L.lastKey)) this.add('SORT_ORDER', `${f} line ${ln}: ${String(key)} is not after ${String(L.lastKey)}`, { file: f, line: ln });
      L.lastKey = key;
      if (f === 'history.jsonl') this.onHistory(r, ids32, hashes32, prevs32, j, key, codes[r.state[j]!]!, ln, v as HistoryRow | undefined);
      else if (f === 'throttles.jsonl') this.onThrottle(key, ln, v as Throttle | undefined);
      else this.onQueue(key, ln, v as QueueEvent | undefined);
    }
    L.base += r.lines;
    if (r.abandoned) L.abandoned = true;
  }

  private stateCode(name: string): number {
    let k = this.stateCodes.get(name);
    if (k === undefined) {
      k = this.stateNames.push(name) - 1;
      this.stateCodes.set(name, k);
    }
    return k;
  }

  private onManifest(b: Buffer): void {
    this.manifestBytes = b;
    this.manifestSha256 = sha256Hex(b);
    let v: unknown;
    try {
      v = JSON.parse(b.toString('utf8'));
    } catch {
      this.add('MANIFEST_INVALID', 'manifest.json is not JSON');
      return;
    }
    const version = readableVersion(v);
    if (version === null) {
      this.add('MANIFEST_VERSION', 'manifest.json is not format okit-audit-bundle version 1, 2 or 3');
      return;
    }
    this.version = version;
    if (this.tar.version !== null && tarEncodingOf(version) !== this.tar.version) {
      this.add('MANIFEST_VERSION', `manifest.json says version ${version}, but the tar headers are format v${this.tar.version}'s`);
      return;
    }
    let canonical = false;
    try {
      canonical = canonicalize(v) === b.toString('utf8') && Buffer.from(canonicalize(v), 'utf8').equals(b);
    } catch {
      /* not canonical */
    }
    if (!canonical) this.add('MANIFEST_INVALID', 'manifest.json is not RFC 8785 canonical JSON');
    const ps = manifestProblems(v);
    for (const p of ps) this.add('MANIFEST_INVALID', `manifest.json: ${p}`);
    if (ps.length === 0) {
      this.manifest = v as Manifest;
      if (this.tar.mtime !== null && BigInt(this.tar.mtime) !== parseMicros(this.manifest.as_of) / 1000000n)
        this.add('TAR_MTIME_MISMATCH', `tar mtime ${this.tar.mtime} is not the as_of seconds of ${this.manifest.as_of}`);
    }
  }

  private onSignature(sig: Buffer): void {
    if (this.opts.failFast && this.heldSig === null) {
      this.heldSig = sig;
      return;
    }
    const m = this.manifest;
    if (!m || !this.manifestBytes) return;
    const k = this.opts.pubkeys.find((p) => p.key.keyId === m.key_id);
    if (!k) {
      this.add('KEY_UNKNOWN', `the bundle is signed by key ${m.key_id}, which is none of: ${this.opts.pubkeys.map((p) => `${p.key.keyId} (${p.label})`).join(', ') || 'no key given'}`);
      return;
    }
    this.keyLabel = `${m.key_id} (${k.label})`;
    if (sig.length !== SIGNATURE_BYTES || !verifySignature(k.key, this.manifestBytes, sig))
      this.add('SIGNATURE_INVALID', `manifest.sig is not key ${m.key_id}'s Ed25519 signature of manifest.json`);
  }

  private onSums(b: Buffer): void {
    const m = this.manifest;
    if (!m) return;
    const expected = renderSums(m.files.slice(1));
    const e = m.files[0]!;
    const sha = sha256Hex(b);
    if (!b.equals(expected) || sha !== e.sha256 || b.length !== e.bytes || e.lines !== m.files.length - 1)
      this.add('SUMS_MISMATCH', 'SHA256SUMS does not list exactly the data files and hashes of the manifest');
  }

  private inWindow(pos: Pos, f: string, ln: number): void {
    const m = this.manifest;
    if (!m) return;
    const w = (this.win ??= [posOf(m.window.from_pos), posOf(m.window.to_pos)]);
    if (pos < w[0] || pos > w[1])
      this.add('POSITION_OUT_OF_WINDOW', `${f} line ${ln}: position ${pos} is outside ${m.window.from_pos}..${m.window.to_pos}`, { file: f, line: ln });
  }

  private onJob(r: SegmentResult, ids32: Uint32Array, j: number, state: number, row: Job | undefined): void {
    // A repeated id (a SORT_ORDER problem already) starts over, as a map entry would.
    let i = this.jobs.find(ids32, j);
    if (i === -1) i = this.jobs.insert(ids32, j);
    this.jHistoryN.a[i] = r.n[j]!;
    this.jLast.a.set(r.hashes.subarray(j * 32, j * 32 + 32), i * 32);
    this.jState.a[i] = state;
    this.jN.a[i] = 0;
    this.jPos.a[i] = 0;
    this.jTo.a[i] = -1;
    this.jFlags.a[i] = 0;
    if (row) this.data?.jobs.push(row);
  }

  private posAt(i: number): Pos {
    const p = this.jPos.a[i]!;
    return Number.isNaN(p) ? this.bigPosOf.get(i)! : p;
  }

  private onHistory(
    s: SegmentResult, ids32: Uint32Array, hashes32: Uint32Array, prevs32: Uint32Array, j: number, pos: Pos, to: number, ln: number, row: HistoryRow | undefined,
  ): void {
    const n = s.n[j]!;
    const prevNull = (s.flags[j]! & PREV_NULL) !== 0;
    this.historyRows++;
    this.inWindow(pos, 'history.jsonl', ln);
    this.histPos(pos);
    const i = this.jobs.find(ids32, j);
    // Text only when a message or a map needs it.
    let id: string | null = null;
    const jobId = () => (id ??= idText(s.ids, j * ID_BYTES));
    const at = () => ({ file: 'history.jsonl', line: ln, job_id: jobId() });
    if (i === -1) this.add('JOB_MISSING', `history.jsonl line ${ln}: job ${jobId()} is not in jobs.jsonl`, at());
    // The line is canonical, so the row's hashed content is the line without its hash member.
    if (!(s.flags[j]! & HASH_OK)) this.add('CHAIN_HASH_MISMATCH', `history.jsonl line ${ln}: row n=${n} of job ${jobId()} does not hash to its hash`, at());
    const inTable = i !== -1 && this.jN.a[i]! > 0;
    const first = !inTable;
    // The row before: this job's last row here, else one carried from earlier bundles.
    let prevN = 0;
    let prevPos: Pos = 0;
    let linked = false;
    let found = inTable;
    if (inTable) {
      prevN = this.jN.a[i]!;
      prevPos = this.posAt(i);
      linked = !prevNull && sameHash(prevs32, j, this.jHash.w, i);
    } else if (this.orphans.size || this.anchors.size) {
      const h = this.orphans.get(jobId()) ?? this.anchors.get(jobId());
      if (h) {
        found = true;
        prevN = h.n;
        prevPos = h.posN;
        linked = !prevNull && hashText(s.prevs, j * 32) === h.hash;
      }
    }
    if (found) {
      if (first) this.anchored++;
      if (n !== prevN + 1) this.add('CHAIN_GAP', `history.jsonl line ${ln}: job ${jobId()} row n=${n} follows n=${prevN}`, at());
      if (!linked) this.add('CHAIN_LINK_BROKEN', `history.jsonl line ${ln}: job ${jobId()} row n=${n} does not link to the row before it`, at());
      if (pos <= prevPos) this.add('CHAIN_ORDER', `history.jsonl line ${ln}: job ${jobId()} row n=${n} at ${String(pos)} is not after ${prevPos}`, at());
    } else if (n === 1) {
      if (!prevNull) this.add('CHAIN_LINK_BROKEN', `history.jsonl line ${ln}: job ${jobId()} row n=1 has a prev_hash`, at());
    } else if (this.chainComplete) {
      this.add('CHAIN_GAP', `history.jsonl line ${ln}: job ${jobId()} starts at n=${n} but no earlier row exists in the bundle chain`, at());
    } else {
      this.unanchored++;
      if (prevNull) this.add('CHAIN_LINK_BROKEN', `history.jsonl line ${ln}: job ${jobId()} row n=${n} has no prev_hash`, at());
    }
    if (i !== -1) {
      if (this.jN.a[i] === 0) this.inBundle++;
      this.jN.a[i] = n;
      this.jHash.a.set(s.hashes.subarray(j * 32, j * 32 + 32), i * 32);
      if (typeof pos === 'number') this.jPos.a[i] = pos;
      else {
        this.jPos.a[i] = NaN;
        this.bigPosOf.set(i, pos);
      }
      this.jTo.a[i] = to;
      // The job row names its latest row: compare when it passes, then never again.
      const fl = this.jFlags.a[i]!;
      const hn = this.jHistoryN.a[i]!;
      if (n === hn) {
        const head = !(fl & LAST_SEEN) && sameHash(this.jLast.w, i, hashes32, j) && this.jState.a[i] === to;
        this.jFlags.a[i] = (fl | LAST_SEEN) & ~HEAD_OK | (head ? HEAD_OK : 0);
      } else if (n > hn) this.jFlags.a[i] = fl & ~HEAD_OK;
    } else {
      if (!this.orphans.has(jobId())) this.inBundle++;
      this.orphans.set(jobId(), { n, hash: hashText(s.hashes, j * 32), posN: pos, to_state: this.stateNames[to]! });
    }
    if (row) this.data?.history.push(row);
  }

  /** Every job's last row so far (earlier bundles and this one): the anchors of the next bundle. */
  chainHeads(): Map<string, ChainHead> {
    const m = new Map(this.anchors);
    for (const [id, h] of this.orphans) m.set(id, h);
    for (let i = 0; i < this.jobs.count; i++)
      if (this.jN.a[i]! > 0) m.set(this.jobs.id(i), { n: this.jN.a[i]!, hash: hashText(this.jHash.a, i * 32), posN: this.posAt(i), to_state: this.stateNames[this.jTo.a[i]!]! });
    return m;
  }

  private onThrottle(pos: Pos, ln: number, t: Throttle | undefined): void {
    this.inWindow(pos, 'throttles.jsonl', ln);
    this.thrPos(pos);
    if (t) this.data?.throttles.push(t);
  }

  private onQueue(pos: Pos, ln: number, e: QueueEvent | undefined): void {
    this.inWindow(pos, 'queues.jsonl', ln);
    this.queuePos(pos);
    if (e) this.data?.queues.push(e);
  }

  private onSnapshot(s: SegmentResult, ids32: Uint32Array, hashes32: Uint32Array, j: number, ln: number, row: Snapshot | undefined): void {
    const jobId = idText(s.ids, j * ID_BYTES);
    const at = { file: 'snapshots.jsonl', line: ln, job_id: jobId };
    const i = this.jobs.find(ids32, j);
    this.snapshots++;
    if (i !== -1) this.jFlags.a[i]! |= HAS_SNAPSHOT;
    const n = i === -1 ? 0 : this.jN.a[i]!;
    if (i === -1 || n === 0 || this.jHistoryN.a[i] !== n) {
      this.add('SNAPSHOT_UNEXPECTED', `snapshots.jsonl line ${ln}: job ${jobId}'s latest row is not in this bundle`, at);
    } else if (s.n[j] !== n || !sameHash(hashes32, j, this.jHash.w, i))
      this.add('SNAPSHOT_HEAD_MISMATCH', `snapshots.jsonl line ${ln}: job ${jobId}'s snapshot is of row n=${s.n[j]}, its latest row is n=${n}`, at);
    if (row) this.data?.snapshots.push(row);
  }

  /** End of input: structural completeness, positions, job heads, snapshots. */
  async finish(): Promise<void> {
    if (this.stopped) return;
    this.tar.end();
    await this.drained();
    const m = this.manifest;
    if (!m || this.tar.failed || this.stopped) return;
    if (this.opts.failFast) {
      if (this.heldSig) this.onSignature(this.heldSig);
      for (const [f, chunks] of this.held) {
        if (this.stopped) return;
        const sp = this.splitterFor(f);
        for (const b of chunks) sp.write(b);
        sp.end();
        this.endLines();
        this.checkLines(f);
      }
      if (this.stopped) return;
    }
    // positions: history ∪ throttles ∪ queues = [from_pos, to_pos], each once
    for (const p of this.cover.problems(BigInt(m.window.from_pos), BigInt(m.window.to_pos))) this.add(p.code, p.message);
    for (let i = 0; i < this.jobs.count; i++) {
      const n = this.jN.a[i]!;
      const hn = this.jHistoryN.a[i]!;
      const fl = this.jFlags.a[i]!;
      if (n === 0) {
        const id = this.jobs.id(i);
        this.add('JOB_WITHOUT_HISTORY', `job ${id} has no history row in this bundle`, { job_id: id });
        continue;
      }
      if (hn < n || (hn === n && !(fl & HEAD_OK))) {
        const id = this.jobs.id(i);
        this.add('JOB_HEAD_MISMATCH', `job ${id} records ${hn} rows (state ${this.stateNames[this.jState.a[i]!]}), its chain here ends at n=${n} (${this.stateNames[this.jTo.a[i]!]})`, { job_id: id });
      }
      if (hn === n && !(fl & HAS_SNAPSHOT)) {
        const id = this.jobs.id(i);
        this.add('SNAPSHOT_MISSING', `job ${id}'s latest row is in this bundle but it has no snapshot`, { job_id: id });
      }
    }
  }

  evidence(prevLine: string | null): string[] {
    const m = this.manifest!;
    const ok = (id: string) => !CHECKS.find((c) => c.id === id)!.codes.some((c) => this.codes.has(c));
    const lines: Record<string, string> = {
      tar: `tar: exactly ${entriesOf(m.version).length} regular files in order, canonical v${this.tar.version} ustar headers (mode 0644, uid/gid 0, mtime ${this.tar.mtime}), zero padding, two end blocks, nothing after`,
      manifest: `manifest: canonical ${m.format} v${m.version}, tenant ${m.tenant}, positions ${m.window.from_pos}..${m.window.to_pos}, as of ${m.as_of}`,
      key: `key: key id ${this.keyLabel ?? m.key_id} is a trusted --pubkey`,
      signature: `signature: Ed25519 signature of manifest.json (sha256 ${this.manifestSha256}) verified`,
      sums: `SHA256SUMS: lists exactly the manifest's ${m.files.length - 1} data files and hashes`,
      files: `files: ${m.files.map((f) => `${f.name} ${f.bytes} B/${f.lines} lines`).join(', ')}: sha256, sizes, line counts and counts match`,
      lines: `lines: ${this.lineTotal} lines canonical JSON, sorted by their keys, all of tenant ${m.tenant}`,
      positions: `positions: ${m.counts.history} history rows + ${m.counts.throttles} throttle events${m.counts.queues !== undefined ? ` + ${m.counts.queues} queue events` : ''} use each position ${m.window.from_pos}..${m.window.to_pos} exactly once`,
      chains: `chains: ${this.historyRows} rows of ${this.inBundle} jobs hash-chained (${this.anchored} continued jobs linked to previous bundles${this.unanchored ? `, ${this.unanchored} continued jobs' first link not checkable without earlier bundles` : ''})`,
      jobs: `jobs: ${this.jobs.count} job rows agree with their chains; ${this.snapshots} snapshots, one for each job whose latest row is in the bundle`,
      previous: prevLine ?? '',
    };
    return CHECKS.filter((c) => ok(c.id) && lines[c.id]).map((c) => lines[c.id]!);
  }
}

async function* chunksOf(src: BundleSource): AsyncGenerator<Buffer> {
  if (Buffer.isBuffer(src)) {
    yield src;
    return;
  }
  for await (const c of createReadStream(src, { highWaterMark: 256 * 1024 })) yield c as Buffer;
}

function labelOf(src: BundleSource): string {
  return Buffer.isBuffer(src) ? '<buffer>' : src;
}

async function runOne(src: BundleSource, opts: VerifyOptions, anchors: Map<string, ChainHead>, chainComplete: boolean, workers: SegmentWorkers | null = null): Promise<Verifier> {
  const v = new Verifier(opts, anchors, chainComplete, workers);
  try {
    for await (const c of chunksOf(src)) {
      v.write(c);
      const wait = v.room();
      if (wait) await wait;
    }
  } catch (e) {
    if (e instanceof Error && /^verifier worker failed/.test(e.message)) throw e;
    v.add('IO_ERROR', `cannot read ${labelOf(src)}: ${(e as Error).message}`);
    return v;
  }
  await v.finish();
  return v;
}

/** How many workers verifyChain uses for these sources (see VerifyOptions.workers). */
async function workersFor(srcs: readonly BundleSource[], opts: VerifyOptions): Promise<number> {
  if (opts.workers !== undefined) return opts.collect || opts.failFast ? 0 : opts.workers;
  if (opts.collect || opts.failFast) return 0;
  let big = false;
  for (const s of srcs) if (typeof s === 'string') big ||= await stat(s).then((x) => x.size >= PARALLEL_MIN_BYTES, () => false);
  return big ? defaultWorkers() : 0;
}

/**
 * Reads only the manifest of a bundle (the first entry; no other checks, the rest is not
 * read): for ordering a --previous chain and for export.
 */
export async function peekManifest(src: BundleSource): Promise<{ manifest: Manifest; sha256: string } | null> {
  const v = new Verifier({ pubkeys: [] }, new Map(), false);
  try {
    for await (const c of chunksOf(src)) {
      v.write(c);
      if (v.manifestBytes || v.problems.length) break;
    }
  } catch {
    return null;
  }
  return v.manifest && v.manifestSha256 ? { manifest: v.manifest, sha256: v.manifestSha256 } : null;
}

export async function verifyBundle(src: BundleSource, opts: VerifyOptions): Promise<VerifyReport> {
  return (await verifyChain(src, opts)).report;
}

/** A verified earlier bundle of a chain: its source and what its verification found. */
export interface EarlierBundle {
  src: BundleSource;
  report: VerifyReport;
}

function partialReport(v: Verifier, src: BundleSource): VerifyReport {
  return {
    ok: v.problems.length === 0 && v.manifest !== null, label: labelOf(src), sha256: '', manifest: v.manifest, manifestSha256: v.manifestSha256,
    evidence: [], problems: v.problems, moreProblems: v.moreProblems, notes: v.notes, places: v.tar.places, stoppedAtContainer: v.tar.failed,
  };
}

/** verifyBundle, also returning the supplied previous bundles in chain order (for replay). */
export async function verifyChain(src: BundleSource, opts: VerifyOptions): Promise<{ report: VerifyReport; earlier: EarlierBundle[] }> {
  const n = await workersFor([src, ...(opts.previous ?? [])], opts);
  const workers = n > 0 ? new SegmentWorkers(n) : null;
  if (workers) workers.buffers = new SegmentBuffers();
  try {
    return await verifyChainWith(src, opts, workers);
  } finally {
    await workers?.close();
  }
}

async function verifyChainWith(src: BundleSource, opts: VerifyOptions, workers: SegmentWorkers | null): Promise<{ report: VerifyReport; earlier: EarlierBundle[] }> {
  // Previous bundles: verify each (oldest first), carrying chain heads forward.
  const prevReports: Array<{ v: Verifier; label: string; src: BundleSource }> = [];
  let anchors = new Map<string, ChainHead>();
  let chainComplete = false;
  const prevProblems: Finding[] = [];
  if (opts.previous?.length) {
    const peeked = [];
    for (const p of opts.previous) {
      const pm = await peekManifest(p);
      if (!pm) prevProblems.push({ code: 'PREVIOUS_INVALID', message: `${labelOf(p)}: not a readable bundle` });
      else peeked.push({ src: p, pm });
    }
    peeked.sort((a, b) => (BigInt(a.pm.manifest.window.from_pos) < BigInt(b.pm.manifest.window.from_pos) ? -1 : 1));
    chainComplete = peeked.length > 0 && peeked[0]!.pm.manifest.window.from_pos === '1' && peeked[0]!.pm.manifest.previous === null;
    let before: Verifier | null = null;
    for (const { src: p } of peeked) {
      const v = await runOne(p, { pubkeys: opts.pubkeys, collect: opts.collect, segmentBytes: opts.segmentBytes }, anchors, chainComplete, workers);
      if (v.problems.length) prevProblems.push({ code: 'PREVIOUS_INVALID', message: `${labelOf(p)}: ${v.problems.map((x) => x.code).join(', ')}` });
      if (before) linkProblems(before, v, labelOf(p), prevProblems);
      anchors = v.chainHeads();
      before = v;
      prevReports.push({ v, label: labelOf(p), src: p });
    }
    if (prevProblems.some((p) => p.code === 'PREVIOUS_GAP' || p.code === 'PREVIOUS_MISMATCH')) chainComplete = false;
  }
  const v = await runOne(src, opts, anchors, chainComplete, workers);
  const m = v.manifest;
  let prevLine: string | null = null;
  for (const p of prevProblems) v.add(p.code, p.message);
  if (m) {
    const last = prevReports[prevReports.length - 1];
    if (last) {
      linkProblems(last.v, v, labelOf(src), null);
      prevLine = `previous: links to ${last.label} (manifest sha256 ${last.v.manifestSha256}), positions continue at ${m.window.from_pos}${prevReports.length > 1 ? `; chain of ${prevReports.length} earlier bundles verified` : ''}`;
    } else if (m.previous === null) prevLine = 'previous: first bundle of its chain (no previous link)';
    else {
      v.notes.push(`PREVIOUS_NOT_CHECKED: the bundle continues the bundle whose manifest sha256 is ${m.previous}; supply it with --previous to check the link`);
      prevLine = `previous: link to ${m.previous} recorded but not checked (no --previous given)`;
    }
  }
  const ok = v.problems.length === 0 && v.moreProblems === 0 && m !== null;
  const stoppedAtContainer = v.tar.failed;
  if (stoppedAtContainer)
    v.notes.push('NOT_CHECKED: verification stopped at the tar container: the signature, the manifest and the contents were not checked (the tar must be exactly as okit writes it; docs/bundle-format.md §1 says how to recreate it)');
  const report: VerifyReport = {
    ok,
    label: labelOf(src),
    sha256: v.whole.digest('hex'),
    manifest: m,
    manifestSha256: v.manifestSha256,
    evidence: m ? v.evidence(prevLine) : [],
    problems: v.problems,
    moreProblems: v.moreProblems,
    notes: v.notes,
    places: v.tar.places,
    stoppedAtContainer,
    data: v.data,
    earlier: opts.collect ? prevReports.flatMap((p) => p.v.data?.history ?? []) : undefined,
  };
  return { report, earlier: prevReports.map((p) => ({ src: p.src, report: partialReport(p.v, p.src) })) };
}

/** later must link to earlier: previous hash and contiguous positions. */
function linkProblems(earlier: Verifier, later: Verifier, label: string, sink: Finding[] | null): void {
  const add = (code: VerifyCode, message: string) => (sink ? sink.push({ code, message }) : later.add(code, message));
  const a = earlier.manifest;
  const b = later.manifest;
  if (!a || !b) return;
  if (b.previous !== earlier.manifestSha256)
    add('PREVIOUS_MISMATCH', `${label} links to manifest ${b.previous ?? 'null'}, the bundle before it in the chain has manifest ${earlier.manifestSha256}`);
  if (BigInt(b.window.from_pos) !== BigInt(a.window.to_pos) + 1n)
    add('PREVIOUS_GAP', `${label} starts at position ${b.window.from_pos}, the bundle before it ends at ${a.window.to_pos}: a bundle is missing or overlaps`);
  if (a.tenant !== b.tenant) add('PREVIOUS_MISMATCH', `${label} is for tenant ${b.tenant}, the bundle before it for ${a.tenant}`);
}

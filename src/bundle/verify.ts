/**
 * Offline verification: an ordered pipeline over the tar stream (never extracted, no
 * database, no network). Every problem is collected with a stable code; each check that
 * passes prints one line of positive evidence. Keys come only from the caller (--pubkey).
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { HistoryRow, Job, Snapshot } from '../ledger/types.js';
import { canonicalize } from '../util/canonical.js';
import { parseMicros } from '../util/time.js';
import {
  DATA_FILES, entriesOf, MANIFEST, MAX_DATA_BYTES, MAX_MANIFEST_BYTES, MAX_SUMS_BYTES, SIGNATURE,
  SIGNATURE_BYTES, SUMS, tarEncodingOf, type DataFile, type Manifest, type VerifyCode,
} from './format.js';
import { verifySignature, type PublicKey } from './keys.js';
import { manifestProblems, readableVersion, renderSums } from './manifest.js';
import { historyPreimage, JsonlReader } from './jsonl.js';
import { HISTORY_SCHEMA, JOB_SCHEMA, QUEUE_SCHEMA, SNAPSHOT_SCHEMA, THROTTLE_SCHEMA, schemaProblem } from './lines.js';
import { PositionCover } from './positions.js';
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
  posN: bigint;
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
}

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


/** Compact per-job state (hundreds of thousands of jobs: no row is kept). */
interface JobState {
  history_n: number;
  state: string;
  /** The job row's last_hash until its row n = history_n is seen, then ''. */
  last_hash: string;
  /** Last row of the job in this bundle (0: none yet): its n, hash, position and state. */
  n: number;
  hash: string;
  posN: bigint;
  to_state: string;
  head_ok: boolean;
  snapshot: boolean;
}

/** The verifier's state over one bundle's byte stream. */
class Verifier {
  readonly problems: Finding[] = [];
  moreProblems = 0;
  private readonly codes = new Set<VerifyCode>();
  readonly notes: string[] = [];
  readonly whole = createHash('sha256');
  manifest: Manifest | null = null;
  manifestBytes: Buffer | null = null;
  manifestSha256: string | null = null;
  private small: Buffer[] = [];
  private file: DataFile | null = null;
  private fileHash: Hash | null = null;
  private fileBytes = 0;
  private fileLines = 0;
  private jsonl: JsonlReader | null = null;
  private lastKey: string | bigint | null = null;
  readonly tar: TarReader;
  private keyLabel: string | null = null;
  // content state
  /** Per job of jobs.jsonl: what its row says, and what its chain in this bundle shows. */
  private readonly jobs = new Map<string, JobState>();
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
  data: BundleData | undefined;

  constructor(
    private readonly opts: VerifyOptions,
    anchors: Map<string, ChainHead>,
    private readonly chainComplete: boolean,
  ) {
    this.anchors = anchors;
    if (opts.collect) this.data = { jobs: [], history: [], throttles: [], queues: [], snapshots: [] };
    this.tar = new TarReader(
      {
        entry: (name) => this.entry(name),
        data: (b) => this.data_(b),
        entryEnd: (name) => this.entryEnd(name),
        problem: (p) => this.add(p.code as VerifyCode, p.message),
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

  write(chunk: Buffer): void {
    if (!this.opts.failFast) this.whole.update(chunk);
    if (!this.stopped) this.tar.write(chunk);
  }

  private entry(name: string): void {
    this.small = [];
    if ((DATA_FILES as readonly string[]).includes(name)) {
      this.file = name as DataFile;
      this.fileHash = createHash('sha256');
      this.fileBytes = 0;
      this.fileLines = 0;
      this.lastKey = null;
      this.deferred = [];
      this.jsonl = null;
    } else this.file = null;
  }

  private data_(b: Buffer): void {
    if (!this.file) {
      this.small.push(b);
      return;
    }
    this.fileHash!.update(b);
    this.fileBytes += b.length;
    if (this.opts.failFast) this.deferred.push(b);
    else this.lines(b);
  }

  private lines(b: Buffer): void {
    if (this.stopped) return;
    if (!this.jsonl) {
      const f = this.file!;
      this.jsonl = new JsonlReader({
        line: (v, bytes, n) => this.line(f, v, bytes, n),
        bad: (n, why) => this.add('LINE_NOT_CANONICAL', `${f} line ${n}: ${why}`, { file: f, line: n }),
      });
    }
    this.jsonl.write(b);
  }

  private entryEnd(name: string): void {
    if (name === MANIFEST) return this.onManifest(Buffer.concat(this.small));
    if (name === SIGNATURE) return this.onSignature(Buffer.concat(this.small));
    if (name === SUMS) return this.onSums(Buffer.concat(this.small));
    const f = this.file!;
    if (this.opts.failFast) {
      this.checkFile(f);
      this.held.set(f, this.deferred);
      this.deferred = [];
      this.file = null;
      return;
    }
    this.endLines(f);
    this.checkFile(f);
    this.file = null;
  }

  private beginLines(f: DataFile): void {
    this.file = f;
    this.fileLines = 0;
    this.jsonl = null;
    this.lastKey = null;
  }

  private endLines(_f: DataFile): void {
    if (this.jsonl && !this.stopped) {
      this.jsonl.end();
      this.fileLines = this.jsonl.lines;
      if (this.jsonl.abandoned) this.fileLines = -1;
    }
    this.jsonl = null;
  }

  private checkLines(f: DataFile): void {
    const e = this.manifest?.files.find((x) => x.name === f);
    if (e && !this.stopped && this.fileLines >= 0 && e.lines !== this.fileLines) this.add('LINE_COUNT_MISMATCH', `${f}: ${this.fileLines} lines, the manifest says ${e.lines}`, { file: f });
  }

  private checkFile(f: DataFile): void {
    if (this.stopped) return;
    const sha = this.fileHash!.digest('hex');
    const e = this.manifest?.files.find((x) => x.name === f);
    if (e) {
      if (e.bytes !== this.fileBytes) this.add('FILE_SIZE_MISMATCH', `${f}: ${this.fileBytes} bytes, the manifest says ${e.bytes}`, { file: f });
      if (!this.opts.failFast) this.checkLines(f);
      if (e.sha256 !== sha) this.add('FILE_HASH_MISMATCH', `${f}: sha256 ${sha}, the manifest says ${e.sha256}`, { file: f });
      const key = f.replace('.jsonl', '') as keyof Manifest['counts'];
      if (this.manifest!.counts[key] !== e.lines) this.add('COUNT_MISMATCH', `counts.${key} is ${this.manifest!.counts[key]}, files says ${e.lines} lines`, { file: f });
    }
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

  private line(f: DataFile, v: unknown, bytes: Buffer, ln: number): void {
    const at = { file: f, line: ln };
    this.lineTotal++;
    const schema = f === 'jobs.jsonl' ? JOB_SCHEMA : f === 'history.jsonl' ? HISTORY_SCHEMA : f === 'throttles.jsonl' ? THROTTLE_SCHEMA : f === 'queues.jsonl' ? QUEUE_SCHEMA : SNAPSHOT_SCHEMA;
    const sp = schemaProblem(v, schema);
    if (sp) {
      this.add('LINE_INVALID', `${f} line ${ln}: ${sp}`, at);
      return;
    }
    const o = v as Record<string, unknown>;
    const m = this.manifest;
    if (m && o.tenant !== m.tenant) this.add('TENANT_MISMATCH', `${f} line ${ln}: tenant ${JSON.stringify(o.tenant)}, the bundle is for ${m.tenant}`, at);
    const key: string | bigint = f === 'jobs.jsonl' ? String(o.id) : f === 'snapshots.jsonl' ? String(o.job_id) : BigInt(String(o.pos));
    if (this.lastKey !== null && !(key > this.lastKey)) this.add('SORT_ORDER', `${f} line ${ln}: ${String(key)} is not after ${String(this.lastKey)}`, at);
    this.lastKey = key;
    if (f === 'jobs.jsonl') this.onJob(o as unknown as Job);
    else if (f === 'history.jsonl') this.onHistory(o as unknown as HistoryRow, ln, bytes);
    else if (f === 'throttles.jsonl') this.onThrottle(o as unknown as Throttle, ln);
    else if (f === 'queues.jsonl') this.onQueue(o as unknown as QueueEvent, ln);
    else this.onSnapshot(o as unknown as Snapshot, ln);
  }

  private win: [bigint, bigint] | null = null;

  private inWindow(pos: bigint, f: string, ln: number): void {
    const m = this.manifest;
    if (!m) return;
    const w = (this.win ??= [BigInt(m.window.from_pos), BigInt(m.window.to_pos)]);
    if (pos < w[0] || pos > w[1])
      this.add('POSITION_OUT_OF_WINDOW', `${f} line ${ln}: position ${pos} is outside ${m.window.from_pos}..${m.window.to_pos}`, { file: f, line: ln });
  }

  private onJob(j: Job): void {
    this.jobs.set(j.id, { history_n: j.history_n, last_hash: j.last_hash, state: j.state, n: 0, hash: '', posN: 0n, to_state: '', head_ok: false, snapshot: false });
    this.data?.jobs.push(j);
  }

  private onHistory(r: HistoryRow, ln: number, bytes: Buffer): void {
    const at = { file: 'history.jsonl', line: ln, job_id: r.job_id };
    // (One small object per row; the checks below allocate nothing more on the happy path.)
    this.historyRows++;
    const pos = BigInt(r.pos);
    this.inWindow(pos, 'history.jsonl', ln);
    this.histPos(pos);
    const job = this.jobs.get(r.job_id);
    if (!job) this.add('JOB_MISSING', `history.jsonl line ${ln}: job ${r.job_id} is not in jobs.jsonl`, at);
    // The line is canonical, so the row's hashed content is the line without its hash member.
    const pre = historyPreimage(bytes);
    const h = pre ? createHash('sha256').update(pre[0]).update(pre[1]).digest('hex') : '';
    if (h !== r.hash) this.add('CHAIN_HASH_MISMATCH', `history.jsonl line ${ln}: row n=${r.n} of job ${r.job_id} does not hash to its hash`, at);
    const first = !job || job.n === 0;
    const prev: ChainHead | undefined = job && job.n > 0 ? job : (this.orphans.get(r.job_id) ?? this.anchors.get(r.job_id));
    if (prev) {
      if (first) this.anchored++;
      if (r.n !== prev.n + 1) this.add('CHAIN_GAP', `history.jsonl line ${ln}: job ${r.job_id} row n=${r.n} follows n=${prev.n}`, at);
      if (r.prev_hash !== prev.hash) this.add('CHAIN_LINK_BROKEN', `history.jsonl line ${ln}: job ${r.job_id} row n=${r.n} does not link to the row before it`, at);
      if (pos <= prev.posN) this.add('CHAIN_ORDER', `history.jsonl line ${ln}: job ${r.job_id} row n=${r.n} at ${r.pos} is not after ${prev.posN}`, at);
    } else if (r.n === 1) {
      if (r.prev_hash !== null) this.add('CHAIN_LINK_BROKEN', `history.jsonl line ${ln}: job ${r.job_id} row n=1 has a prev_hash`, at);
    } else if (this.chainComplete) {
      this.add('CHAIN_GAP', `history.jsonl line ${ln}: job ${r.job_id} starts at n=${r.n} but no earlier row exists in the bundle chain`, at);
    } else {
      this.unanchored++;
      if (r.prev_hash === null) this.add('CHAIN_LINK_BROKEN', `history.jsonl line ${ln}: job ${r.job_id} row n=${r.n} has no prev_hash`, at);
    }
    if (job) {
      if (job.n === 0) this.inBundle++;
      job.n = r.n;
      job.hash = r.hash;
      job.posN = pos;
      job.to_state = r.to_state;
      // The job row names its latest row: compare when it passes, then forget the hash.
      if (r.n === job.history_n) {
        job.head_ok = job.last_hash === r.hash && job.state === r.to_state;
        job.last_hash = '';
      } else if (r.n > job.history_n) job.head_ok = false;
    }
    else {
      if (!this.orphans.has(r.job_id)) this.inBundle++;
      this.orphans.set(r.job_id, { n: r.n, hash: r.hash, posN: pos, to_state: r.to_state });
    }
    this.data?.history.push(r);
  }

  /** Every job's last row so far (earlier bundles and this one): the anchors of the next bundle. */
  chainHeads(): Map<string, ChainHead> {
    const m = new Map(this.anchors);
    for (const [id, h] of this.orphans) m.set(id, h);
    for (const [id, j] of this.jobs) if (j.n > 0) m.set(id, { n: j.n, hash: j.hash, posN: j.posN, to_state: j.to_state });
    return m;
  }

  private onThrottle(t: Throttle, ln: number): void {
    const pos = BigInt(t.pos);
    this.inWindow(pos, 'throttles.jsonl', ln);
    this.thrPos(pos);
    this.data?.throttles.push(t);
  }

  private onQueue(e: QueueEvent, ln: number): void {
    const pos = BigInt(e.pos);
    this.inWindow(pos, 'queues.jsonl', ln);
    this.queuePos(pos);
    this.data?.queues.push(e);
  }

  private onSnapshot(s: Snapshot, ln: number): void {
    const at = { file: 'snapshots.jsonl', line: ln, job_id: s.job_id };
    const job = this.jobs.get(s.job_id);
    this.snapshots++;
    if (job) job.snapshot = true;
    const last = job;
    if (!job || !last || job.n === 0 || job.history_n !== job.n) {
      this.add('SNAPSHOT_UNEXPECTED', `snapshots.jsonl line ${ln}: job ${s.job_id}'s latest row is not in this bundle`, at);
    } else if (s.history_n !== last.n || s.history_hash !== last.hash)
      this.add('SNAPSHOT_HEAD_MISMATCH', `snapshots.jsonl line ${ln}: job ${s.job_id}'s snapshot is of row n=${s.history_n}, its latest row is n=${last.n}`, at);
    this.data?.snapshots.push(s);
  }

  /** End of input: structural completeness, positions, job heads, snapshots. */
  finish(): void {
    if (this.stopped) return;
    this.tar.end();
    const m = this.manifest;
    if (!m || this.tar.failed) return;
    if (this.opts.failFast) {
      if (this.heldSig) this.onSignature(this.heldSig);
      for (const [f, chunks] of this.held) {
        this.beginLines(f);
        for (const b of chunks) this.lines(b);
        this.endLines(f);
        this.checkLines(f);
      }
      this.file = null;
      if (this.stopped) return;
    }
    // positions: history ∪ throttles ∪ queues = [from_pos, to_pos], each once
    for (const p of this.cover.problems(BigInt(m.window.from_pos), BigInt(m.window.to_pos))) this.add(p.code, p.message);
    for (const [id, j] of this.jobs) {
      if (j.n === 0) {
        this.add('JOB_WITHOUT_HISTORY', `job ${id} has no history row in this bundle`, { job_id: id });
        continue;
      }
      if (j.history_n < j.n || (j.history_n === j.n && !j.head_ok)) {
        this.add('JOB_HEAD_MISMATCH', `job ${id} records ${j.history_n} rows (state ${j.state}), its chain here ends at n=${j.n} (${j.to_state})`, { job_id: id });
      }
      if (j.history_n === j.n && !j.snapshot) this.add('SNAPSHOT_MISSING', `job ${id}'s latest row is in this bundle but it has no snapshot`, { job_id: id });
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
      jobs: `jobs: ${this.jobs.size} job rows agree with their chains; ${this.snapshots} snapshots, one for each job whose latest row is in the bundle`,
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

async function runOne(src: BundleSource, opts: VerifyOptions, anchors: Map<string, ChainHead>, chainComplete: boolean): Promise<Verifier> {
  const v = new Verifier(opts, anchors, chainComplete);
  try {
    for await (const c of chunksOf(src)) v.write(c);
  } catch (e) {
    v.add('IO_ERROR', `cannot read ${labelOf(src)}: ${(e as Error).message}`);
    return v;
  }
  v.finish();
  return v;
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
      const v = await runOne(p, { pubkeys: opts.pubkeys, collect: opts.collect }, anchors, chainComplete);
      if (v.problems.length) prevProblems.push({ code: 'PREVIOUS_INVALID', message: `${labelOf(p)}: ${v.problems.map((x) => x.code).join(', ')}` });
      if (before) linkProblems(before, v, labelOf(p), prevProblems);
      anchors = v.chainHeads();
      before = v;
      prevReports.push({ v, label: labelOf(p), src: p });
    }
    if (prevProblems.some((p) => p.code === 'PREVIOUS_GAP' || p.code === 'PREVIOUS_MISMATCH')) chainComplete = false;
  }
  const v = await runOne(src, opts, anchors, chainComplete);
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

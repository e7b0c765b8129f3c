/**
 * Export: one REPEATABLE READ READ ONLY transaction, rows streamed through server-side
 * cursors into temp files (hashed on the way), every exported job's chain checked, then the
 * tar assembled by streaming into a temp file renamed into place. Memory stays flat: the
 * only per-row state lives in the database and on disk.
 */
import { createHash } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync, type WriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import type { Pool } from '../db/pool.js';
import type { HistoryRow } from '../ledger/types.js';
import { OkitError } from '../errors.js';
import { rowHash } from '../ledger/chain.js';
import { HISTORY_COLUMNS, JOB_COLUMNS, SNAPSHOT_COLUMNS, json, toHistory, toJob, toSnapshot, ts } from '../ledger/rows.js';
import { canonicalize, inexactNumber } from '../util/canonical.js';
import { normalizeTimestamp, parseMicros } from '../util/time.js';
import { DATA_FILES, EPOCH_AS_OF, FORMAT_ID, FORMAT_VERSION, MANIFEST, SIGNATURE, SUMS, type DataFile, type FileEntry, type Manifest } from './format.js';
import { sign, type SigningKey } from './keys.js';
import { renderManifest, renderSums } from './manifest.js';
import { historyLineHash } from './jsonl.js';
import { hashText, ID_BYTES, JobTable, sameHash, writeHash, writeId } from './jobtable.js';
import { PositionCover } from './positions.js';
import { END_BYTES, padding, tarHeader } from './tar.js';
import { sha256Hex } from '../util/hash.js';

export interface PreviousRef {
  manifest: Manifest;
  /** sha256 of the previous manifest.json bytes. */
  manifestSha256: string;
}

export interface ExportOptions {
  tenant: string;
  key: SigningKey;
  from?: string | null;
  to?: string | null;
  previous?: PreviousRef | null;
  outDir: string;
  /** Rows per FETCH. */
  batch?: number;
  /** Aborting stops the export at the next batch or file; nothing is left behind. */
  signal?: AbortSignal;
}

export interface ExportResult {
  path: string;
  sha256: string;
  bytes: number;
  manifest: Manifest;
}

/** Postgres work_mem for the export's transaction. */
const EXPORT_WORK_MEM = '64MB';

/** Lines are gathered into blocks of this size, each hashed and written once. */
const WRITE_BLOCK = 256 * 1024;

class LineFile {
  readonly hash = createHash('sha256');
  bytes = 0;
  lines = 0;
  private readonly ws: WriteStream;
  private block = Buffer.allocUnsafe(WRITE_BLOCK);
  private used = 0;
  constructor(readonly path: string) {
    this.ws = createWriteStream(path);
  }
  async write(line: string): Promise<void> {
    this.lines++;
    // Room for the line as UTF-8 (at most 3 bytes per UTF-16 unit) and its \n.
    if (this.used + line.length * 3 + 1 > this.block.length) {
      await this.flush();
      if (line.length * 3 + 1 > this.block.length) this.block = Buffer.allocUnsafe(line.length * 3 + 1);
    }
    const n = this.block.write(line, this.used, 'utf8');
    this.block[this.used + n] = 0x0a;
    this.used += n + 1;
    this.bytes += n + 1;
  }
  private async flush(): Promise<void> {
    if (!this.used) return;
    const b = this.block.subarray(0, this.used);
    this.hash.update(b);
    // The stream keeps the buffer until written: the next lines go to a new one.
    this.block = Buffer.allocUnsafe(WRITE_BLOCK);
    this.used = 0;
    if (!this.ws.write(b)) await new Promise<void>((r) => this.ws.once('drain', () => r()));
  }
  async close(): Promise<string> {
    await this.flush();
    await new Promise<void>((res, rej) => this.ws.end((e?: Error | null) => (e ? rej(e) : res())));
    return this.hash.digest('hex');
  }
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new OkitError('INTERRUPTED', `export interrupted${signal.reason instanceof Error ? '' : ` by ${String(signal.reason)}`}: nothing was written`);
}

/**
 * A server-side cursor, read FETCH by FETCH with the next one always in flight: Postgres
 * produces batch k+1 while this process turns batch k into lines (two cores, both busy).
 */
async function* cursor(c: pg.PoolClient, name: string, sql: string, params: unknown[], batch: number, signal?: AbortSignal): AsyncGenerator<Record<string, unknown>> {
  await c.query(`DECLARE ${name} NO SCROLL CURSOR FOR ${sql}`, params);
  const fetch = () => {
    const q = c.query(`FETCH ${batch} FROM ${name}`);
    q.catch(() => undefined); // awaited below; never an unhandled rejection if the export stops first
    return q;
  };
  let next = fetch();
  for (;;) {
    checkAborted(signal);
    const { rows } = await next;
    const more = rows.length === batch;
    if (more) next = fetch();
    for (const r of rows) yield r;
    if (!more) break;
  }
  await c.query(`CLOSE ${name}`);
}

interface ChainIssue {
  job_id: string;
  message: string;
}

/** A history row's content must hash to its hash (the line, once canonical, is that content). */
function contentIssue(r: HistoryRow, line?: string): ChainIssue | null {
  let h = '';
  try {
    h = (line === undefined ? null : historyLineHash(line)) ?? rowHash(r);
  } catch {
    /* unhashable content is a mismatch */
  }
  return h === r.hash ? null : { job_id: r.job_id, message: `row n=${r.n} (pos ${r.pos}) does not match its hash` };
}

/**
 * Every exported job's chain, checked as its rows stream by in position order (the rows before
 * the window first): each row must be its job's next (n + 1, linking to the last row's hash)
 * or its first (n = 1 without prev_hash, or the successor of an anchor in a database loaded by
 * `replay --into`). Per exported job, in typed arrays (jobtable.ts): the job row's history_n and
 * last_hash, and the last row seen: about 110 bytes a job, no object or string per job; no
 * self-join in the database (its random reads cost more than the rows' own scan).
 */
class Chains {
  private readonly jobs = new JobTable();
  private readonly historyN = this.jobs.float();
  private readonly lastHash = this.jobs.hashes();
  private readonly n = this.jobs.float();
  private readonly hash = this.jobs.hashes();
  private readonly key = Buffer.alloc(ID_BYTES);
  private readonly keyW = new Uint32Array(this.key.buffer, this.key.byteOffset, ID_BYTES / 4);
  private readonly scratch = Buffer.alloc(32);
  private readonly scratchW = new Uint32Array(this.scratch.buffer, this.scratch.byteOffset, 8);

  /** anchors: job id → n → hash (okit.bundle_anchors). */
  constructor(private readonly anchors: Map<string, Map<number, string>>) {}

  private find(id: string): number {
    writeId(id, this.key, 0);
    return this.jobs.find(this.keyW, 0);
  }

  job(id: string, historyN: number, lastHash: string): void {
    writeId(id, this.key, 0);
    const i = this.jobs.insert(this.keyW, 0);
    this.historyN.a[i] = historyN;
    writeHash(lastHash, this.lastHash.a, i * 32);
  }

  row(r: HistoryRow): ChainIssue | null {
    const i = this.find(r.job_id);
    if (i === -1) return { job_id: r.job_id, message: `row n=${r.n} (pos ${r.pos}) belongs to no exported job` };
    const last = this.n.a[i]!;
    let issue: ChainIssue | null = null;
    if (last === 0) {
      const anchor = r.n > 1 ? this.anchors.get(r.job_id)?.get(r.n - 1) : undefined;
      if (r.n > 1 && anchor === undefined) issue = { job_id: r.job_id, message: `row n=${r.n - 1} is missing` };
      else if (r.prev_hash !== (anchor ?? null)) issue = { job_id: r.job_id, message: `row n=${r.n} (pos ${r.pos}) does not link to row n=${r.n - 1}` };
    } else if (r.n !== last + 1) issue = { job_id: r.job_id, message: `row n=${r.n} (pos ${r.pos}) does not follow row n=${last}: a row is missing or out of order` };
    else {
      if (r.prev_hash !== null) writeHash(r.prev_hash, this.scratch, 0);
      if (r.prev_hash === null || !sameHash(this.scratchW, 0, this.hash.w, i)) issue = { job_id: r.job_id, message: `row n=${r.n} (pos ${r.pos}) does not link to row n=${r.n - 1}` };
    }
    this.n.a[i] = r.n;
    writeHash(r.hash, this.hash.a, i * 32);
    return issue;
  }

  /**
   * When every row of the ledger up to its head has been seen (the window is not cut): each job
   * row must name its chain's last row (or, loaded from a bundle, the anchor of one beyond).
   */
  heads(note: (i: ChainIssue) => void): void {
    for (let i = 0; i < this.jobs.count; i++) {
      const hn = this.historyN.a[i]!;
      const n = this.n.a[i]!;
      let ok: boolean;
      if (n === hn) ok = sameHash(this.lastHash.w, i, this.hash.w, i);
      else if (n < hn) ok = this.anchors.get(this.jobs.id(i))?.get(hn) === hashText(this.lastHash.a, i * 32);
      else ok = false;
      if (!ok) note({ job_id: this.jobs.id(i), message: `the job row records ${hn} rows ending in ${hashText(this.lastHash.a, i * 32).slice(0, 12)}…, its history disagrees` });
    }
  }
}

function maxTs(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return parseMicros(a) >= parseMicros(b) ? a : b;
}

/** Resolves the window [from_pos, to_pos] and as_of inside the export transaction. */
async function resolveWindow(c: pg.PoolClient, o: ExportOptions): Promise<{ fromPos: bigint; toPos: bigint; head: bigint; asOf: string }> {
  const t = o.tenant;
  const { rows: hr } = await c.query('SELECT pos FROM okit.ledger_heads WHERE tenant = $1', [t]);
  const head = BigInt(String(hr[0]?.pos ?? '0'));
  let fromPos = 1n;
  if (o.previous) fromPos = BigInt(o.previous.manifest.window.to_pos) + 1n;
  else if (o.from) {
    const { rows } = await c.query(
      `SELECT min(pos) AS p FROM (SELECT pos FROM okit.job_history WHERE tenant = $1 AND at >= $2
       UNION ALL SELECT pos FROM okit.throttle_events WHERE tenant = $1 AND at >= $2
       UNION ALL SELECT pos FROM okit.queue_events WHERE tenant = $1 AND at >= $2) x`,
      [t, o.from],
    );
    fromPos = rows[0].p === null ? head + 1n : BigInt(String(rows[0].p));
  }
  if (fromPos - 1n > head)
    throw new OkitError('INVALID_INPUT', `the previous bundle ends at position ${fromPos - 1n}, beyond this database's ledger head ${head} for tenant ${t}`);
  let toPos = head;
  if (o.to) {
    const { rows } = await c.query(
      `SELECT min(pos) AS p FROM (SELECT pos FROM okit.job_history WHERE tenant = $1 AND pos >= $2 AND at >= $3
       UNION ALL SELECT pos FROM okit.throttle_events WHERE tenant = $1 AND pos >= $2 AND at >= $3
       UNION ALL SELECT pos FROM okit.queue_events WHERE tenant = $1 AND pos >= $2 AND at >= $3) x`,
      [t, String(fromPos), o.to],
    );
    if (rows[0].p !== null) toPos = BigInt(String(rows[0].p)) - 1n;
  }
  const { rows: mr } = await c.query(
    `SELECT max(at) AS at FROM (SELECT at FROM okit.job_history WHERE tenant = $1 AND pos BETWEEN $2 AND $3
     UNION ALL SELECT at FROM okit.throttle_events WHERE tenant = $1 AND pos BETWEEN $2 AND $3
     UNION ALL SELECT at FROM okit.queue_events WHERE tenant = $1 AND pos BETWEEN $2 AND $3) x`,
    [t, String(fromPos), String(toPos)],
  );
  const windowMax = mr[0].at === null ? null : ts(mr[0].at);
  const asOf = maxTs(o.previous?.manifest.as_of ?? null, windowMax) ?? o.to ?? o.from ?? EPOCH_AS_OF;
  return { fromPos, toPos, head, asOf };
}

/**
 * Work in progress lives in `<out>/.okit-export-<pid>-<random>.partial/`, its files named
 * `*.part`: no `*.tar` glob matches it. It is renamed into place only when complete, removed
 * on any failure, on SIGTERM/SIGINT (the CLI calls removeActiveExports), and, after a SIGKILL
 * or a crash, by the next export into the same directory (its pid is no longer alive).
 */
const PARTIAL = /^\.okit-export-(\d+)-[0-9a-f]+\.partial$/;
// Before 0.1 the work directory was `.okit-export-XXXXXX` (mkdtemp), with no pid to check.
const LEGACY_PARTIAL = /^\.okit-export-[A-Za-z0-9]{6}$/;
const active = new Set<string>();

/** Synchronously removes the work directories of exports still running (for signal handlers). */
export function removeActiveExports(): void {
  for (const d of active) rmSync(d, { recursive: true, force: true });
  active.clear();
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function removeStalePartials(outDir: string): Promise<void> {
  for (const name of await readdir(outDir)) {
    const m = PARTIAL.exec(name);
    if ((m && !alive(Number(m[1]))) || LEGACY_PARTIAL.test(name)) await rm(join(outDir, name), { recursive: true, force: true });
  }
}

/** A jsonb column's text must be a number-exact JSON value, or the bundle would not reproduce it. */
function exactJson(raw: Record<string, unknown>, cols: readonly string[], where: () => string): void {
  for (const col of cols) {
    const v = raw[col];
    if (v === null || v === undefined) continue;
    const p = inexactNumber(String(v));
    if (p) throw new OkitError('NOT_EXPORTABLE', `${where()}, ${col}: ${p}; the bundle could not reproduce the stored value`);
  }
}

function connectionLost(e: Error): OkitError {
  return new OkitError('DB_UNAVAILABLE', `the database connection was lost during the export (${e.message}); nothing was written`);
}

export async function exportBundle(pool: Pool, o: ExportOptions): Promise<ExportResult> {
  const batch = o.batch ?? 2000;
  const from = o.from ? normalizeTimestamp(o.from) : null;
  const to = o.to ? normalizeTimestamp(o.to) : null;
  if (o.previous && from) throw new OkitError('INVALID_INPUT', '--from and --previous are exclusive: --previous sets where the bundle starts');
  if (o.previous && o.previous.manifest.tenant !== o.tenant)
    throw new OkitError('INVALID_INPUT', `the previous bundle is for tenant ${o.previous.manifest.tenant}, not ${o.tenant}`);
  await mkdir(o.outDir, { recursive: true });
  await removeStalePartials(o.outDir);
  const tmp = join(o.outDir, `.okit-export-${process.pid}-${randomBytes(6).toString('hex')}.partial`);
  await mkdir(tmp, { mode: 0o700 });
  active.add(tmp);
  let c: pg.PoolClient | undefined;
  // A checked-out client whose server goes away emits 'error': without a listener that is an
  // unhandled event (a crash). Keep it, and report DB_UNAVAILABLE.
  let lost: Error | undefined;
  const onError = (e: Error) => {
    lost = e;
  };
  try {
    c = await pool.connect();
    c.on('error', onError);
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // The export's sorts and hashes (jobs by id, the window's job set) fit in memory instead of
    // spilling to temporary files at the default 4 MB; for this transaction only.
    await c.query(`SET LOCAL work_mem = '${EXPORT_WORK_MEM}'`);
    const { fromPos, toPos, head, asOf } = await resolveWindow(c, { ...o, from, to });
    const t = o.tenant;
    // Anchors exist only in a database loaded from a bundle (migration 003): one per continued job.
    const anchors = new Map<string, Map<number, string>>();
    for (const a of (await c.query('SELECT job_id::text, n, hash FROM okit.bundle_anchors WHERE tenant = $1', [t])).rows) {
      let m = anchors.get(String(a.job_id));
      if (!m) anchors.set(String(a.job_id), (m = new Map()));
      m.set(Number(a.n), String(a.hash));
    }
    const hasAnchors = anchors.size > 0;
    // A window cut by --to leaves rows after it unseen: the job heads are then checked in SQL.
    const cut = toPos < head;
    const P = [t, String(fromPos), String(toPos)];
    const files = Object.fromEntries(DATA_FILES.map((f) => [f, new LineFile(join(tmp, `${f}.part`))])) as Record<DataFile, LineFile>;
    const cover = new PositionCover();
    const histPos = cover.source();
    const thrPos = cover.source();
    const queuePos = cover.source();
    const issues: ChainIssue[] = [];
    const note = (i: ChainIssue | null) => {
      if (i && issues.length < 20) issues.push(i);
    };
    const chains = new Chains(anchors);
    const inWindow = `EXISTS (SELECT 1 FROM okit.job_history w WHERE w.job_id = j.id AND w.pos BETWEEN $2 AND $3)`;
    const headSql = `${hasAnchors ? 'coalesce(' : '('}(SELECT hash FROM okit.job_history x WHERE x.job_id = j.id AND x.n = j.history_n)${hasAnchors ? ', (SELECT hash FROM okit.bundle_anchors x WHERE x.job_id = j.id AND x.n = j.history_n))' : ')'} AS head_hash,
         EXISTS (SELECT 1 FROM okit.job_history x WHERE x.job_id = j.id AND x.n > j.history_n) AS beyond`;

    for await (const raw of cursor(
      c,
      'okit_jobs',
      `SELECT ${JOB_COLUMNS.split(', ').map((x) => 'j.' + x).join(', ')}${cut ? `, ${headSql}` : ''}
       FROM okit.jobs j WHERE j.tenant = $1 AND ${inWindow} ORDER BY j.id`,
      P,
      batch,
      o.signal,
    )) {
      exactJson(raw, ['payload'], () => `job ${String(raw.id)}`);
      if (cut && (raw.head_hash !== raw.last_hash || raw.beyond === true))
        note({ job_id: String(raw.id), message: `the job row records ${raw.history_n} rows ending in ${String(raw.last_hash).slice(0, 12)}…, its history disagrees` });
      const job = toJob(raw);
      chains.job(job.id, job.history_n, job.last_hash);
      await files['jobs.jsonl'].write(canonicalize(job));
    }
    // The exported jobs' rows before the window, first: with the window's rows after them, every
    // exported job's whole chain (n = 1 up to its last row in the window) is verified.
    if (fromPos > 1n)
      for await (const raw of cursor(
        c,
        'okit_earlier',
        // Reached through the (job_id, n) index from the window's jobs: the cost follows the
        // exported jobs' histories, not the size of the whole ledger before the window.
        `SELECT ${HISTORY_COLUMNS.split(', ').map((x) => 'h.' + x).join(', ')}
         FROM okit.job_history h JOIN (SELECT DISTINCT job_id FROM okit.job_history WHERE tenant = $1 AND pos BETWEEN $2 AND $3) w ON w.job_id = h.job_id
         WHERE h.tenant = $1 AND h.pos < $2 ORDER BY h.pos`,
        P,
        batch,
        o.signal,
      )) {
        const row = toHistory(raw);
        note(contentIssue(row));
        note(chains.row(row));
      }
    for await (const raw of cursor(c, 'okit_history', `SELECT ${HISTORY_COLUMNS} FROM okit.job_history WHERE tenant = $1 AND pos BETWEEN $2 AND $3 ORDER BY pos`, P, batch, o.signal)) {
      exactJson(raw, ['data'], () => `job ${String(raw.job_id)} history row n=${String(raw.n)} (pos ${String(raw.pos)})`);
      histPos(BigInt(String(raw.pos)));
      const row = toHistory(raw);
      const line = canonicalize(row);
      note(contentIssue(row, line));
      note(chains.row(row));
      await files['history.jsonl'].write(line);
    }
    if (!cut) chains.heads(note);
    for await (const raw of cursor(
      c,
      'okit_throttles',
      `SELECT tenant, pos, host, at, event, data FROM okit.throttle_events WHERE tenant = $1 AND pos BETWEEN $2 AND $3 ORDER BY pos`,
      P,
      batch,
      o.signal,
    )) {
      exactJson(raw, ['data'], () => `throttle event at pos ${String(raw.pos)}`);
      thrPos(BigInt(String(raw.pos)));
      await files['throttles.jsonl'].write(
        canonicalize({ tenant: String(raw.tenant), pos: String(raw.pos), host: String(raw.host), at: ts(raw.at), event: String(raw.event), data: json(raw.data) }),
      );
    }
    for await (const raw of cursor(
      c,
      'okit_queues',
      `SELECT tenant, pos, type, at, event, data FROM okit.queue_events WHERE tenant = $1 AND pos BETWEEN $2 AND $3 ORDER BY pos`,
      P,
      batch,
      o.signal,
    )) {
      exactJson(raw, ['data'], () => `queue event at pos ${String(raw.pos)}`);
      queuePos(BigInt(String(raw.pos)));
      await files['queues.jsonl'].write(
        canonicalize({ tenant: String(raw.tenant), pos: String(raw.pos), type: String(raw.type), at: ts(raw.at), event: String(raw.event), data: json(raw.data) }),
      );
    }
    // Snapshots only for jobs whose latest row is in the window (see docs/bundle-format.md).
    for await (const raw of cursor(
      c,
      'okit_snapshots',
      `SELECT ${SNAPSHOT_COLUMNS.split(', ').map((x) => 's.' + x).join(', ')}
       FROM okit.first_signal_snapshots s JOIN okit.jobs j ON j.id = s.job_id
       WHERE j.tenant = $1 AND EXISTS (SELECT 1 FROM okit.job_history w WHERE w.job_id = j.id AND w.n = j.history_n AND w.pos BETWEEN $2 AND $3)
       ORDER BY s.job_id`,
      P,
      batch,
      o.signal,
    )) {
      exactJson(raw, ['last_known_outcome', 'next_actions', 'diagnostics'], () => `snapshot of job ${String(raw.job_id)}`);
      await files['snapshots.jsonl'].write(canonicalize(toSnapshot(raw)));
    }
    await c.query('COMMIT');
    c.removeListener('error', onError);
    c.release();
    c = undefined;
    // The same completeness check verify makes: the window's positions are dense.
    const gaps = cover.problems(fromPos, toPos);
    if (gaps.length)
      throw new OkitError('LEDGER_BROKEN', `refusing to sign positions ${fromPos}..${toPos} of tenant ${t}: ${gaps.slice(0, 5).map((g) => g.message).join('; ')}${gaps.length > 5 ? ` (and ${gaps.length - 5} more)` : ''}; okit verify would reject the bundle (was a table truncated?)`, { first: gaps[0]!.message });

    const entries: FileEntry[] = [];
    for (const f of DATA_FILES) {
      const lf = files[f];
      entries.push({ name: f, bytes: lf.bytes, lines: lf.lines, sha256: await lf.close() });
    }
    if (issues.length) {
      const jobs = [...new Set(issues.map((i) => i.job_id))];
      throw new OkitError('LEDGER_BROKEN', `refusing to sign a broken ledger: ${issues.map((i) => `job ${i.job_id}: ${i.message}`).join('; ')}`, { jobs });
    }
    const sums = renderSums(entries);
    const manifest: Manifest = {
      format: FORMAT_ID,
      version: FORMAT_VERSION,
      tenant: t,
      window: { from_pos: String(fromPos), to_pos: String(toPos), from, to },
      as_of: asOf,
      counts: { jobs: entries[0]!.lines, history: entries[1]!.lines, throttles: entries[2]!.lines, queues: entries[3]!.lines, snapshots: entries[4]!.lines },
      files: [{ name: SUMS, bytes: sums.length, lines: entries.length, sha256: sha256Hex(sums) }, ...entries],
      key_id: o.key.keyId,
      previous: o.previous?.manifestSha256 ?? null,
    };
    const mbytes = renderManifest(manifest);
    const sig = sign(o.key, mbytes);
    const mtime = Number(parseMicros(asOf) / 1000000n);
    const name = `okit-${t}-${fromPos}-${toPos}.tar`;
    const tmpTar = join(tmp, 'bundle.tar.part');
    const ws = createWriteStream(tmpTar);
    const hash = createHash('sha256');
    let bytes = 0;
    const put = async (b: Buffer) => {
      hash.update(b);
      bytes += b.length;
      if (!ws.write(b)) await new Promise<void>((r) => ws.once('drain', () => r()));
    };
    for (const [n, body] of [
      [MANIFEST, mbytes],
      [SIGNATURE, sig],
      [SUMS, sums],
    ] as const) {
      await put(tarHeader(n, body.length, mtime));
      await put(body);
      await put(padding(body.length));
    }
    for (const e of entries) {
      checkAborted(o.signal);
      await put(tarHeader(e.name, e.bytes, mtime));
      for await (const chunk of createReadStream(join(tmp, `${e.name}.part`), { highWaterMark: 1 << 20 })) await put(chunk as Buffer);
      await put(padding(e.bytes));
    }
    await put(Buffer.alloc(END_BYTES, 0));
    await new Promise<void>((res, rej) => ws.end((e?: Error | null) => (e ? rej(e) : res())));
    const path = join(o.outDir, name);
    checkAborted(o.signal);
    await rename(tmpTar, path);
    return { path, sha256: hash.digest('hex'), bytes, manifest };
  } catch (e) {
    if (c && !lost) await c.query('ROLLBACK').catch(() => undefined);
    throw lost ? connectionLost(lost) : e;
  } finally {
    if (c) {
      c.removeListener('error', onError);
      c.release(lost);
    }
    await rm(tmp, { recursive: true, force: true });
    active.delete(tmp);
  }
}

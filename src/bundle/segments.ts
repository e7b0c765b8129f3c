/**
 * A data file's lines in line-aligned segments, checked independently: the per-line work
 * (ndjson's parse, the canonical check, the field schema, the tenant, a history row's own hash)
 * needs nothing from the lines before it, so segments can be checked in parallel (verify-worker.ts)
 * or in process; what needs order (sort keys, positions, chains, jobs) stays with the Verifier,
 * which applies the results in file order.
 *
 * A segment's result holds, per line, its outcome (canonical and well formed, not canonical, or
 * invalid) and for each good line the few facts the ordered checks read, column by column (cheap
 * to pass between threads). Line numbers are relative to the segment.
 */
import ndjson from 'ndjson';
import type { Transform } from 'node:stream';
import { canonicalize } from '../util/canonical.js';
import { MAX_LINE_BYTES, type DataFile } from './format.js';
import { historyLineHash, historyPreimage, JsonlReader } from './jsonl.js';
import { HISTORY_SCHEMA, JOB_SCHEMA, QUEUE_SCHEMA, SNAPSHOT_SCHEMA, THROTTLE_SCHEMA, schemaProblem } from './lines.js';
import { ID_BYTES, writeHash, writeId } from './jobtable.js';
import { createHash } from 'node:crypto';

/** Segments are cut at the last `\n` before this many bytes (a longer line makes a longer one). */
export const SEGMENT_BYTES = 1024 * 1024;
/**
 * ndjson is fed in pieces of this size: its line splitter decodes each piece into a string, and
 * V8 allocates strings over about 128 KiB in large-object space, 30× slower per byte here
 * (measured: 64 KiB pieces decode at ~8 GB/s, 1 MiB ones at ~0.3 GB/s).
 */
export const PIECE_BYTES = 64 * 1024;

export const LINE_OK = 0;
export const LINE_NOT_CANONICAL = 1;
export const LINE_INVALID = 2;

/**
 * One segment's outcome. Per line: kinds. Per OK line (the j-th): its facts in binary columns,
 * as the Verifier keeps them (jobtable.ts): ids as 16 bytes, hashes as 32, numbers as doubles.
 */
export interface SegmentResult {
  /** Lines in the segment: one outcome each. */
  lines: number;
  /** Per line: LINE_OK, LINE_NOT_CANONICAL or LINE_INVALID. */
  kinds: Uint8Array;
  /** Per line that is not OK, in order: why (after `<file> line <n>: `). */
  whys: string[];
  /** The last outcome was an overlong line: the rest of the file is not read. */
  abandoned: boolean;
  /** OK lines. */
  ok: number;
  /** jobs id, history and snapshots job_id: ID_BYTES each. */
  ids: Uint8Array;
  /** history hash, jobs last_hash, snapshots history_hash: 32 bytes each. */
  hashes: Uint8Array;
  /** history prev_hash: 32 bytes each (zeros when null, see PREV_NULL). */
  prevs: Uint8Array;
  /** history n, jobs and snapshots history_n. */
  n: Float64Array;
  /** history, throttles and queues pos (NaN when it has more than 15 digits: then in bigPos). */
  pos: Float64Array;
  /** history to_state, jobs state: an index into states. */
  state: Int32Array;
  states: string[];
  /** Per OK line: TENANT_OK, HASH_OK, PREV_NULL. */
  flags: Uint8Array;
  /** Positions of more than 15 digits, in order. */
  bigPos: string[];
  /** The tenant of each OK line whose tenant is not the bundle's, in order (JSON text). */
  tenants: string[];
  /** With collect: the parsed OK lines. */
  values?: unknown[];
}

export const TENANT_OK = 1;
export const HASH_OK = 2;
export const PREV_NULL = 4;

/** The ArrayBuffer that holds all of a result's columns (moved, not copied, between threads). */
export function resultBuffers(r: SegmentResult): ArrayBuffer[] {
  return [r.n.buffer as ArrayBuffer];
}

const SCHEMAS = {
  'jobs.jsonl': JOB_SCHEMA, 'history.jsonl': HISTORY_SCHEMA, 'throttles.jsonl': THROTTLE_SCHEMA, 'queues.jsonl': QUEUE_SCHEMA, 'snapshots.jsonl': SNAPSHOT_SCHEMA,
} as const;

/** A canonical history line's own hash check, from its text (see historyPreimage). */
const hashOkText = (line: string, hash: unknown): boolean => historyLineHash(line) === hash;

function hashOkBytes(line: Buffer, hash: unknown): boolean {
  const pre = historyPreimage(line);
  return pre !== null && createHash('sha256').update(pre[0]).update(pre[1]).digest('hex') === hash;
}

/** Growable columns, written in place (doubling), packed once at the end. */
class Cols {
  cap = 0;
  ids = Buffer.alloc(0);
  hashes = Buffer.alloc(0);
  prevs = Buffer.alloc(0);
  n = new Float64Array(0);
  pos = new Float64Array(0);
  state = new Int32Array(0);
  flags = new Uint8Array(0);
  /** Room for row j. */
  room(j: number): void {
    if (j < this.cap) return;
    const cap = Math.max(256, this.cap * 2);
    const grow = <T extends Uint8Array | Float64Array | Int32Array>(a: T, make: (n: number) => T, w: number): T => {
      const b = make(cap * w);
      b.set(a);
      return b;
    };
    this.ids = grow(this.ids, (k) => Buffer.alloc(k), ID_BYTES);
    this.hashes = grow(this.hashes, (k) => Buffer.alloc(k), 32);
    this.prevs = grow(this.prevs, (k) => Buffer.alloc(k), 32);
    this.n = grow(this.n, (k) => new Float64Array(k), 1);
    this.pos = grow(this.pos, (k) => new Float64Array(k), 1);
    this.state = grow(this.state, (k) => new Int32Array(k), 1);
    this.flags = grow(this.flags, (k) => new Uint8Array(k), 1);
    this.cap = cap;
  }
}

/** Builds one segment's result, line by line. */
class Collector {
  lines = 0;
  private readonly kinds: number[] = [];
  private readonly whys: string[] = [];
  private abandoned = false;
  private ok_ = 0;
  private readonly c = new Cols();
  private readonly states = new Map<string, number>();
  private readonly bigPos: string[] = [];
  private readonly tenants: string[] = [];
  private readonly values: unknown[] | undefined;
  private readonly schema;

  constructor(
    private readonly f: DataFile,
    private readonly tenant: string | null,
    collect: boolean,
  ) {
    this.schema = SCHEMAS[f];
    if (collect) this.values = [];
  }

  bad(why: string): void {
    this.lines++;
    this.kinds.push(LINE_NOT_CANONICAL);
    this.whys.push(why);
  }

  /** The last line reported was overlong: nothing after it is read. */
  abandon(): void {
    this.abandoned = true;
  }

  private stateOf(name: string): number {
    let k = this.states.get(name);
    if (k === undefined) this.states.set(name, (k = this.states.size));
    return k;
  }

  private position(j: number, text: string): void {
    if (text.length <= 15) this.c.pos[j] = Number(text);
    else {
      this.c.pos[j] = NaN;
      this.bigPos.push(text);
    }
  }

  /** A canonical line: its value and its text or bytes (for a history row's hash). */
  ok(v: unknown, text: string | null, bytes: Buffer | null): void {
    this.lines++;
    const sp = schemaProblem(v, this.schema);
    if (sp) {
      this.kinds.push(LINE_INVALID);
      this.whys.push(sp);
      return;
    }
    this.kinds.push(LINE_OK);
    const o = v as Record<string, unknown>;
    const j = this.ok_++;
    const c = this.c;
    c.room(j);
    let flags = 0;
    if (this.tenant === null || o.tenant === this.tenant) flags |= TENANT_OK;
    else this.tenants.push(JSON.stringify(o.tenant));
    // The schema has checked every field used here: ids are UUIDs, hashes hex, n integers.
    switch (this.f) {
      case 'jobs.jsonl':
        writeId(o.id as string, c.ids, j * ID_BYTES);
        writeHash(o.last_hash as string, c.hashes, j * 32);
        c.n[j] = o.history_n as number;
        c.state[j] = this.stateOf(o.state as string);
        break;
      case 'history.jsonl':
        writeId(o.job_id as string, c.ids, j * ID_BYTES);
        writeHash(o.hash as string, c.hashes, j * 32);
        if (o.prev_hash === null) flags |= PREV_NULL;
        else writeHash(o.prev_hash as string, c.prevs, j * 32);
        c.n[j] = o.n as number;
        this.position(j, o.pos as string);
        c.state[j] = this.stateOf(o.to_state as string);
        if (text !== null ? hashOkText(text, o.hash) : hashOkBytes(bytes!, o.hash)) flags |= HASH_OK;
        break;
      case 'throttles.jsonl':
      case 'queues.jsonl':
        this.position(j, o.pos as string);
        break;
      case 'snapshots.jsonl':
        writeId(o.job_id as string, c.ids, j * ID_BYTES);
        writeHash(o.history_hash as string, c.hashes, j * 32);
        c.n[j] = o.history_n as number;
        break;
    }
    c.flags[j] = flags;
    this.values?.push(v);
  }

  /** The result, its columns packed in one ArrayBuffer (8-byte aligned, doubles first). */
  result(): SegmentResult {
    const k = this.ok_;
    const c = this.c;
    const sizes = [k * 8, k * 8, k * 4, k * ID_BYTES, k * 32, k * 32, k, this.lines];
    const offs: number[] = [];
    let total = 0;
    for (const sz of sizes) {
      offs.push(total);
      total += Math.ceil(sz / 8) * 8;
    }
    const ab = new ArrayBuffer(total);
    const n = new Float64Array(ab, offs[0], k);
    const pos = new Float64Array(ab, offs[1], k);
    const state = new Int32Array(ab, offs[2], k);
    const ids = new Uint8Array(ab, offs[3], k * ID_BYTES);
    const hashes = new Uint8Array(ab, offs[4], k * 32);
    const prevs = new Uint8Array(ab, offs[5], k * 32);
    const flags = new Uint8Array(ab, offs[6], k);
    const kinds = new Uint8Array(ab, offs[7], this.lines);
    if (k) {
      n.set(c.n.subarray(0, k));
      pos.set(c.pos.subarray(0, k));
      state.set(c.state.subarray(0, k));
      ids.set(c.ids.subarray(0, k * ID_BYTES));
      hashes.set(c.hashes.subarray(0, k * 32));
      prevs.set(c.prevs.subarray(0, k * 32));
      flags.set(c.flags.subarray(0, k));
    }
    kinds.set(this.kinds);
    return {
      lines: this.lines, kinds, whys: this.whys, abandoned: this.abandoned, ok: k, ids, hashes, prevs, n, pos, state,
      states: [...this.states.keys()], flags, bigPos: this.bigPos, tenants: this.tenants, values: this.values,
    };
  }
}

/** One canonical line at a time, written here and compared with the segment's bytes in place. */
let scratch = Buffer.allocUnsafe(64 * 1024);

/**
 * The common case, checked line by line as ndjson emits the values: each value is
 * re-canonicalised, and the canonical line plus `\n` must be exactly the next bytes of the
 * segment; each good line is collected at once (nothing is kept per line but its facts). Any
 * difference (a blank line ndjson skipped, `\r\n`, a space, another spelling, invalid UTF-8, a
 * missing final `\n`, an overlong line) returns false: the exact reader then reads the whole
 * segment again, and finds and names the line.
 */
function bulkCanonical(bytes: Buffer, out: Collector): boolean {
  if (bytes.length === 0 || bytes[bytes.length - 1] !== 0x0a) return false;
  let failed = false;
  let off = 0;
  const onValue = (v: unknown) => {
    if (failed) return;
    let c: string;
    try {
      c = canonicalize(v);
    } catch {
      failed = true;
      return;
    }
    // UTF-16 units never outnumber UTF-8 bytes: too long in units is too long in bytes.
    if (c.length > MAX_LINE_BYTES || off + c.length >= bytes.length) {
      failed = true;
      return;
    }
    if (scratch.length < c.length * 3) scratch = Buffer.allocUnsafe(c.length * 3);
    const w = scratch.write(c, 0, 'utf8');
    if (w > MAX_LINE_BYTES || off + w >= bytes.length || bytes[off + w] !== 0x0a || scratch.compare(bytes, off, off + w, 0, w) !== 0) {
      failed = true;
      return;
    }
    off += w + 1;
    out.ok(v, c, null);
  };
  const nd = ndjson.parse({ strict: true }) as unknown as Transform;
  nd.on('data', onValue);
  nd.on('error', () => (failed = true));
  for (let o = 0; o < bytes.length && !failed; o += PIECE_BYTES) nd.write(bytes.subarray(o, o + PIECE_BYTES));
  if (!failed) nd.end();
  return !failed && off === bytes.length;
}

/**
 * Checks one segment of file `f`: whole lines (each ending in `\n`), except that the file's
 * last segment (`last`) may end without one. `tenant` is the bundle's (null: not known).
 */
export function checkSegment(f: DataFile, bytes: Buffer, tenant: string | null, last: boolean, collect = false): SegmentResult {
  const out = new Collector(f, tenant, collect);
  if (bulkCanonical(bytes, out)) return out.result();
  const exact = new Collector(f, tenant, collect);
  const reader = new JsonlReader({ line: (v, b) => exact.ok(v, null, b), bad: (_n, why) => exact.bad(why) });
  // Blank lines are reported after each piece (as they would be before the next line), so the
  // reader only ever holds one unfinished line, never more than the Splitter lets through.
  for (let o = 0; o < bytes.length && !reader.abandoned; o += PIECE_BYTES) {
    reader.write(bytes.subarray(o, o + PIECE_BYTES));
    if (o + PIECE_BYTES < bytes.length) reader.flushBlank();
  }
  if (reader.abandoned) exact.abandon();
  else if (last) reader.end();
  else reader.flushBlank();
  return exact.result();
}

/**
 * Segment buffers, each its own ArrayBuffer, reused once a segment has been checked: fresh
 * memory costs a page fault per 4 KiB on first touch, more than the copy into it.
 */
export class SegmentBuffers {
  private readonly free: ArrayBuffer[] = [];

  get(size: number): Buffer {
    const ab = size === SEGMENT_BYTES ? this.free.pop() : undefined;
    return ab ? Buffer.from(ab, 0, ab.byteLength) : Buffer.allocUnsafeSlow(size);
  }

  /** A segment's buffer (any view of it) may be reused. */
  put(b: Uint8Array): void {
    if (b.buffer.byteLength === SEGMENT_BYTES && this.free.length < 16) this.free.push(b.buffer as ArrayBuffer);
  }
}

/**
 * Cuts one data file's byte stream into line-aligned segments of about SEGMENT_BYTES, each in
 * a buffer of its own (so it can be moved to a worker): bytes are copied once, into the
 * segment being filled; at its end, the unfinished line moves to the next. A line longer than
 * MAX_LINE_BYTES + 1 bytes is not kept: its bytes are skipped up to its `\n` and overlong() is
 * called in its place, so memory stays bounded and reading goes on with the next line. Each
 * segment is handed on once the next one (or the end) is known, so the file's last segment
 * is marked as such.
 */
export class Splitter {
  private buf: Buffer;
  private len = 0;
  private ready: Buffer | null = null;
  private skipping = false;

  constructor(
    private readonly emit: (segment: Buffer, last: boolean) => void,
    private readonly overlong: () => void,
    private readonly buffers = new SegmentBuffers(),
    private readonly size = SEGMENT_BYTES,
  ) {
    this.buf = buffers.get(size);
  }

  write(b: Buffer): void {
    let off = 0;
    while (off < b.length) {
      if (this.skipping) {
        const nl = b.indexOf(0x0a, off);
        if (nl === -1) return;
        this.skipping = false;
        off = nl + 1;
        this.overlong();
        continue;
      }
      const n = Math.min(b.length - off, this.buf.length - this.len);
      b.copy(this.buf, this.len, off, off + n);
      this.len += n;
      off += n;
      if (this.len === this.buf.length) this.cut();
    }
  }

  /** The buffer is full: hand on its whole lines, or make room for one long line, or skip it. */
  private cut(): void {
    const c = this.buf.lastIndexOf(0x0a, this.len - 1);
    if (c === -1) {
      if (this.len > MAX_LINE_BYTES + 1) {
        // (Lines before it have been handed on: the buffer holds this line only.)
        if (this.ready) this.emit(this.ready, false);
        this.ready = null;
        this.len = 0;
        this.skipping = true;
        return;
      }
      const bigger = this.buffers.get(Math.min(this.buf.length * 2, MAX_LINE_BYTES + 2));
      this.buf.copy(bigger, 0, 0, this.len);
      this.buf = bigger;
      return;
    }
    const tail = this.len - (c + 1);
    const next = this.buffers.get(tail < this.size ? this.size : tail + this.size);
    this.buf.copy(next, 0, c + 1, this.len);
    this.hand(this.buf.subarray(0, c + 1));
    this.buf = next;
    this.len = tail;
  }

  private hand(segment: Buffer): void {
    if (this.ready) this.emit(this.ready, false);
    this.ready = segment;
  }

  end(): void {
    if (this.skipping) {
      // The overlong line was the last, without its `\n`.
      this.skipping = false;
      this.overlong();
      return;
    }
    if (this.len > 0) this.hand(this.buf.subarray(0, this.len));
    this.len = 0;
    if (this.ready) this.emit(this.ready, true);
    this.ready = null;
  }
}

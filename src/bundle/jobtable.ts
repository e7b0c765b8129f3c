/**
 * Per-job state for hundreds of thousands of jobs without an object or a string per job:
 * job ids as their 36 bytes of text, hashes as 32 bytes, numbers in typed arrays, found through an open
 * hash table seeded per process (a hostile bundle cannot aim its ids at one probe chain).
 * The verifier and replay keep their per-job state here; lines reach them as columns of the
 * same binary forms (segments.ts), so nothing is decoded back to text on the happy path.
 */
import { randomBytes } from 'node:crypto';

/** A job id (a UUID, as the schema checks) is kept as its 36 characters, one byte each. */
export const ID_BYTES = 36;
const ID_WORDS = ID_BYTES / 4;

export function writeId(text: string, out: Buffer, off: number): void {
  out.write(text, off, ID_BYTES, 'latin1');
}

export function idText(b: Uint8Array, off: number): string {
  return Buffer.from(b.buffer, b.byteOffset + off, ID_BYTES).toString('latin1');
}

/** A hash (64 lower-case hex digits, as the schema checks) is kept as its 32 bytes. */
export function writeHash(text: string, out: Buffer, off: number): void {
  out.write(text, off, 32, 'hex');
}

export function hashText(b: Uint8Array, off: number): string {
  return Buffer.from(b.buffer, b.byteOffset + off, 32).toString('hex');
}

/** Equal 32-byte hashes (offsets are multiples of 32, so word compares are aligned). */
export function sameHash(a: Uint32Array, ai: number, b: Uint32Array, bi: number): boolean {
  const x = ai * 8;
  const y = bi * 8;
  for (let k = 0; k < 8; k++) if (a[x + k] !== b[y + k]) return false;
  return true;
}

/** Compares two ids (in the order of their texts). */
export function compareIds(a: Uint8Array, ai: number, b: Uint8Array, bi: number): number {
  for (let k = 0; k < ID_BYTES; k++) {
    const d = a[ai * ID_BYTES + k]! - b[bi * ID_BYTES + k]!;
    if (d !== 0) return d;
  }
  return 0;
}

const SEED = randomBytes(4).readUInt32LE(0) | 1;

function mix(w: Uint32Array, i: number): number {
  let h = SEED;
  for (let k = 0; k < ID_WORDS; k++) {
    h = Math.imul(h ^ w[i * ID_WORDS + k]!, 0x9e3779b1);
    h ^= h >>> 15;
  }
  return Math.imul(h ^ (h >>> 13), 0x85ebca6b) >>> 0;
}

/** A growable fixed-width column: `width` units per row. */
class Col<T extends Float64Array | Int32Array | Uint8Array | Buffer> {
  constructor(
    public a: T,
    private readonly width: number,
    private readonly make: (n: number) => T,
  ) {}
  grow(rows: number): void {
    const b = this.make(rows * this.width);
    b.set(this.a);
    this.a = b;
  }
}

/** Jobs in the order added, found by their id. */
export class JobTable {
  count = 0;
  private cap = 0;
  private slots = new Int32Array(0);
  private ids8 = new Uint8Array(0);
  private ids32 = new Uint32Array(0);
  private readonly cols: Array<Col<Float64Array | Int32Array | Uint8Array>> = [];
  private hash32s: Array<{ col: Col<Buffer>; view: Uint32Array }> = [];

  constructor(initial = 1024) {
    this.resize(initial);
  }

  /** A column of numbers, one per job (starts at 0). */
  float(): { get a(): Float64Array } {
    const c = new Col(new Float64Array(this.cap), 1, (n) => new Float64Array(n));
    this.cols.push(c as Col<Float64Array | Int32Array | Uint8Array>);
    return c;
  }

  int(): { get a(): Int32Array } {
    const c = new Col(new Int32Array(this.cap), 1, (n) => new Int32Array(n));
    this.cols.push(c as Col<Float64Array | Int32Array | Uint8Array>);
    return c;
  }

  /** A column of 32-byte hashes: `.a` the bytes, `.w` the same as 32-bit words. */
  hashes(): { get a(): Buffer; get w(): Uint32Array } {
    const col = new Col<Buffer>(Buffer.alloc(this.cap * 32), 32, (n) => Buffer.alloc(n));
    const entry = { col, view: new Uint32Array(col.a.buffer, col.a.byteOffset, col.a.byteLength / 4) };
    this.hash32s.push(entry);
    this.cols.push(col as Col<Float64Array | Int32Array | Uint8Array>);
    return {
      get a() {
        return entry.col.a;
      },
      get w() {
        return entry.view;
      },
    };
  }

  /** The id of job i, as its UUID text. */
  id(i: number): string {
    return idText(this.ids8, i * ID_BYTES);
  }

  /** The index of the job whose id is the k-th in `ids` (ID_BYTES each, as words), or -1. */
  find(ids: Uint32Array, k: number): number {
    const mask = this.slots.length - 1;
    const b = k * ID_WORDS;
    for (let s = mix(ids, k) & mask; ; s = (s + 1) & mask) {
      const e = this.slots[s]!;
      if (e === 0) return -1;
      const a = (e - 1) * ID_WORDS;
      let k2 = 0;
      while (k2 < ID_WORDS && this.ids32[a + k2] === ids[b + k2]) k2++;
      if (k2 === ID_WORDS) return e - 1;
    }
  }

  /** Adds a job whose id is not in the table yet; returns its index. */
  insert(ids: Uint32Array, k: number): number {
    if (this.count === this.cap) this.resize(this.cap * 2);
    const i = this.count++;
    this.ids32.set(ids.subarray(k * ID_WORDS, (k + 1) * ID_WORDS), i * ID_WORDS);
    const mask = this.slots.length - 1;
    let s = mix(ids, k) & mask;
    while (this.slots[s] !== 0) s = (s + 1) & mask;
    this.slots[s] = i + 1;
    return i;
  }

  private resize(cap: number): void {
    const ids8 = new Uint8Array(cap * ID_BYTES);
    ids8.set(this.ids8);
    this.ids8 = ids8;
    this.ids32 = new Uint32Array(ids8.buffer);
    for (const c of this.cols) c.grow(cap);
    for (const h of this.hash32s) h.view = new Uint32Array(h.col.a.buffer, h.col.a.byteOffset, h.col.a.byteLength / 4);
    this.cap = cap;
    // Load factor at most 1/2.
    this.slots = new Int32Array(cap * 2);
    const mask = this.slots.length - 1;
    for (let i = 0; i < this.count; i++) {
      let s = mix(this.ids32, i) & mask;
      while (this.slots[s] !== 0) s = (s + 1) & mask;
      this.slots[s] = i + 1;
    }
  }
}

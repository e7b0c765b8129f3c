/**
 * Per-job state for hundreds of thousands of jobs without an object or a string per job:
 * job ids (UUIDs) as 16 bytes, hashes as 32, numbers in typed arrays, found through an open
 * hash table seeded per process (a hostile bundle cannot aim its ids at one probe chain).
 * The verifier and replay keep their per-job state here; lines reach them as columns of the
 * same binary forms (segments.ts), so nothing is decoded back to text on the happy path.
 */
import { randomBytes } from 'node:crypto';

const HEXVAL = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) HEXVAL['0123456789abcdef'.charCodeAt(i)] = i;
const HEXCHARS = '0123456789abcdef';

/** Writes a UUID's 16 bytes (the text must be a valid lower-case UUID, as the schema checks). */
export function uuidBytes(text: string, out: Uint8Array, off: number): void {
  let j = off;
  for (let i = 0; i < 36; i++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) continue;
    out[j++] = (HEXVAL[text.charCodeAt(i)]! << 4) | HEXVAL[text.charCodeAt(++i)]!;
  }
}

export function uuidText(b: Uint8Array, off: number): string {
  let s = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += '-';
    s += HEXCHARS[b[off + i]! >> 4]! + HEXCHARS[b[off + i]! & 15]!;
  }
  return s;
}

/** Writes a 64-hex-digit hash's 32 bytes (the text must be valid lower-case hex). */
export function hashBytes(text: string, out: Uint8Array, off: number): void {
  for (let i = 0, j = off; i < 64; i += 2) out[j++] = (HEXVAL[text.charCodeAt(i)]! << 4) | HEXVAL[text.charCodeAt(i + 1)]!;
}

export function hashText(b: Uint8Array, off: number): string {
  let s = '';
  for (let i = 0; i < 32; i++) s += HEXCHARS[b[off + i]! >> 4]! + HEXCHARS[b[off + i]! & 15]!;
  return s;
}

/** Equal 32-byte hashes (offsets are multiples of 32, so word compares are aligned). */
export function sameHash(a: Uint32Array, ai: number, b: Uint32Array, bi: number): boolean {
  const x = ai * 8;
  const y = bi * 8;
  for (let k = 0; k < 8; k++) if (a[x + k] !== b[y + k]) return false;
  return true;
}

/** Compares two 16-byte ids (lexicographic: the order of their UUID texts). */
export function compareIds(a: Uint8Array, ai: number, b: Uint8Array, bi: number): number {
  for (let k = 0; k < 16; k++) {
    const d = a[ai * 16 + k]! - b[bi * 16 + k]!;
    if (d !== 0) return d;
  }
  return 0;
}

const SEED = randomBytes(4).readUInt32LE(0) | 1;

function mix(w: Uint32Array, i: number): number {
  let h = SEED;
  for (let k = 0; k < 4; k++) {
    h = Math.imul(h ^ w[i * 4 + k]!, 0x9e3779b1);
    h ^= h >>> 15;
  }
  return Math.imul(h ^ (h >>> 13), 0x85ebca6b) >>> 0;
}

/** A growable fixed-width column: `width` units per row. */
class Col<T extends Float64Array | Int32Array | Uint8Array> {
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

/** Jobs in the order added, found by their 16-byte id. */
export class JobTable {
  count = 0;
  private cap = 0;
  private slots = new Int32Array(0);
  private ids8 = new Uint8Array(0);
  private ids32 = new Uint32Array(0);
  private readonly cols: Array<Col<Float64Array | Int32Array | Uint8Array>> = [];
  private hash32s: Array<{ col: Col<Uint8Array>; view: Uint32Array }> = [];

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
  hashes(): { get a(): Uint8Array; get w(): Uint32Array } {
    const col = new Col(new Uint8Array(this.cap * 32), 32, (n) => new Uint8Array(n));
    const entry = { col, view: new Uint32Array(col.a.buffer) };
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
    return uuidText(this.ids8, i * 16);
  }

  /** The index of the job whose id is the 16 bytes at ids[k*16], or -1. */
  find(ids: Uint32Array, k: number): number {
    const mask = this.slots.length - 1;
    for (let s = mix(ids, k) & mask; ; s = (s + 1) & mask) {
      const e = this.slots[s]!;
      if (e === 0) return -1;
      const i = e - 1;
      const a = i * 4;
      const b = k * 4;
      if (this.ids32[a] === ids[b] && this.ids32[a + 1] === ids[b + 1] && this.ids32[a + 2] === ids[b + 2] && this.ids32[a + 3] === ids[b + 3]) return i;
    }
  }

  /** Adds a job whose id is not in the table yet; returns its index. */
  insert(ids: Uint32Array, k: number): number {
    if (this.count === this.cap) this.resize(this.cap * 2);
    const i = this.count++;
    this.ids32.set(ids.subarray(k * 4, k * 4 + 4), i * 4);
    const mask = this.slots.length - 1;
    let s = mix(ids, k) & mask;
    while (this.slots[s] !== 0) s = (s + 1) & mask;
    this.slots[s] = i + 1;
    return i;
  }

  private resize(cap: number): void {
    const ids8 = new Uint8Array(cap * 16);
    ids8.set(this.ids8);
    this.ids8 = ids8;
    this.ids32 = new Uint32Array(ids8.buffer);
    for (const c of this.cols) c.grow(cap);
    for (const h of this.hash32s) h.view = new Uint32Array(h.col.a.buffer);
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

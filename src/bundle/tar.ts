/**
 * Minimal ustar for the bundle's fixed entry list. The writer emits fully canonical headers
 * (mode 0644, uid/gid 0, empty names, one mtime); the reader is a push parser that never
 * touches the disk and accepts only headers byte-identical to what the writer would emit,
 * so every byte of a bundle's tar structure is significant.
 */
import { ENTRIES } from './format.js';

export const BLOCK = 512;
export const END_BYTES = 2 * BLOCK;

function octal(n: number | bigint, width: number): string {
  // width - 1 octal digits, zero-padded, then NUL.
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** One canonical ustar header for a regular file. */
export function tarHeader(name: string, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  if (Buffer.byteLength(name) > 100) throw new RangeError(`tar name too long: ${name}`);
  h.write(name, 0, 'utf8');
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(octal(0, 8), 329, 'ascii');
  h.write(octal(0, 8), 337, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

export function padding(size: number): Buffer {
  const r = size % BLOCK;
  return Buffer.alloc(r === 0 ? 0 : BLOCK - r, 0);
}

export interface TarProblem {
  code: string;
  message: string;
}

export interface TarHandlers {
  /** A header was accepted; its body follows in onData calls. */
  entry(name: string, size: number, mtime: number): void;
  data(chunk: Buffer): void;
  entryEnd(name: string): void;
  problem(p: TarProblem): void;
}

export interface EntryLimit {
  (name: string): number;
}

function readOctal(buf: Buffer, off: number, len: number): number | null {
  const s = buf.toString('latin1', off, off + len);
  const m = /^([0-7]+)\0?$/.exec(s.replace(/ +$/, ''));
  if (!m) return null;
  const v = parseInt(m[1]!, 8);
  return Number.isSafeInteger(v) ? v : null;
}

/**
 * Push parser for a bundle's tar. Stops at the first structural problem (after that,
 * byte offsets mean nothing); content problems are the caller's.
 */
export class TarReader {
  private buf: Buffer = Buffer.alloc(0);
  private state: 'header' | 'body' | 'padding' | 'end' | 'failed' = 'header';
  private index = 0;
  private remaining = 0;
  private pad = 0;
  private name = '';
  private endSeen = 0;
  private readonly seen = new Set<string>();
  mtime: number | null = null;

  constructor(
    private readonly h: TarHandlers,
    private readonly limit: EntryLimit,
  ) {}

  get failed(): boolean {
    return this.state === 'failed';
  }

  private fail(code: string, message: string): void {
    this.state = 'failed';
    this.h.problem({ code, message });
  }

  write(chunk: Buffer): void {
    if (this.state === 'failed') return;
    let off = 0;
    while (off < chunk.length && !this.failed) {
      if (this.state === 'body') {
        const n = Math.min(this.remaining, chunk.length - off);
        if (n > 0) this.h.data(chunk.subarray(off, off + n));
        off += n;
        this.remaining -= n;
        if (this.remaining === 0) {
          this.h.entryEnd(this.name);
          this.state = this.pad > 0 ? 'padding' : 'header';
        }
        continue;
      }
      if (this.state === 'padding') {
        const n = Math.min(this.pad, chunk.length - off);
        for (let i = off; i < off + n; i++)
          if (chunk[i] !== 0) {
            this.fail('TAR_BAD_PADDING', `non-zero padding after ${this.name}`);
            return;
          }
        off += n;
        this.pad -= n;
        if (this.pad === 0) this.state = 'header';
        continue;
      }
      if (this.state === 'end') {
        const n = chunk.length - off;
        for (let i = off; i < off + n; i++) {
          if (this.endSeen >= END_BYTES || chunk[i] !== 0) {
            this.fail('TAR_TRAILING_DATA', 'data after the last entry is not exactly two zero blocks');
            return;
          }
          this.endSeen++;
        }
        off += n;
        continue;
      }
      // header: gather one block
      const need = BLOCK - this.buf.length;
      const take = Math.min(need, chunk.length - off);
      this.buf = Buffer.concat([this.buf, chunk.subarray(off, off + take)]);
      off += take;
      if (this.buf.length === BLOCK) {
        const block = this.buf;
        this.buf = Buffer.alloc(0);
        this.header(block);
      }
    }
  }

  private header(block: Buffer): void {
    if (this.index === ENTRIES.length) {
      // Every entry read: what follows must be the two zero blocks.
      this.state = 'end';
      this.endSeen = 0;
      this.write(block);
      return;
    }
    if (block.every((b) => b === 0)) {
      this.fail('TAR_MISSING_ENTRY', `archive ends before ${ENTRIES.slice(this.index).join(', ')}`);
      return;
    }
    const stored = readOctal(block, 148, 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
    if (stored === null || stored !== sum) {
      this.fail('TAR_BAD_CHECKSUM', `header ${this.index + 1}: checksum ${stored === null ? 'unreadable' : 'mismatch'}`);
      return;
    }
    const nul = block.indexOf(0, 0);
    const rawName = block.toString('utf8', 0, nul === -1 || nul > 100 ? 100 : nul);
    const prefix = block.toString('latin1', 345, 500).replace(/\0+$/, '');
    const name = prefix ? `${prefix}/${rawName}` : rawName;
    const type = String.fromCharCode(block[156]!);
    if (type !== '0' && type !== '\0') {
      const what = type === '1' ? 'hard link' : type === '2' ? 'symbolic link' : type === '5' ? 'directory' : `type ${JSON.stringify(type)}`;
      this.fail('TAR_ENTRY_TYPE', `${JSON.stringify(name)} is a ${what}, only regular files are allowed`);
      return;
    }
    if (name.startsWith('/') || name.split('/').includes('..') || name.includes('/') || name.includes('\0') || name === '' || name === '.') {
      this.fail('TAR_UNSAFE_PATH', `unsafe entry name ${JSON.stringify(name)}`);
      return;
    }
    if (this.seen.has(name)) {
      this.fail('TAR_DUPLICATE', `entry ${JSON.stringify(name)} appears twice`);
      return;
    }
    this.seen.add(name);
    const expected = ENTRIES[this.index]!;
    if (name !== expected) {
      this.fail('TAR_UNEXPECTED_ENTRY', `entry ${this.index + 1} is ${JSON.stringify(name)}, expected ${expected}`);
      return;
    }
    const size = readOctal(block, 124, 12);
    const mtime = readOctal(block, 136, 12);
    if (size === null || mtime === null) {
      this.fail('TAR_BAD_HEADER', `${name}: unreadable size or mtime`);
      return;
    }
    if (size > this.limit(name)) {
      this.fail('TAR_OVERSIZED', `${name} is ${size} bytes, over its limit of ${this.limit(name)}`);
      return;
    }
    if (!tarHeader(name, size, mtime).equals(block)) {
      this.fail('TAR_BAD_HEADER', `${name}: header is not canonical (mode 0644, uid/gid 0, no user or group names, ustar)`);
      return;
    }
    if (this.mtime === null) this.mtime = mtime;
    else if (mtime !== this.mtime) {
      this.fail('TAR_MTIME_MISMATCH', `${name}: mtime ${mtime} differs from the first entry's ${this.mtime}`);
      return;
    }
    this.index++;
    this.name = name;
    this.remaining = size;
    this.pad = padding(size).length;
    this.h.entry(name, size, mtime);
    if (size === 0) {
      this.h.entryEnd(name);
      this.state = 'header';
    } else this.state = 'body';
  }

  /** Call at end of input. */
  end(): void {
    if (this.state === 'failed') return;
    if (this.state === 'end' && this.endSeen === END_BYTES) return;
    if (this.state === 'header' && this.index < ENTRIES.length && this.buf.length === 0 && this.index === 0)
      this.fail('TAR_TRUNCATED', 'empty input: not a bundle');
    else if (this.state === 'header' && this.index < ENTRIES.length)
      this.fail('TAR_TRUNCATED', `archive ends before ${ENTRIES.slice(this.index).join(', ')}`);
    else if (this.state === 'header' && this.index === ENTRIES.length) this.fail('TAR_TRUNCATED', 'archive lacks its two terminating zero blocks');
    else if (this.state === 'end') this.fail('TAR_TRUNCATED', 'archive lacks its two terminating zero blocks');
    else this.fail('TAR_TRUNCATED', `archive ends inside ${this.name}`);
  }
}

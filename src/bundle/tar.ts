/**
 * The bundle's container: an uncompressed ustar archive of the version's fixed entries (eight in v3, seven before).
 *
 * Writing (format v2): node-tar's `Header` encodes each header from okit's fixed fields
 * (mode 0644, uid/gid 0, empty user and group names, one mtime). Format v1 headers (GNU tar's
 * spelling of the same fields) are still recognised, so v1 bundles keep verifying.
 *
 * Reading: node-tar's streaming `Parser` decodes every entry and delivers the bodies; nothing
 * is ever extracted. Around it okit keeps its strictness: each 512-byte header is compared,
 * before the parser sees it, with exactly what okit's writer produces for the expected entry
 * (so links, directories, pax and GNU extension headers, other owners or modes and any other
 * entry are refused, naming the field); the parser's decoded fields must agree; the padding
 * after each body and the two end blocks must be zero bytes, and nothing may follow them.
 */
import { Header, Parser, type ReadEntry } from 'tar';
import { ENTRIES } from './format.js';

/** The entry list expected: the verifier tells it once the manifest (the first entry) is read. */
export type EntryList = () => readonly string[];

export const BLOCK = 512;
export const END_BYTES = 2 * BLOCK;

/** Container encodings: 1 = GNU tar style numbers (`0000644\0`), 2 = node-tar's (`000644 \0`). */
export type TarVersion = 1 | 2;

/** One canonical ustar header for a regular file, as node-tar encodes it (format v2). */
export function tarHeader(name: string, size: number, mtime: number): Buffer {
  if (Buffer.byteLength(name) >= 100) throw new RangeError(`tar name too long: ${name}`);
  const h = new Header({ path: name, mode: 0o644, uid: 0, gid: 0, size, mtime: new Date(mtime * 1000), type: 'File', uname: '', gname: '', devmaj: 0, devmin: 0 });
  const block = Buffer.alloc(BLOCK);
  if (h.encode(block, 0)) throw new RangeError(`tar header for ${name} would need a pax extension`);
  return block;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/**
 * A format v1 header (okit 0.1, byte for byte what `tar --format=ustar --owner=0 --group=0
 * --numeric-owner --mode=0644 --mtime=@T -b1` writes): kept by hand only to recognise v1
 * bundles; node-tar cannot produce these bytes.
 */
export function tarHeaderV1(name: string, size: number, mtime: number): Buffer {
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

const HEADER_OF: Record<TarVersion, (name: string, size: number, mtime: number) => Buffer> = { 1: tarHeaderV1, 2: tarHeader };

export function padding(size: number): Buffer {
  const r = size % BLOCK;
  return Buffer.alloc(r === 0 ? 0 : BLOCK - r, 0);
}

export interface TarProblem {
  code: string;
  message: string;
}

export interface TarHandlers {
  /** A header was accepted; its body follows in data() calls. */
  entry(name: string, size: number, mtime: number): void;
  data(chunk: Buffer): void;
  entryEnd(name: string): void;
  problem(p: TarProblem): void;
}

export interface EntryLimit {
  (name: string): number;
}

/** Where each entry's body lies in the archive (for reading one entry again). */
export interface EntryPlace {
  name: string;
  /** Byte offset of the body. */
  offset: number;
  size: number;
}

const FIELDS: Array<[string, number, number]> = [
  ['name', 0, 100], ['mode', 100, 108], ['uid', 108, 116], ['gid', 116, 124], ['size', 124, 136], ['mtime', 136, 148],
  ['chksum', 148, 156], ['typeflag', 156, 157], ['linkname', 157, 257], ['magic', 257, 263], ['version', 263, 265],
  ['uname', 265, 297], ['gname', 297, 329], ['devmajor', 329, 337], ['devminor', 337, 345], ['prefix', 345, 500], ['padding', 500, 512],
];

const NUMERIC = new Set(['mode', 'uid', 'gid', 'size', 'mtime', 'chksum', 'devmajor', 'devminor']);

/** A header field shown so that NULs and spaces are visible (text fields: up to the first NUL). */
function show(b: Buffer, field = 'chksum'): string {
  const s = b.toString('latin1');
  if (/^\0*$/.test(s)) return 'empty';
  if (!NUMERIC.has(field)) return `'${JSON.stringify(s.replace(/\0.*$/s, '')).slice(1, -1)}'`;
  const trimmed = s.replace(/\0+$/, '');
  const vis = JSON.stringify(trimmed).slice(1, -1);
  return `'${vis}'${trimmed.length < s.length && trimmed.length + 1 < s.length ? ` + ${s.length - trimmed.length} NULs` : trimmed.length < s.length ? ' + NUL' : ''}`;
}

const ending = (s: string) => (/ \0$/.test(s) ? 'space-NUL' : /\0 $/.test(s) ? 'NUL-space' : /^[0-7]+\0$/.test(s) ? 'NUL' : null);

/** Says how a numeric field's spelling differs when only its terminator does (a re-pack by another tool). */
function hint(found: Buffer, expected: Buffer): string {
  const a = ending(found.toString('latin1'));
  const b = ending(expected.toString('latin1'));
  if (!a || !b || a === b) return '';
  const who: Record<string, string> = { 'space-NUL': ', as node-tar writes it', NUL: ', as GNU tar and python write it', 'NUL-space': '' };
  return ` (the field ends in ${a}${who[a]}; okit's ends in ${b})`;
}

/**
 * The first field where `found` differs from `expected`, as a sentence. chksum is named only
 * when nothing else differs (any other change changes it too).
 */
export function headerDiff(found: Buffer, expected: Buffer): string {
  for (const [f, a, b] of FIELDS) {
    if (f === 'chksum') continue;
    const x = found.subarray(a, b);
    const y = expected.subarray(a, b);
    if (!x.equals(y)) return `${f} is ${show(x, f)}, expected ${show(y, f)}${hint(x, y)}`;
  }
  return `chksum is ${show(found.subarray(148, 156))}, expected ${show(expected.subarray(148, 156))}${hint(found.subarray(148, 156), expected.subarray(148, 156))}`;
}

function readOctal(buf: Buffer, off: number, len: number): number | null {
  const s = buf.toString('latin1', off, off + len);
  const m = /^ *([0-7]+) *\0? *$/.exec(s.replace(/\0+$/, '\0'));
  if (!m) return null;
  const v = parseInt(m[1]!, 8);
  return Number.isSafeInteger(v) ? v : null;
}

const TYPES: Record<string, string> = { '1': 'hard link', '2': 'symbolic link', '3': 'character device', '4': 'block device', '5': 'directory', '6': 'FIFO', '7': 'contiguous file', x: 'pax extended header', g: 'pax global header', L: 'GNU long-name header', K: 'GNU long-link header', V: 'GNU volume header', M: 'GNU multi-volume header', S: 'GNU sparse file' };

/**
 * Push reader for a bundle's tar: write() chunks in order, then end(). Stops at the first
 * structural problem (after that, byte offsets mean nothing); content problems are the caller's.
 */
export class TarReader {
  private readonly parser: Parser;
  private state: 'header' | 'body' | 'padding' | 'end' | 'failed' | 'done' = 'header';
  private hdr = Buffer.alloc(BLOCK);
  private hdrLen = 0;
  private index = 0;
  private remaining = 0;
  private pad = 0;
  private name = '';
  private size = 0;
  private endSeen = 0;
  private offset = 0;
  /** The node-tar entry being read, and what it delivered. */
  private current: ReadEntry | null = null;
  private delivered = 0;
  private parserEntries = 0;
  mtime: number | null = null;
  /** The container encoding, fixed by the first header. */
  version: TarVersion | null = null;
  readonly places: EntryPlace[] = [];

  constructor(
    private readonly h: TarHandlers,
    private readonly limit: EntryLimit,
    private readonly entries: EntryList = () => ENTRIES,
  ) {
    this.parser = new Parser({ strict: true, gzip: false, brotli: false, zstd: false } as ConstructorParameters<typeof Parser>[0]);
    this.parser.on('entry', (e: ReadEntry) => this.onEntry(e));
    this.parser.on('warn', (code: string, message: string | Error) => this.fail('TAR_BAD_HEADER', `tar parser (node-tar): ${code}: ${message instanceof Error ? message.message : message}`));
    this.parser.on('error', (e: Error) => this.fail('TAR_BAD_HEADER', `tar parser (node-tar): ${e.message}`));
    for (const ev of ['meta', 'ignoredEntry']) this.parser.on(ev, () => this.fail('TAR_ENTRY_TYPE', `entry ${this.index + 1}: an extension header, only regular files are allowed`));
  }

  get failed(): boolean {
    return this.state === 'failed';
  }

  private fail(code: string, message: string): void {
    if (this.state === 'failed') return;
    this.state = 'failed';
    this.h.problem({ code, message });
  }

  /** node-tar's view of the entry just checked: it must agree with okit's. */
  private onEntry(e: ReadEntry): void {
    this.parserEntries++;
    const hd = e.header;
    const agree =
      e.type === 'File' && e.path === this.name && e.size === this.size && !e.extended && !e.globalExtended && hd.cksumValid &&
      hd.mode === 0o644 && hd.uid === 0 && hd.gid === 0 && !hd.uname && !hd.gname && !hd.linkpath && Math.floor((hd.mtime?.getTime() ?? -1) / 1000) === this.mtime;
    if (!agree) {
      this.fail('TAR_BAD_HEADER', `${this.name}: node-tar decodes entry ${this.index} as ${JSON.stringify({ type: e.type, path: e.path, size: e.size })}, not the checked header`);
      return;
    }
    this.current = e;
    this.delivered = 0;
    e.on('data', (c: Buffer) => {
      if (this.state === 'failed') return;
      this.delivered += c.length;
      this.h.data(c);
    });
  }

  write(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && this.state !== 'failed') {
      if (this.state === 'body') {
        const n = Math.min(this.remaining, chunk.length - off);
        this.feed(chunk.subarray(off, off + n));
        off += n;
        this.remaining -= n;
        if (this.remaining === 0 && this.pad === 0) this.endEntry();
        else if (this.remaining === 0) this.state = 'padding';
        continue;
      }
      if (this.state === 'padding') {
        const n = Math.min(this.pad, chunk.length - off);
        for (let i = off; i < off + n; i++)
          if (chunk[i] !== 0) {
            this.fail('TAR_BAD_PADDING', `${this.name}: byte ${this.offset + (i - off)} of the padding after its body is 0x${chunk[i]!.toString(16).padStart(2, '0')}, not zero`);
            return;
          }
        this.feed(chunk.subarray(off, off + n));
        off += n;
        this.pad -= n;
        if (this.pad === 0) this.endEntry();
        continue;
      }
      if (this.state === 'end' || this.state === 'done') {
        const n = chunk.length - off;
        for (let i = off; i < off + n; i++) {
          if (this.endSeen >= END_BYTES) {
            this.fail('TAR_TRAILING_DATA', `${chunk.length - i} bytes follow the two end blocks (at byte ${this.offset + (i - off)})`);
            return;
          }
          if (chunk[i] !== 0) {
            this.fail('TAR_TRAILING_DATA', `byte ${this.offset + (i - off)}, in the ${this.endSeen < BLOCK ? 'first' : 'second'} end block, is not zero: the last entry must be followed by exactly two zero blocks`);
            return;
          }
          this.endSeen++;
        }
        this.feed(chunk.subarray(off, off + n));
        off += n;
        if (this.endSeen === END_BYTES) this.state = 'done';
        continue;
      }
      // header: gather one block
      const take = Math.min(BLOCK - this.hdrLen, chunk.length - off);
      chunk.copy(this.hdr, this.hdrLen, off, off + take);
      this.hdrLen += take;
      off += take;
      if (this.hdrLen === BLOCK) {
        this.hdrLen = 0;
        this.header(this.hdr);
      }
    }
  }

  private feed(b: Buffer): void {
    this.offset += b.length;
    if (b.length) this.parser.write(b);
  }

  private endEntry(): void {
    const name = this.name;
    if (this.current === null || this.delivered !== this.size) {
      this.fail('TAR_BAD_HEADER', `${name}: node-tar delivered ${this.delivered} of its ${this.size} bytes`);
      return;
    }
    this.current = null;
    this.state = 'header';
    this.h.entryEnd(name);
  }

  private header(block: Buffer): void {
    const at = this.offset;
    if (this.index === this.entries().length) {
      // Every entry read: what follows must be the two zero blocks.
      this.state = 'end';
      this.endSeen = 0;
      this.offset = at;
      this.write(Buffer.from(block));
      return;
    }
    if (block.every((b) => b === 0)) {
      this.fail('TAR_MISSING_ENTRY', `the archive ends (a zero block at byte ${at}) before ${this.entries().slice(this.index).join(', ')}`);
      return;
    }
    const stored = readOctal(block, 148, 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
    if (stored === null || stored !== sum) {
      this.fail('TAR_BAD_CHECKSUM', `header ${this.index + 1} (byte ${at}): chksum field ${show(block.subarray(148, 156))} ${stored === null ? 'is not an octal number' : `says ${stored}, the header sums to ${sum}`}`);
      return;
    }
    const nul = block.indexOf(0, 0);
    const rawName = block.toString('utf8', 0, nul === -1 || nul > 100 ? 100 : nul);
    const prefix = block.toString('latin1', 345, 500).replace(/\0+$/, '');
    const name = prefix ? `${prefix}/${rawName}` : rawName;
    const type = String.fromCharCode(block[156]!);
    if (type !== '0' && type !== '\0') {
      const what = TYPES[type] ?? `entry of type ${JSON.stringify(type)}`;
      this.fail('TAR_ENTRY_TYPE', `entry ${this.index + 1} (${JSON.stringify(name)}) is a ${what}: only regular files are allowed`);
      return;
    }
    if (name.startsWith('/') || name.split('/').includes('..') || name.includes('/') || name.includes('\0') || name === '' || name === '.') {
      this.fail('TAR_UNSAFE_PATH', `entry ${this.index + 1}: unsafe entry name ${JSON.stringify(name)}`);
      return;
    }
    if (this.entries().slice(0, this.index).includes(name)) {
      this.fail('TAR_DUPLICATE', `entry ${this.index + 1}: ${JSON.stringify(name)} appears twice`);
      return;
    }
    const expected = this.entries()[this.index]!;
    if (name !== expected) {
      this.fail('TAR_UNEXPECTED_ENTRY', `entry ${this.index + 1} is ${JSON.stringify(name)}, expected ${expected}`);
      return;
    }
    const size = readOctal(block, 124, 12);
    const mtime = readOctal(block, 136, 12);
    if (size === null || mtime === null) {
      this.fail('TAR_BAD_HEADER', `${name}: ${size === null ? `size field ${show(block.subarray(124, 136))}` : `mtime field ${show(block.subarray(136, 148))}`} is not an octal number`);
      return;
    }
    if (size > this.limit(name)) {
      this.fail('TAR_OVERSIZED', `${name} is ${size} bytes, over its limit of ${this.limit(name)}`);
      return;
    }
    if (this.version === null) {
      const v: TarVersion | null = tarHeader(name, size, mtime).equals(block) ? 2 : tarHeaderV1(name, size, mtime).equals(block) ? 1 : null;
      if (v === null) {
        this.fail('TAR_BAD_HEADER', `${name}: header ${headerDiff(block, tarHeader(name, size, mtime))} (compared with okit's format v2 header; a v1 header, as GNU tar writes it with the flags in docs/bundle-format.md §1, is accepted too)`);
        return;
      }
      this.version = v;
    } else {
      const want = HEADER_OF[this.version](name, size, mtime);
      if (!want.equals(block)) {
        this.fail('TAR_BAD_HEADER', `${name}: header ${headerDiff(block, want)} (okit v${this.version}, as the first header)`);
        return;
      }
    }
    if (this.mtime === null) this.mtime = mtime;
    else if (mtime !== this.mtime) {
      this.fail('TAR_MTIME_MISMATCH', `${name}: mtime ${mtime} differs from the first entry's ${this.mtime}`);
      return;
    }
    this.index++;
    this.name = name;
    this.size = size;
    this.remaining = size;
    this.pad = padding(size).length;
    this.places.push({ name, offset: at + BLOCK, size });
    this.h.entry(name, size, mtime);
    this.feed(Buffer.from(block));
    if (this.state === 'failed') return;
    if (this.current === null) {
      this.fail('TAR_BAD_HEADER', `${name}: node-tar did not read this header as an entry`);
      return;
    }
    if (size === 0) this.endEntry();
    else this.state = 'body';
  }

  /** Call at end of input. */
  end(): void {
    if (this.state === 'failed') return;
    if (this.state === 'done') {
      this.parser.end();
      return;
    }
    if (this.state === 'header' && this.index === 0 && this.hdrLen === 0 && this.offset === 0) this.fail('TAR_TRUNCATED', 'empty input: not a bundle');
    else if (this.state === 'header' && this.index < this.entries().length) this.fail('TAR_TRUNCATED', `the archive ends at byte ${this.offset + this.hdrLen}, before ${this.entries().slice(this.index).join(', ')}`);
    else if (this.state === 'header' || this.state === 'end') this.fail('TAR_TRUNCATED', `the archive lacks its two terminating zero blocks (${this.state === 'end' ? this.endSeen : this.hdrLen} of ${END_BYTES} bytes)`);
    else this.fail('TAR_TRUNCATED', `the archive ends inside ${this.name} (at byte ${this.offset})`);
  }
}

/**
 * Reading a bundle's JSONL: ndjson splits and parses the lines; okit keeps them strict. Each
 * parsed line is re-canonicalised and its bytes (plus `\n`) must be exactly the next bytes of
 * the file, so blank lines, `\r\n`, spaces, unsorted keys, other number or string spellings,
 * invalid UTF-8 and a missing final `\n` are all refused, naming the line. A line longer than
 * MAX_LINE_BYTES stops the reading of that file (memory stays bounded by the limit).
 */
import { hash as oneShotHash } from 'node:crypto';
import ndjson from 'ndjson';
import type { Transform } from 'node:stream';
import { canonicalize } from '../util/canonical.js';
import { MAX_LINE_BYTES } from './format.js';

export interface LineSink {
  /** A canonical line: its parsed value and its exact bytes (without the `\n`). */
  line(value: unknown, bytes: Buffer, n: number): void;
  /** Line n is not canonical JSON + `\n`; why. */
  bad(n: number, why: string): void;
}

export class JsonlReader {
  private readonly nd: Transform;
  private raw: Buffer[] = [];
  private rawOff = 0;
  private rawLen = 0;
  /** Lines read so far (canonical or not). */
  lines = 0;
  /** Past an overlong line nothing more is parsed. */
  abandoned = false;

  constructor(private readonly sink: LineSink) {
    this.nd = ndjson.parse({ strict: true }) as unknown as Transform;
    this.nd.on('data', (v: unknown) => this.onValue(v));
    this.nd.on('error', () => this.onUnparsable());
  }

  write(b: Buffer): void {
    if (this.abandoned || b.length === 0) return;
    this.raw.push(b);
    this.rawLen += b.length;
    this.nd.write(b);
    // ndjson emits every complete line synchronously: what is left is one unfinished line.
    if (this.rawLen > MAX_LINE_BYTES + 1) {
      this.sink.bad(this.lines + 1, `longer than ${MAX_LINE_BYTES} bytes; the rest of the file is not read line by line`);
      this.abandon();
    }
  }

  end(): void {
    if (this.abandoned) return;
    this.nd.end();
    if (this.rawLen > 0) {
      this.lines++;
      this.sink.bad(this.lines, 'the last line does not end with \\n');
      this.rawLen = 0;
      this.raw = [];
    }
  }

  /**
   * At a segment boundary (the bytes so far end with `\n`, more follow): reports the blank
   * lines ndjson skipped at the end, as they would be before the next line.
   */
  flushBlank(): void {
    if (!this.abandoned) this.skipBlank();
  }

  private abandon(): void {
    this.abandoned = true;
    this.raw = [];
    this.rawLen = 0;
    this.nd.destroy();
  }

  /** The next `len` unread bytes (fewer if the file has fewer), without consuming them. */
  private peek(len: number): Buffer {
    const first = this.raw[0];
    if (first && first.length - this.rawOff >= len) return first.subarray(this.rawOff, this.rawOff + len);
    const parts: Buffer[] = [];
    let need = len;
    let off = this.rawOff;
    for (const b of this.raw) {
      const take = Math.min(need, b.length - off);
      parts.push(b.subarray(off, off + take));
      need -= take;
      off = 0;
      if (need === 0) break;
    }
    return Buffer.concat(parts);
  }

  private consume(len: number): void {
    this.rawLen -= len;
    while (len > 0) {
      const b = this.raw[0]!;
      const left = b.length - this.rawOff;
      if (len < left) {
        this.rawOff += len;
        return;
      }
      len -= left;
      this.raw.shift();
      this.rawOff = 0;
    }
  }

  /** Length of the unread raw line up to (not including) its `\n`, or -1 if there is none. */
  private rawLineLength(): number {
    let acc = 0;
    let off = this.rawOff;
    for (const b of this.raw) {
      const i = b.indexOf(0x0a, off);
      if (i !== -1) return acc + (i - off);
      acc += b.length - off;
      off = 0;
    }
    return -1;
  }

  /** Skips one raw line (a line ndjson refused or okit found not canonical). */
  private skipLine(): number {
    const len = this.rawLineLength();
    if (len === -1) {
      const all = this.rawLen;
      this.consume(all);
      return all;
    }
    this.consume(len + 1);
    return len;
  }

  private onUnparsable(): void {
    if (this.abandoned) return;
    this.skipBlank();
    this.lines++;
    const len = this.skipLine();
    this.sink.bad(this.lines, len > MAX_LINE_BYTES ? `longer than ${MAX_LINE_BYTES} bytes` : 'not JSON');
  }

  /** ndjson drops empty lines silently: each is reported here, before the line it precedes. */
  private skipBlank(): void {
    for (;;) {
      const len = this.rawLineLength();
      if (len === -1 || len > 1) return;
      const b = this.peek(len);
      if (len === 1 && b[0] !== 0x0d) return;
      this.lines++;
      this.consume(len + 1);
      this.sink.bad(this.lines, len === 0 ? 'an empty line' : 'an empty line ending in \\r\\n');
    }
  }

  private onValue(v: unknown): void {
    if (this.abandoned) return;
    this.skipBlank();
    let canon: string;
    try {
      canon = canonicalize(v);
    } catch (e) {
      this.lines++;
      const len = this.skipLine();
      this.sink.bad(this.lines, len > MAX_LINE_BYTES ? `longer than ${MAX_LINE_BYTES} bytes` : `not canonical JSON: ${(e as Error).message}`);
      return;
    }
    const want = Buffer.from(canon + '\n', 'utf8');
    this.lines++;
    const got = this.peek(want.length);
    if (got.equals(want)) {
      if (want.length - 1 > MAX_LINE_BYTES) {
        this.consume(want.length);
        this.sink.bad(this.lines, `longer than ${MAX_LINE_BYTES} bytes`);
        return;
      }
      // Copied only when it straddles chunks; the sink must not keep it.
      const bytes = got.subarray(0, want.length - 1);
      this.consume(want.length);
      this.sink.line(v, bytes, this.lines);
      return;
    }
    const len = this.skipLine();
    if (len > MAX_LINE_BYTES) this.sink.bad(this.lines, `longer than ${MAX_LINE_BYTES} bytes`);
    else if (this.rawLen === 0 && got.length < want.length && got.equals(want.subarray(0, got.length))) this.sink.bad(this.lines, 'the last line does not end with \\n');
    else this.sink.bad(this.lines, 'not RFC 8785 canonical JSON (its canonical form differs from its bytes)');
  }
}

/**
 * The hash preimage of a canonical history line: the line without its `,"hash":"<64 hex>"`
 * member. The members after `hash` (job_id, n, pos, prev_hash, tenant, to_state) are strings,
 * numbers or null, which cannot contain that text unescaped, so the last occurrence is the
 * member. Equal to the canonical JSON of the row without `hash`, which is what rowHash hashes.
 */
const HASH_MEMBER = Buffer.from(',"hash":"');
const HASH_TEXT = ',"hash":"';

/**
 * The sha256 (hex) of a canonical history line's hash preimage (see historyPreimage), from
 * its text; null when the line has no hash member. One string and one digest per row.
 */
export function historyLineHash(line: string): string | null {
  const i = line.lastIndexOf(HASH_TEXT);
  if (i === -1 || line.charCodeAt(i + HASH_TEXT.length + 64) !== 0x22) return null;
  return oneShotHash('sha256', line.slice(0, i) + line.slice(i + HASH_TEXT.length + 65), 'hex');
}
export function historyPreimage(line: Buffer): [Buffer, Buffer] | null {
  const i = line.lastIndexOf(HASH_MEMBER);
  if (i === -1 || line[i + HASH_MEMBER.length + 64] !== 0x22) return null;
  return [line.subarray(0, i), line.subarray(i + HASH_MEMBER.length + 65)];
}

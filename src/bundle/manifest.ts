/** Pure manifest building, rendering and parsing. */
import { canonicalize } from '../util/canonical.js';
import { isCanonicalTimestamp } from '../util/time.js';
import { FORMAT_ID, listedFilesOf, READABLE_VERSIONS, type FileEntry, type Manifest } from './format.js';

export function renderManifest(m: Manifest): Buffer {
  return Buffer.from(canonicalize(m), 'utf8');
}

/** SHA256SUMS text (what `sha256sum -c` reads) for the data files, in entry order. */
export function renderSums(files: readonly FileEntry[]): Buffer {
  return Buffer.from(files.map((f) => `${f.sha256}  ${f.name}\n`).join(''), 'utf8');
}

const HEX64 = /^[0-9a-f]{64}$/;
const POS = /^(0|[1-9][0-9]{0,18})$/;
const TENANT = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const keysAre = (o: Record<string, unknown>, keys: string[]) => Object.keys(o).sort().join(',') === [...keys].sort().join(',');

/** Validates a parsed manifest's shape. Returns the problems (empty when valid). */
export function manifestProblems(v: unknown): string[] {
  const p: string[] = [];
  if (!isObj(v)) return ['manifest is not an object'];
  if (!keysAre(v, ['format', 'version', 'tenant', 'window', 'as_of', 'counts', 'files', 'key_id', 'previous'])) p.push('manifest has missing or extra fields');
  if (typeof v.tenant !== 'string' || !TENANT.test(v.tenant)) p.push('tenant invalid');
  const w = v.window;
  if (!isObj(w) || !keysAre(w, ['from_pos', 'to_pos', 'from', 'to'])) p.push('window invalid');
  else {
    if (typeof w.from_pos !== 'string' || !POS.test(w.from_pos) || w.from_pos === '0') p.push('window.from_pos invalid');
    if (typeof w.to_pos !== 'string' || !POS.test(w.to_pos)) p.push('window.to_pos invalid');
    else if (typeof w.from_pos === 'string' && POS.test(w.from_pos) && BigInt(w.to_pos) < BigInt(w.from_pos) - 1n) p.push('window.to_pos before from_pos - 1');
    for (const k of ['from', 'to'] as const) if (w[k] !== null && !isCanonicalTimestamp(w[k])) p.push(`window.${k} invalid`);
  }
  if (!isCanonicalTimestamp(v.as_of)) p.push('as_of invalid');
  const version = typeof v.version === 'number' ? v.version : 3;
  const LISTED_FILES = listedFilesOf(version);
  const c = v.counts;
  const countKeys = version >= 3 ? ['jobs', 'history', 'throttles', 'queues', 'snapshots'] : ['jobs', 'history', 'throttles', 'snapshots'];
  if (!isObj(c) || !keysAre(c, countKeys) || !Object.values(c).every(isCount)) p.push('counts invalid');
  const f = v.files;
  if (!Array.isArray(f) || f.length !== LISTED_FILES.length) p.push('files invalid');
  else
    f.forEach((e, i) => {
      if (!isObj(e) || !keysAre(e, ['name', 'bytes', 'lines', 'sha256']) || e.name !== LISTED_FILES[i] || !isCount(e.bytes) || !isCount(e.lines) || typeof e.sha256 !== 'string' || !HEX64.test(e.sha256))
        p.push(`files[${i}] invalid (expected ${LISTED_FILES[i]})`);
    });
  if (typeof v.key_id !== 'string' || !HEX64.test(v.key_id)) p.push('key_id invalid');
  if (v.previous !== null && (typeof v.previous !== 'string' || !HEX64.test(v.previous))) p.push('previous invalid');
  return p;
}

/** The manifest's format version if okit reads it (1, 2 or 3), else null. */
export function readableVersion(v: unknown): number | null {
  return isObj(v) && v.format === FORMAT_ID && typeof v.version === 'number' && READABLE_VERSIONS.includes(v.version) ? v.version : null;
}

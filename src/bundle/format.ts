/**
 * Audit bundle format v1: constants, entry order, manifest shape and the verifier's error
 * codes. The spec is docs/bundle-format.md; keep both in step (one name for one thing).
 */
export const FORMAT_ID = 'okit-audit-bundle';
/**
 * The version okit writes. v2 differs from v1 only in the tar header bytes (node-tar's
 * encoding of the same fields); the verifier reads both.
 */
export const FORMAT_VERSION = 3;
export const READABLE_VERSIONS: readonly number[] = [1, 2, 3];

export const MANIFEST = 'manifest.json';
export const SIGNATURE = 'manifest.sig';
export const SUMS = 'SHA256SUMS';
/** Data files of format v3 (v3 added queues.jsonl: queue events, pause and resume). */
export const DATA_FILES = ['jobs.jsonl', 'history.jsonl', 'throttles.jsonl', 'queues.jsonl', 'snapshots.jsonl'] as const;
export type DataFile = (typeof DATA_FILES)[number];
/** Data files of formats v1 and v2. */
export const DATA_FILES_V2: readonly DataFile[] = ['jobs.jsonl', 'history.jsonl', 'throttles.jsonl', 'snapshots.jsonl'];
/** A version's data files, in entry order. */
export function dataFilesOf(version: number): readonly DataFile[] {
  return version >= 3 ? DATA_FILES : DATA_FILES_V2;
}
/** The exact tar entry list of a version, in order. Nothing else is ever accepted. */
export function entriesOf(version: number): readonly string[] {
  return [MANIFEST, SIGNATURE, SUMS, ...dataFilesOf(version)];
}
/** The entry list okit writes (v3). */
export const ENTRIES = entriesOf(FORMAT_VERSION);
/** Files described in manifest.files (everything but the manifest and its signature). */
export function listedFilesOf(version: number): readonly string[] {
  return [SUMS, ...dataFilesOf(version)];
}
export const LISTED_FILES = listedFilesOf(FORMAT_VERSION);
/** The tar header encoding of a manifest version: v3 writes v2's headers. */
export function tarEncodingOf(version: number): 1 | 2 {
  return version === 1 ? 1 : 2;
}

/** Size limits the reader enforces before reading a byte of the body. */
export const MAX_MANIFEST_BYTES = 64 * 1024;
export const MAX_SUMS_BYTES = 4096;
export const SIGNATURE_BYTES = 64;
/** 8 GiB: the largest size an 11-digit octal ustar size field can hold; data files beyond it are refused. */
export const MAX_DATA_BYTES = 8 * 1024 ** 3 - 1;
/** A JSONL line longer than this is refused (a job payload is at most 64 KiB). */
export const MAX_LINE_BYTES = 1024 * 1024;

export interface FileEntry {
  name: string;
  bytes: number;
  lines: number;
  sha256: string;
}

export interface Window {
  /** First ledger position in the bundle (decimal string). */
  from_pos: string;
  /** Last ledger position in the bundle (decimal string); from_pos - 1 when empty. */
  to_pos: string;
  /** The --from argument, normalised, or null. */
  from: string | null;
  /** The --to argument, normalised, or null. */
  to: string | null;
}

export interface Manifest {
  format: typeof FORMAT_ID;
  version: 1 | 2 | 3;
  tenant: string;
  window: Window;
  as_of: string;
  /** `queues` from v3 on. */
  counts: { jobs: number; history: number; throttles: number; queues?: number; snapshots: number };
  files: FileEntry[];
  key_id: string;
  /** sha256 of the previous bundle's manifest.json bytes, or null for the first bundle. */
  previous: string | null;
}

/** Verifier error codes (stable; documented in docs/bundle-format.md and OFFLINE.md). */
export const ERROR_CODES = {
  IO_ERROR: 'the bundle or a key could not be read',
  TAR_TRUNCATED: 'the tar ends inside a header or a body',
  TAR_BAD_CHECKSUM: 'a tar header checksum is wrong',
  TAR_BAD_HEADER: 'a tar header is not canonical ustar as okit writes it (fields, padding, numbers)',
  TAR_ENTRY_TYPE: 'an entry is not a regular file (link, directory, device, extension header)',
  TAR_UNSAFE_PATH: 'an entry name is absolute, contains .. or a NUL, or is not a plain file name',
  TAR_DUPLICATE: 'an entry name appears twice',
  TAR_UNEXPECTED_ENTRY: 'an entry is not the expected one at this place in the list',
  TAR_MISSING_ENTRY: 'an expected entry is absent',
  TAR_OVERSIZED: 'an entry is larger than its limit',
  TAR_BAD_PADDING: 'the padding after a body is not zero bytes',
  TAR_TRAILING_DATA: 'anything but exactly two zero blocks after the last entry',
  TAR_MTIME_MISMATCH: 'an entry mtime differs from the manifest as_of seconds',
  MANIFEST_INVALID: 'manifest.json is not canonical JSON of the v1 shape',
  MANIFEST_VERSION: 'the format id or version is not okit-audit-bundle v1, v2 or v3, or disagrees with the tar encoding',
  SIGNATURE_INVALID: 'manifest.sig is not a valid Ed25519 signature of manifest.json by the given key',
  KEY_UNKNOWN: 'the manifest key id matches none of the --pubkey keys',
  SUMS_MISMATCH: 'SHA256SUMS differs from what the manifest lists',
  FILE_SIZE_MISMATCH: 'a file size differs from the manifest',
  FILE_HASH_MISMATCH: 'a file sha256 differs from the manifest',
  LINE_COUNT_MISMATCH: 'a file line count differs from the manifest',
  COUNT_MISMATCH: 'manifest counts differ from the files line counts',
  LINE_NOT_CANONICAL: 'a line is not RFC 8785 canonical JSON followed by \\n',
  LINE_INVALID: 'a line lacks a field or has a field of the wrong type',
  SORT_ORDER: 'lines are not strictly sorted by the file sort key',
  TENANT_MISMATCH: 'a line belongs to another tenant than the manifest',
  POSITION_OUT_OF_WINDOW: 'a history row, throttle event or queue event lies outside [from_pos, to_pos]',
  POSITION_DUPLICATE: 'a ledger position is used twice',
  POSITION_GAP: 'a ledger position of the window is used by no line',
  CHAIN_HASH_MISMATCH: 'a history row does not hash to its hash field',
  CHAIN_LINK_BROKEN: "a history row's prev_hash is not its predecessor's hash",
  CHAIN_GAP: "a job's rows are not numbered consecutively",
  CHAIN_ORDER: "a job's row has a position not after its predecessor's",
  CHAIN_UNANCHORED: "a continued job's predecessor row is in no supplied --previous bundle (link not checkable)",
  JOB_MISSING: 'a history row belongs to a job absent from jobs.jsonl',
  JOB_WITHOUT_HISTORY: 'a job in jobs.jsonl has no history row in the bundle',
  JOB_HEAD_MISMATCH: "a job row's history_n/last_hash/state disagree with its chain",
  SNAPSHOT_MISSING: 'a job whose latest row is in the bundle has no snapshot',
  SNAPSHOT_UNEXPECTED: 'a snapshot for a job whose latest row is not in the bundle',
  SNAPSHOT_HEAD_MISMATCH: "a snapshot's history_n/history_hash is not its job's latest row",
  PREVIOUS_MISMATCH: 'the previous link is not the sha256 of the supplied previous manifest',
  PREVIOUS_GAP: 'from_pos is not the previous bundle to_pos + 1 (a bundle is missing)',
  PREVIOUS_INVALID: 'a supplied --previous bundle is itself invalid',
  PREVIOUS_NOT_CHECKED: 'the bundle links to a previous bundle but none was supplied',
} as const;
export type VerifyCode = keyof typeof ERROR_CODES;

export const EPOCH_AS_OF = '1970-01-01T00:00:00.000000Z';

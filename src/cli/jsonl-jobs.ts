/**
 * `okit job enqueue --file jobs.jsonl`: one job per line (the fields POST /jobs takes, snake
 * case), read with ndjson. All or nothing: the whole file is read and checked first, then sent
 * as one batch (one transaction), so a bad line N, found here or by the server, is
 * "line N: …" and nothing is enqueued. Hence at most 1,000 jobs and 4 MiB per file; blank
 * lines are skipped (and counted).
 */
import { readFile, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import ndjson from 'ndjson';
import { OkitError, isOkitError } from '../errors.js';
import type { EnqueueRequest } from '../worker/client.js';

export const MAX_FILE_JOBS = 1000;
export const MAX_FILE_BYTES = 4 * 1024 * 1024;

const FIELDS: Record<string, keyof EnqueueRequest> = {
  type: 'type',
  payload: 'payload',
  priority: 'priority',
  max_attempts: 'maxAttempts',
  idempotency_key: 'idempotencyKey',
  not_before: 'notBefore',
  source_id: 'sourceId',
  run_id: 'runId',
};

export interface FileJobs {
  jobs: EnqueueRequest[];
  /** The file line of each job. */
  lines: number[];
}

function lineError(line: number, why: string): OkitError {
  return new OkitError('INVALID_INPUT', `line ${line}: ${why}`, { line });
}

/** Parses the file: every line a JSON object with known fields and a type; line numbers as an editor shows them. */
export async function readJobsFile(path: string): Promise<FileJobs> {
  const st = await stat(path);
  if (!st.isFile()) throw new OkitError('IO_ERROR', `${path}: not a regular file`);
  if (st.size > MAX_FILE_BYTES) throw new OkitError('INVALID_INPUT', `${path}: larger than ${MAX_FILE_BYTES} bytes (split it: each file is one transaction)`, { limit: MAX_FILE_BYTES });
  const text = await readFile(path, 'utf8');
  // Physical line of each non-blank line: ndjson skips blank lines, the error names the file's line.
  const nonBlank: number[] = [];
  text.split('\n').forEach((l, i) => {
    if (l.trim() !== '') nonBlank.push(i + 1);
  });
  const values: unknown[] = [];
  await new Promise<void>((resolve, reject) => {
    const nd = ndjson.parse({ strict: true });
    nd.on('data', (v: unknown) => values.push(v));
    nd.on('error', () => reject(lineError(nonBlank[values.length] ?? nonBlank.length, 'not valid JSON')));
    nd.on('end', () => resolve());
    Readable.from([text]).pipe(nd);
  });
  if (values.length === 0) throw new OkitError('INVALID_INPUT', `${path}: no jobs (one JSON object per line)`);
  if (values.length > MAX_FILE_JOBS) throw lineError(nonBlank[MAX_FILE_JOBS]!, `more than ${MAX_FILE_JOBS} jobs in one file (split it: each file is one transaction)`);
  const jobs = values.map((v, i) => {
    const line = nonBlank[i]!;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw lineError(line, 'must be a JSON object (one job)');
    const o = v as Record<string, unknown>;
    const job: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) {
      const f = FIELDS[k];
      if (!f) throw lineError(line, `${k}: unknown field (${Object.keys(FIELDS).join(', ')})`);
      if (x !== null) job[f] = x;
    }
    if (typeof job.type !== 'string') throw lineError(line, 'type: is required (a string)');
    return job as unknown as EnqueueRequest;
  });
  return { jobs, lines: nonBlank.slice(0, jobs.length) };
}

/** A server refusal naming `jobs[i]` (field or message) as the file's line. */
export function asLineError(e: unknown, lines: number[]): unknown {
  if (!isOkitError(e)) return e;
  const m = /jobs\[(\d+)\]\.?/.exec(e.message) ?? /jobs\[(\d+)\]/.exec(String(e.details?.field ?? ''));
  if (!m) return e;
  const line = lines[Number(m[1])];
  if (line === undefined) return e;
  return new OkitError(e.code, `line ${line}: ${e.message.replace(/jobs\[\d+\]\.?/, '')}`, { ...e.details, line });
}

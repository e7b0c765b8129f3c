/**
 * A verifier worker (worker_threads): checks the line-aligned segments it is sent
 * (segments.ts checkSegment) and answers each with its result, in the order received.
 */
import { parentPort } from 'node:worker_threads';
import type { DataFile } from './format.js';
import { checkSegment, resultBuffers, type SegmentResult } from './segments.js';

export interface SegmentRequest {
  f: DataFile;
  bytes: Uint8Array;
  tenant: string | null;
  last: boolean;
}

export interface SegmentReply {
  r: SegmentResult;
  bytes: Uint8Array;
}

const port = parentPort;
if (!port) throw new Error('verify-worker.js runs as a worker thread');
port.on('message', (m: SegmentRequest) => {
  const r = checkSegment(m.f, Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength), m.tenant, m.last);
  // The segment's buffer goes back with the result, to be reused.
  const reply: SegmentReply = { r, bytes: m.bytes };
  port.postMessage(reply, [...resultBuffers(r), m.bytes.buffer as ArrayBuffer]);
});

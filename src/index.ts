/**
 * The package's public API: `import { OkitClient, OkitWorker } from 'offline-kit'`.
 * (package.json `exports` maps the package root here; deep imports of dist/ are not part of it.)
 */
export { OkitClient, isRetryable, parseServerTiming } from './worker/client.js';
export type {
  BucketView,
  Claim,
  ClaimRequest,
  ClientOptions,
  EnqueueRequest,
  FirstSignal,
  LeaseRef,
  ServerPart,
  SignalReply,
  TtfsReport,
  UpstreamReport,
} from './worker/client.js';
export { OkitWorker, messageText } from './worker/worker.js';
export type { Handler, JobContext, ProgressReport, StopReason, WorkerEvents, WorkerOptions } from './worker/worker.js';
export { RetryableError, UpstreamError, retryAfterSeconds } from './worker/errors.js';
export type { Upstream } from './worker/errors.js';
export { OkitError, isOkitError } from './errors.js';
export type { ErrorCode } from './errors.js';
export type { HistoryRow, Job, Signal, SignalKind, Phase } from './ledger/types.js';
export type { JobState } from './ledger/states.js';
export { commandHandler, resolveCommand, parseReport, EX_TEMPFAIL } from './worker/command.js';
export type { CommandOptions } from './worker/command.js';

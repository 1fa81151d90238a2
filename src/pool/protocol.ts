/**
 * The main thread ↔ worker protocol: one task is a micro-batch of consecutive messages of one lane;
 * the worker handles them in order and stops at the first failure.
 *
 * Progress is shared memory, not messages: the worker stores how many messages it completed and when it
 * started the current one, so the main thread knows exactly which messages were handled even when it has
 * to terminate the worker (timeout) or the worker dies (crash).
 */
import type { Deserializer } from '../handlers/define-handler.ts';

export interface TaskMessage {
  readonly offset: string;
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
  readonly headers: Readonly<Record<string, unknown>>;
  readonly timestamp: string;
}

export interface HandlerTask {
  /** Absolute file URL of the handler module. */
  readonly url: string;
  readonly handler: string;
  readonly topic: string;
  readonly partition: number;
  readonly deserialize: Deserializer;
  readonly timeoutMs: number;
  /** Attempt number of the first message (a retry re-sends the failed message first); the rest are attempt 1. */
  readonly firstAttempt: number;
  readonly messages: readonly TaskMessage[];
  /** Layout: Int32 [0] = messages completed; Float64 [1] = Date.now() when the current message started. */
  readonly progress: SharedArrayBuffer;
}

export type FailureKind = 'receiver' | 'non-retryable' | 'deserialization' | 'timeout';

export interface FailureReport {
  readonly kind: FailureKind;
  /** Class name of what was thrown (e.g. TypeError, NonRetryableError). */
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
}

export interface TaskResult {
  /** Messages handled successfully, counted from the first of the batch. */
  readonly completed: number;
  /** Why message number `completed` failed; absent when the whole batch succeeded. */
  readonly failure?: FailureReport;
}

export const PROGRESS_BYTES = 16;

export function createProgress(): SharedArrayBuffer {
  return new SharedArrayBuffer(PROGRESS_BYTES);
}

export function readProgress(progress: SharedArrayBuffer): { completed: number; startedAt: number } {
  return {
    completed: Atomics.load(new Int32Array(progress, 0, 1), 0),
    startedAt: new Float64Array(progress, 8, 1)[0]!,
  };
}

/**
 * The main thread ↔ worker protocol: one task is a micro-batch of messages of one lane, laid out as units (runs of
 * messages that must run one after another, e.g. one partition's consecutive messages, or one key's). The worker
 * runs the units at the same time — their handlers interleave while they await — and the messages of a unit in
 * order, stopping a unit at its first failure.
 *
 * Progress is shared memory, not messages: the worker stores each message's state and when it started, so the
 * main thread knows exactly which messages were handled even when it has to terminate the worker (timeout) or the
 * worker dies (crash), and its watchdog sees which message overran.
 */
import type { Broker, Deserializer } from '../handlers/define-handler.ts';

/** A message as the main thread hands it over (a lane's record fits as it is: no per-message copy object). */
export interface TaskMessage {
  readonly offset: bigint;
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
  /** Attempt number of each message (1 on first delivery); absent: all are attempt 1. */
  readonly attempts?: readonly number[];
  /** Lengths of the units the messages are laid out in, in order; absent: one unit of all the messages. */
  readonly units?: readonly number[];
  /** Set (by the pool) when each unit's outcome is to be reported as soon as the unit ends (UnitReport). */
  readonly reportUnitsAs?: number;
  /** Where ctx.publish sends by default: the broker the handler consumes from. */
  readonly broker?: Broker;
  readonly messages: readonly TaskMessage[];
  /** Per-message state and start time, written by the worker (createProgress / MessageState). */
  readonly progress: SharedArrayBuffer;
}

/**
 * What crosses to the worker: the batch in columns, with every key and value copied into one buffer that is
 * transferred (moved), not cloned. Cloning TaskMessages costs about 2-3 µs per message on each side with 1 KiB
 * values, because the client gives every key and value its own ArrayBuffer and structured clone serialises,
 * allocates and copies each one (and then each small object) separately.
 */
export interface PackedBatch {
  readonly offsets: BigInt64Array;
  readonly timestamps: readonly string[];
  /** Key length and value length of message i at [2i] and [2i + 1]; -1 for null. */
  readonly lengths: Int32Array;
  /** Keys and values back to back, in message order (key before value). */
  readonly bytes: Uint8Array;
  /** Headers of message i; absent when no message of the batch has any. */
  readonly headers?: ReadonlyArray<Readonly<Record<string, unknown>> | undefined>;
}

/** What the worker receives: a HandlerTask whose messages travel packed. */
export interface WorkerTask extends Omit<HandlerTask, 'messages'> {
  readonly batch: PackedBatch;
}

export function packBatch(messages: readonly TaskMessage[]): PackedBatch {
  const n = messages.length;
  const lengths = new Int32Array(2 * n);
  let size = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    const k = m.key === null ? -1 : m.key.byteLength;
    const v = m.value === null ? -1 : m.value.byteLength;
    lengths[2 * i] = k;
    lengths[2 * i + 1] = v;
    size += Math.max(k, 0) + Math.max(v, 0);
  }
  // every byte is written below; an unzeroed, unpooled buffer (its own ArrayBuffer, so it can be transferred)
  // saves zeroing and page-faulting ~64 KiB per task
  const bytes = Buffer.allocUnsafeSlow(size);
  const offsets = new BigInt64Array(n);
  const timestamps = new Array<string>(n);
  let headers: Array<Readonly<Record<string, unknown>> | undefined> | undefined;
  let at = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    if (m.key !== null) {
      bytes.set(m.key, at);
      at += m.key.byteLength;
    }
    if (m.value !== null) {
      bytes.set(m.value, at);
      at += m.value.byteLength;
    }
    offsets[i] = m.offset;
    timestamps[i] = m.timestamp;
    for (const _ in m.headers) {
      (headers ??= new Array(n))[i] = m.headers;
      break;
    }
  }
  return headers === undefined ? { offsets, timestamps, lengths, bytes } : { offsets, timestamps, lengths, bytes, headers };
}

/** A message as the worker unpacks it. */
export interface UnpackedMessage extends Omit<TaskMessage, 'offset'> {
  readonly offset: string;
}

/** The messages again, keys and values as views into the batch's buffer (no copy). */
export function unpackBatch(batch: PackedBatch): UnpackedMessage[] {
  const out = new Array<UnpackedMessage>(batch.offsets.length);
  const { buffer, byteOffset } = batch.bytes;
  let at = byteOffset;
  const view = (length: number): Uint8Array | null => {
    if (length < 0) return null;
    const part = new Uint8Array(buffer, at, length);
    at += length;
    return part;
  };
  for (let i = 0; i < out.length; i++) {
    const key = view(batch.lengths[2 * i]!);
    const value = view(batch.lengths[2 * i + 1]!);
    out[i] = { offset: batch.offsets[i]!.toString(), key, value, headers: batch.headers?.[i] ?? {}, timestamp: batch.timestamps[i]! };
  }
  return out;
}

export type FailureKind = 'receiver' | 'non-retryable' | 'deserialization' | 'timeout';

export interface FailureReport {
  readonly kind: FailureKind;
  /** Class name of what was thrown (e.g. TypeError, NonRetryableError). */
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
}

/** A message a worker posts, told from the others by its marker key (WORKER_DEATH, UNIT_REPORT, WORKER_WARM). */
function isMarked(message: unknown, marker: string): boolean {
  return typeof message === 'object' && message !== null && (message as Record<string, unknown>)[marker] === true;
}

/** Marks a WorkerDeathReport among the messages a worker posts. */
export const WORKER_DEATH = 'conveyor.worker.death';

/**
 * Posted by a worker thread just before it dies of something its handler code left behind: an uncaught exception
 * (a throw in a timer), an unhandled rejection, or process.exit.
 */
export interface WorkerDeathReport {
  readonly [WORKER_DEATH]: true;
  readonly kind: 'uncaught_exception' | 'unhandled_rejection' | 'exit';
  /** A task was running: it fails with the death (WorkerCrashed). Otherwise the death came after its task finished. */
  readonly busy: boolean;
  /** The handler whose code it was (its async context, else the thread's last task), and its file. */
  readonly handler?: string;
  readonly file?: string;
  readonly error?: { readonly name: string; readonly message: string; readonly stack?: string };
  readonly exitCode?: number;
}

export function isWorkerDeathReport(message: unknown): message is WorkerDeathReport {
  return isMarked(message, WORKER_DEATH);
}

/** Marks a UnitReport among the messages a worker posts. */
export const UNIT_REPORT = 'conveyor.worker.unit';

/**
 * Posted by a worker as soon as one unit of a task ended (the task's other units may run on): its messages'
 * outcomes, so the main thread acknowledges them — and frees the unit's concurrency slot — without waiting for the
 * task's slowest unit. The task's result repeats them; whichever arrives first counts.
 */
export interface UnitReport {
  readonly [UNIT_REPORT]: true;
  /** HandlerTask.reportUnitsAs. */
  readonly task: number;
  /** Index of the unit in the task. */
  readonly unit: number;
  /** Outcome of each of the unit's messages, in order; failures, events published and durations likewise. */
  readonly outcomes: Uint8Array;
  readonly failures?: ReadonlyArray<FailureReport | undefined>;
  readonly published?: ReadonlyArray<readonly PublishedEvent[] | undefined>;
  readonly durations: Float64Array;
}

export function isUnitReport(message: unknown): message is UnitReport {
  return isMarked(message, UNIT_REPORT);
}

/** Marks a WorkerWarmReport among the messages a worker posts. */
export const WORKER_WARM = 'conveyor.worker.warm';

/** Posted by a worker thread once it imported every handler module, before it takes its first task. */
export interface WorkerWarmReport {
  readonly [WORKER_WARM]: true;
  readonly threadId: number;
}

export function isWorkerWarmReport(message: unknown): message is WorkerWarmReport {
  return isMarked(message, WORKER_WARM);
}

/** An event published by a handler (ctx.publish), encoded in the worker, sent by the main thread. */
export interface PublishedEvent {
  readonly broker: Broker;
  /** Kafka topic, or RabbitMQ exchange ('' is the default exchange: the key names the queue). */
  readonly topic: string;
  readonly key: string | null;
  readonly value: string | null;
  readonly headers?: Readonly<Record<string, string>>;
  readonly partition?: number;
}

/** What became of each message of a task (TaskResult.outcomes). */
export const Outcome = {
  /** It did not run (its unit stopped before it), or must run again: it waits once more, same attempt. */
  notRun: 0,
  handled: 1,
  failed: 2,
  /** Set by the pool, not the worker: it was running when its thread died (or was blocked) beside other tasks; it runs again, alone. */
  suspect: 3,
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

export interface TaskResult {
  /** Outcome of message i. */
  readonly outcomes: Uint8Array;
  /** Why message i failed, for each failed one. */
  readonly failures?: ReadonlyArray<FailureReport | undefined>;
  /** Events published by handled message i (ctx.publish), when any message published something. */
  readonly published?: ReadonlyArray<readonly PublishedEvent[] | undefined>;
  /** Time handle() took for message i (ms), for handled messages (the duration histogram). */
  readonly durations?: Float64Array;
}

/** A message's state in the shared progress, as the worker moves it along. */
export const MessageState = {
  pending: 0,
  running: 1,
  handled: 2,
  /** Handled, and published events that only the task's result carries: lost if the worker dies. */
  handledPublished: 3,
  failed: 4,
} as const;

/** Layout: Int32 [0] = the worker's threadId; Int32 [2 + i] = state of message i; Float64 at `startedAtOffset`: Date.now() when message i started. */
export function createProgress(messages: number): SharedArrayBuffer {
  return new SharedArrayBuffer(startedAtOffset(messages) + 8 * messages);
}

function startedAtOffset(messages: number): number {
  return Math.ceil((8 + 4 * messages) / 8) * 8;
}

export interface ProgressView {
  readonly thread: Int32Array;
  readonly states: Int32Array;
  readonly startedAt: Float64Array;
}

export function progressView(progress: SharedArrayBuffer, messages: number): ProgressView {
  return {
    thread: new Int32Array(progress, 0, 1),
    states: new Int32Array(progress, 8, messages),
    startedAt: new Float64Array(progress, startedAtOffset(messages), messages),
  };
}

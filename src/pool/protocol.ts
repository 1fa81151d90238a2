/**
 * The main thread ↔ worker protocol: one task is a micro-batch of consecutive messages of one lane;
 * the worker handles them in order and stops at the first failure.
 *
 * Progress is shared memory, not messages: the worker stores how many messages it completed and when it
 * started the current one, so the main thread knows exactly which messages were handled even when it has
 * to terminate the worker (timeout) or the worker dies (crash).
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
  /** Attempt number of the first message (a retry re-sends the failed message first); the rest are attempt 1 ... */
  readonly firstAttempt: number;
  /** ... unless each message carries its own (RabbitMQ: the attempt travels with the message, in a header). */
  readonly attempts?: readonly number[];
  /** Where ctx.publish sends by default: the broker the handler consumes from. */
  readonly broker?: Broker;
  readonly messages: readonly TaskMessage[];
  /** Layout: Int32 [0] = messages completed, Int32 [1] = 1 once a completed message published events; Float64 [1] = Date.now() when the current message started. */
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
  return typeof message === 'object' && message !== null && (message as Record<string, unknown>)[WORKER_DEATH] === true;
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

export interface TaskResult {
  /** Messages handled successfully, counted from the first of the batch. */
  readonly completed: number;
  /** Events published by completed message i (ctx.publish), when any message published something. */
  readonly published?: ReadonlyArray<readonly PublishedEvent[] | undefined>;
  /** Why message number `completed` failed; absent when the whole batch succeeded. */
  readonly failure?: FailureReport;
  /** Time handle() took for message i (ms), for the first `completed` messages (the duration histogram). */
  readonly durations?: Float64Array;
}

export const PROGRESS_BYTES = 16;

export function createProgress(): SharedArrayBuffer {
  return new SharedArrayBuffer(PROGRESS_BYTES);
}

export function readProgress(progress: SharedArrayBuffer): { completed: number; published: boolean; startedAt: number } {
  const counters = new Int32Array(progress, 0, 2);
  return {
    completed: Atomics.load(counters, 0),
    published: Atomics.load(counters, 1) === 1,
    startedAt: new Float64Array(progress, 8, 1)[0]!,
  };
}

/**
 * Dead-lettering: the envelope (seed 001's format) and the publisher that puts it on the dead-letter topic
 * with acks=all. A message is acknowledged only after the broker confirmed its dead letter.
 *
 * Headers travel byte for byte: the envelope keeps the original headers as an ordered list of name/value pairs
 * (values that are not UTF-8 in base64), and a Kafka dead letter carries the original headers again as its own
 * record headers, as they were, before Conveyor's summary headers.
 *
 * Size (docs/runtime.md, "Dead letters that do not fit"): a letter is sized against what its dead-letter topic
 * accepts (`max.message.bytes`, read once per topic); one that does not fit is written without the original value
 * (`value_omitted: 'too_large'`), then also without the original headers, so it never blocks its partition while the
 * topic takes small records; `conveyor dlq replay` reads what was left out from the source topic.
 */
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import type { IHeaders, Kafka, Producer } from '../kafka/client.ts';
import type { LaneRecord } from '../lanes/partition-lane.ts';
import { capText, FAILURE_REASON_HEADER_LIMIT, FAILURE_REASON_LIMIT } from './text-limits.ts';
import { BrokerFailure, RuntimeFailure, type ConveyorError } from './errors.ts';
import { errorType } from './classify.ts';

/** One original header in the envelope: its value as UTF-8 text, or base64 when `encoding` says so. */
export interface EnvelopeHeader {
  readonly name: string;
  /** null: the header had no value (Kafka allows it). */
  readonly value: string | null;
  readonly encoding: 'utf8' | 'base64';
}

/** Why part of the original message is not in the envelope (`conveyor dlq replay` reads it from the source). */
export type OmittedReason = 'too_large';

export interface DeadLetterEnvelope {
  readonly original_topic: string;
  readonly original_message: {
    readonly key: string | null;
    /** UTF-8 text of the value, or base64 when `value_encoding` says so; null when omitted (see value_omitted). */
    readonly value: string | null;
    readonly value_encoding: 'utf8' | 'base64';
    readonly offset: string;
    readonly partition: number;
    readonly timestamp: string;
    /**
     * The original headers, in order, repeats included. Letters written before this format hold an object
     * `{ name: text }` instead (the last value of each name, decoded as UTF-8): readers accept both (envelopeHeaders).
     */
    readonly headers: readonly EnvelopeHeader[] | Readonly<Record<string, string>>;
    /** Set when the value is left out because the letter would not fit the dead-letter topic; `value` is then null. */
    readonly value_omitted?: OmittedReason;
    /** Bytes of the original value (with value_omitted). */
    readonly value_size?: number;
    /** Set when the headers are left out too; `headers` is then empty. */
    readonly headers_omitted?: OmittedReason;
    /** Bytes of the original headers, names included (with headers_omitted). */
    readonly headers_size?: number;
    /** RabbitMQ only: the exchange the message was published to ('' = default exchange); `key` is its routing key. */
    readonly exchange?: string;
  };
  /** The error's message, at most FAILURE_REASON_LIMIT characters (failure/text-limits.ts). */
  readonly failure_reason: string;
  readonly failure_timestamp: string;
  readonly correlation_id: string;
  readonly retry_count: number;
  /** The concrete failure: the handler's error name, or DeserializationFailure, HandlerTimeout, WorkerCrashed ... */
  readonly error_type: string;
  /** ReceiverError (handler code) or RuntimeFailure (Conveyor around it). */
  readonly error_class: string;
  readonly error_code: string;
  readonly handler: string;
  readonly group: string;
}

/** A header as bytes: name, value (null: no value). */
export type HeaderPair = readonly [name: string, value: Buffer | null];

export interface DeadLetter {
  readonly topic: string;
  readonly key: Buffer | null;
  /** The envelope as JSON. */
  readonly value: string;
  /** Conveyor's summary headers (the essentials of the envelope). RabbitMQ dead letters carry only these. */
  readonly headers: Record<string, string>;
  /** The original message's headers, in order, as bytes: a Kafka dead letter carries them first (kafkaHeaders). */
  readonly originalHeaders: readonly HeaderPair[];
  readonly envelope: DeadLetterEnvelope;
  /** Bytes of the original value (null: no value). */
  readonly originalValueSize: number | null;
}

const CORRELATION_HEADERS = ['correlation_id', 'correlation-id', 'x-correlation-id'];

function bytesOf(value: unknown): Buffer | null {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return Buffer.from(typeof value === 'string' ? value : String(value), 'utf8');
}

/**
 * The headers of a received record as ordered pairs. The Kafka client delivers them as an object with an array per
 * repeated name (in the order of first appearance); RabbitMQ's source gives text values.
 */
export function headerPairs(headers: IHeaders | Readonly<Record<string, unknown>> | undefined): HeaderPair[] {
  const pairs: HeaderPair[] = [];
  for (const name in headers) {
    const value: unknown = (headers as Record<string, unknown>)[name];
    if (Array.isArray(value)) for (const v of value) pairs.push([name, bytesOf(v)]);
    else pairs.push([name, bytesOf(value)]);
  }
  return pairs;
}

export function encodeHeader([name, value]: HeaderPair): EnvelopeHeader {
  if (value === null) return { name, value: null, encoding: 'utf8' };
  const utf8 = isUtf8(value);
  return { name, value: value.toString(utf8 ? 'utf8' : 'base64'), encoding: utf8 ? 'utf8' : 'base64' };
}

export function decodeHeader(header: EnvelopeHeader): HeaderPair {
  return [header.name, header.value === null ? null : Buffer.from(header.value, header.encoding === 'base64' ? 'base64' : 'utf8')];
}

/** The original headers an envelope holds, as bytes, in order (either envelope format). */
export function envelopeHeaders(envelope: DeadLetterEnvelope): HeaderPair[] {
  const headers = envelope.original_message.headers as unknown;
  if (Array.isArray(headers)) return (headers as EnvelopeHeader[]).map(decodeHeader);
  if (typeof headers === 'object' && headers !== null) {
    return Object.entries(headers as Record<string, unknown>).map(([name, value]) => [name, Buffer.from(String(value), 'utf8')] as const);
  }
  return [];
}

/**
 * Pairs as the Kafka client's header object: one entry per name in the order of first appearance, an array for a
 * repeated name. The client writes them in that order, so interleaved repeats (a, b, a) come out grouped (a, a, b);
 * a name that is an array index ('0', '17') comes first (JavaScript orders such keys first).
 */
export function kafkaHeaderObject(pairs: readonly HeaderPair[]): Record<string, Buffer | Buffer[]> {
  const out = Object.create(null) as Record<string, Buffer | Buffer[]>;
  for (const [name, value] of pairs) {
    const bytes = value ?? Buffer.alloc(0); // the client cannot write a header without a value
    const seen = out[name];
    if (seen === undefined) out[name] = bytes;
    else if (Array.isArray(seen)) seen.push(bytes);
    else out[name] = [seen, bytes];
  }
  return out;
}

/** A Kafka dead letter's record headers: the original headers as they were, then Conveyor's summary headers. */
export function kafkaHeaders(letter: DeadLetter): IHeaders {
  return kafkaHeaderObject([...letter.originalHeaders, ...Object.entries(letter.headers).map(([n, v]) => [n, Buffer.from(v, 'utf8')] as const)]);
}

function headersSize(pairs: readonly HeaderPair[]): number {
  let n = 0;
  for (const [name, value] of pairs) n += Buffer.byteLength(name) + (value?.length ?? 0);
  return n;
}

function correlationIdOf(pairs: readonly HeaderPair[]): string | undefined {
  for (const name of CORRELATION_HEADERS) {
    let found: string | undefined;
    for (const [n, v] of pairs) if (n === name && v !== null && v.length > 0 && isUtf8(v)) found = v.toString('utf8');
    if (found) return found;
  }
  return undefined;
}

export function buildDeadLetter(input: {
  readonly deadLetterTopic: string;
  readonly topic: string;
  readonly partition: number;
  readonly record: LaneRecord;
  readonly error: ConveyorError;
  readonly retryCount: number;
  readonly handler: string;
  readonly group: string;
  readonly now?: Date;
}): DeadLetter {
  const { record } = input;
  const pairs = headerPairs(record.headers);
  const correlationId = correlationIdOf(pairs) ?? randomUUID();
  const utf8 = record.value === null || isUtf8(record.value);
  const envelope: DeadLetterEnvelope = {
    original_topic: input.topic,
    original_message: {
      key: record.key === null ? null : record.key.toString('utf8'),
      value: record.value === null ? null : record.value.toString(utf8 ? 'utf8' : 'base64'),
      value_encoding: utf8 ? 'utf8' : 'base64',
      offset: record.offset.toString(),
      partition: input.partition,
      timestamp: record.timestamp,
      headers: pairs.map(encodeHeader),
      ...(record.exchange !== undefined ? { exchange: record.exchange } : {}),
    },
    failure_reason: capText(input.error.message, FAILURE_REASON_LIMIT),
    failure_timestamp: (input.now ?? new Date()).toISOString(),
    correlation_id: correlationId,
    retry_count: input.retryCount,
    error_type: errorType(input.error),
    error_class: input.error.errorClass,
    error_code: input.error.code,
    handler: input.handler,
    group: input.group,
  };
  return {
    topic: input.deadLetterTopic,
    key: record.key,
    value: JSON.stringify(envelope),
    headers: summaryHeaders(envelope),
    originalHeaders: pairs,
    envelope,
    originalValueSize: record.value === null ? null : record.value.length,
  };
}

function summaryHeaders(envelope: DeadLetterEnvelope): Record<string, string> {
  const m = envelope.original_message;
  return {
    original_topic: envelope.original_topic,
    original_partition: String(m.partition),
    original_offset: m.offset,
    failure_reason: capText(envelope.failure_reason, FAILURE_REASON_HEADER_LIMIT),
    failure_timestamp: envelope.failure_timestamp,
    correlation_id: envelope.correlation_id,
    retry_count: String(envelope.retry_count),
    error_type: envelope.error_type,
    error_class: envelope.error_class,
    ...(m.value_omitted ? { value_omitted: m.value_omitted } : {}),
    ...(m.headers_omitted ? { headers_omitted: m.headers_omitted } : {}),
  };
}

/**
 * The letter without the original value (`'value'`), or without the value and the original headers (`'headers'`):
 * what is left out is named in the envelope with its size, and read from the source topic at replay.
 */
export function withoutOriginal(letter: DeadLetter, what: 'value' | 'headers'): DeadLetter {
  const m = letter.envelope.original_message;
  const original = {
    ...m,
    ...(letter.originalValueSize !== null ? { value: null, value_omitted: 'too_large' as const, value_size: letter.originalValueSize } : {}),
    ...(what === 'headers' ? { headers: [], headers_omitted: 'too_large' as const, headers_size: headersSize(letter.originalHeaders) } : {}),
  };
  const envelope: DeadLetterEnvelope = { ...letter.envelope, original_message: original };
  return {
    ...letter,
    value: JSON.stringify(envelope),
    headers: summaryHeaders(envelope),
    originalHeaders: what === 'headers' ? [] : letter.originalHeaders,
    envelope,
  };
}

/** Record-batch framing (61 bytes) and one record's varints, rounded up. */
const RECORD_OVERHEAD = 128;
const HEADER_OVERHEAD = 10;

/** An upper estimate of the bytes the broker checks against `max.message.bytes` for this letter (uncompressed). */
export function deadLetterSize(letter: DeadLetter): number {
  let n = RECORD_OVERHEAD + (letter.key?.length ?? 0) + Buffer.byteLength(letter.value);
  for (const [name, value] of letter.originalHeaders) n += HEADER_OVERHEAD + Buffer.byteLength(name) + (value?.length ?? 0);
  for (const [name, value] of Object.entries(letter.headers)) n += HEADER_OVERHEAD + Buffer.byteLength(name) + Buffer.byteLength(value);
  return n;
}

/** The letter, then smaller forms of it, largest first: what the publisher tries in turn. */
export function deadLetterForms(letter: DeadLetter): DeadLetter[] {
  const forms = [letter];
  if (letter.originalValueSize !== null) forms.push(withoutOriginal(letter, 'value'));
  if (letter.originalHeaders.length > 0) forms.push(withoutOriginal(letter, 'headers'));
  return forms;
}

/** Where dead letters go; `publish` resolves only once the broker confirmed the letter (the form written, if known). */
export interface DeadLetterSink {
  publish(letter: DeadLetter): Promise<DeadLetter | void>;
}

/** Dead-letter size when the topic's `max.message.bytes` cannot be read: librdkafka's own default, below Kafka's. */
export const DEFAULT_DEAD_LETTER_LIMIT = 1_000_000;
/** The largest dead letter written, whatever the topic allows (the producer's `message.max.bytes`). */
export const MAX_DEAD_LETTER_BYTES = 64 * 1024 * 1024;

/** librdkafka / Kafka codes for "this record is too large": MSG_SIZE_TOO_LARGE, RECORD_LIST_TOO_LARGE. */
const TOO_LARGE = new Set([10, 18]);

export function isTooLarge(err: unknown): boolean {
  return TOO_LARGE.has((err as { code?: unknown } | null)?.code as number);
}

export interface DeadLetterPublisherOptions {
  /** publish.timeoutMs: how long one publish may wait for the broker (connect, delivery). */
  readonly timeoutMs: number;
  /** The topic's `max.message.bytes`; undefined when it cannot be read (DEFAULT_DEAD_LETTER_LIMIT is used). */
  readonly topicLimit?: (topic: string) => Promise<number | undefined>;
}

/**
 * One producer for all dead letters: idempotent, acks=all; `publish` resolves only on the broker's acknowledgement,
 * and fails within `publish.timeoutMs` (message.timeout.ms, request.timeout.ms and a bounded connect, as the Kafka
 * publisher) so that the lane logs each failure and tries again with backoff.
 */
export class DeadLetterPublisher implements DeadLetterSink {
  private readonly producer: Producer;
  private readonly timeoutMs: number;
  private readonly topicLimit: ((topic: string) => Promise<number | undefined>) | undefined;
  private readonly limits = new Map<string, Promise<number>>();
  private connecting: Promise<void> | undefined;

  constructor(kafka: Kafka, options: DeadLetterPublisherOptions) {
    this.timeoutMs = options.timeoutMs;
    this.topicLimit = options.topicLimit;
    this.producer = kafka.producer({
      'enable.idempotence': true,
      acks: -1,
      'message.timeout.ms': options.timeoutMs,
      'request.timeout.ms': Math.min(options.timeoutMs, 30_000),
      // sized per letter against its topic's limit (limitFor): the producer itself only bounds the largest
      'message.max.bytes': MAX_DEAD_LETTER_BYTES + 64 * 1024,
      'allow.auto.create.topics': true,
      'reconnect.backoff.ms': 100,
      'reconnect.backoff.max.ms': 30_000,
    } as never);
  }

  /** What `topic` accepts: its max.message.bytes (read once), within [1 KiB, MAX_DEAD_LETTER_BYTES]. */
  limitFor(topic: string): Promise<number> {
    let limit = this.limits.get(topic);
    if (!limit) {
      limit = (async () => {
        const read = await this.bounded(this.topicLimit?.(topic) ?? Promise.resolve(undefined)).catch(() => undefined);
        return read === undefined || !Number.isFinite(read) || read <= 0 ? DEFAULT_DEAD_LETTER_LIMIT : Math.min(read, MAX_DEAD_LETTER_BYTES);
      })();
      this.limits.set(topic, limit);
    }
    return limit;
  }

  /**
   * Writes the largest form of the letter that fits its topic (deadLetterForms) and resolves with it. A letter whose
   * smallest form does not fit fails with `conveyor.dead_letter.too_large` (the lane holds it and tries again; the
   * topic's limit is read again first); a broker that does not take it in time with `events.broker.unavailable`.
   */
  async publish(letter: DeadLetter): Promise<DeadLetter> {
    const context = { topic: letter.envelope.original_topic, partition: letter.envelope.original_message.partition, offset: letter.envelope.original_message.offset };
    const limit = await this.limitFor(letter.topic);
    let refused: unknown;
    let smallest = Infinity;
    for (const form of deadLetterForms(letter)) {
      const size = deadLetterSize(form);
      smallest = Math.min(smallest, size);
      if (size > limit) continue;
      try {
        await this.send(form);
        return form;
      } catch (err) {
        if (!isTooLarge(err)) {
          throw new BrokerFailure(`dead-letter publish to ${letter.topic} failed: ${(err as Error).message}`, { cause: err, context });
        }
        refused = err; // the broker's limit is below what we read: try the next smaller form
      }
    }
    this.limits.delete(letter.topic); // read again next time: the topic may have been changed meanwhile
    throw new RuntimeFailure(
      'conveyor.dead_letter.too_large',
      `dead letter for ${letter.topic} does not fit: even without the original value and headers it takes about ${smallest} bytes, ` +
        `and ${letter.topic} accepts ${refused ? `less (the broker refused it: ${(refused as Error).message})` : `${limit} bytes (its max.message.bytes)`}. ` +
        `Raise max.message.bytes of ${letter.topic}; the partition waits for this letter`,
      { retriable: true, context, ...(refused ? { cause: refused } : {}) },
    );
  }

  private async send(letter: DeadLetter): Promise<void> {
    await this.bounded(this.connected());
    // the client's own message timeout ends the send; the race only guards against a delivery report that never comes
    await this.bounded(
      this.producer.send({ topic: letter.topic, messages: [{ key: letter.key, value: letter.value, headers: kafkaHeaders(letter) }] }),
      this.timeoutMs + 2_000,
    );
  }

  /** The producer's connect: the client's own connect can wait 30 s for an unreachable broker. */
  private connected(): Promise<void> {
    return (this.connecting ??= this.producer.connect().catch((err: unknown) => {
      this.connecting = undefined;
      throw err;
    }));
  }

  private async bounded<T>(work: Promise<T>, timeoutMs = this.timeoutMs): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer from Kafka within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (!this.connecting) return;
    await Promise.race([this.connecting.then(() => this.producer.disconnect()), new Promise((r) => setTimeout(r, this.timeoutMs))]).catch(() => {});
  }
}

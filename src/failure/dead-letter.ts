/**
 * Dead-lettering: the envelope (seed 001's format) and the publisher that puts it on the dead-letter topic
 * with acks=all. A message is acknowledged only after the broker confirmed its dead letter.
 */
import { randomUUID } from 'node:crypto';
import type { Kafka, Producer } from '../kafka/client.ts';
import type { LaneRecord } from '../lanes/partition-lane.ts';
import { BrokerFailure, type ConveyorError } from './errors.ts';
import { errorType } from './classify.ts';

export interface DeadLetterEnvelope {
  readonly original_topic: string;
  readonly original_message: {
    readonly key: string | null;
    /** UTF-8 text of the value, or base64 when `value_encoding` says so. */
    readonly value: string | null;
    readonly value_encoding: 'utf8' | 'base64';
    readonly offset: string;
    readonly partition: number;
    readonly timestamp: string;
    readonly headers: Record<string, string>;
    /** RabbitMQ only: the exchange the message was published to ('' = default exchange); `key` is its routing key. */
    readonly exchange?: string;
  };
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

export interface DeadLetter {
  readonly topic: string;
  readonly key: Buffer | null;
  readonly value: string;
  readonly headers: Record<string, string>;
  readonly envelope: DeadLetterEnvelope;
}

const CORRELATION_HEADERS = ['correlation_id', 'correlation-id', 'x-correlation-id'];

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return text(value[value.length - 1]);
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return String(value);
}

function isUtf8(bytes: Buffer): boolean {
  return Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes);
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
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(record.headers ?? {})) if (value !== undefined) headers[name] = text(value);
  const correlationId = CORRELATION_HEADERS.map((h) => headers[h]).find((v) => v) ?? randomUUID();
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
      headers,
      ...(record.exchange !== undefined ? { exchange: record.exchange } : {}),
    },
    failure_reason: input.error.message,
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
    headers: {
      original_topic: envelope.original_topic,
      original_partition: String(envelope.original_message.partition),
      original_offset: envelope.original_message.offset,
      failure_reason: envelope.failure_reason.slice(0, 1024),
      failure_timestamp: envelope.failure_timestamp,
      correlation_id: envelope.correlation_id,
      retry_count: String(envelope.retry_count),
      error_type: envelope.error_type,
      error_class: envelope.error_class,
    },
    envelope,
  };
}

/** Where dead letters go; `publish` resolves only once the broker confirmed the letter. */
export interface DeadLetterSink {
  publish(letter: DeadLetter): Promise<void>;
}

/** One producer for all dead letters: idempotent, acks=all; `publish` resolves only on the broker's acknowledgement. */
export class DeadLetterPublisher implements DeadLetterSink {
  private readonly producer: Producer;
  private connected: Promise<void> | undefined;

  constructor(kafka: Kafka, options: { readonly timeoutMs: number }) {
    this.producer = kafka.producer({
      'enable.idempotence': true,
      acks: -1,
      'message.timeout.ms': options.timeoutMs,
      'request.timeout.ms': Math.min(options.timeoutMs, 30_000),
      'allow.auto.create.topics': true,
      'reconnect.backoff.ms': 100,
      'reconnect.backoff.max.ms': 30_000,
    } as never);
  }

  async publish(letter: DeadLetter): Promise<void> {
    try {
      this.connected ??= this.producer.connect();
      await this.connected;
      await this.producer.send({
        topic: letter.topic,
        messages: [{ key: letter.key, value: letter.value, headers: letter.headers }],
      });
    } catch (err) {
      if (this.connected && !(await this.connected.then(() => true, () => false))) this.connected = undefined;
      throw new BrokerFailure(`dead-letter publish to ${letter.topic} failed: ${(err as Error).message}`, {
        cause: err,
        context: { topic: letter.envelope.original_topic, partition: letter.envelope.original_message.partition, offset: letter.envelope.original_message.offset },
      });
    }
  }

  async close(): Promise<void> {
    if (this.connected) await this.producer.disconnect().catch(() => {});
  }
}

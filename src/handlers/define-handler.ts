/**
 * The contract of a drop-in handler file: `handlers/<name>.{js,mjs,ts}` default-exports `defineHandler({...})`.
 * The main thread imports the file to read the declaration; worker threads import it to run `handle`,
 * so a handler module must do nothing at import time.
 */

/** A message as a handler sees it, whatever the broker. */
export interface HandlerMessage<T = unknown> {
  /** Topic (Kafka) or queue (RabbitMQ) it was consumed from. */
  readonly topic: string;
  /** Kafka partition; -1 for RabbitMQ. */
  readonly partition: number;
  /** Kafka offset as a decimal string; for RabbitMQ, the runner's receipt sequence number (order of delivery). */
  readonly offset: string;
  /** Kafka message key; for RabbitMQ, the routing key the message was published with. */
  readonly key: string | null;
  /** The payload after deserialization (`json` by default). */
  readonly value: T;
  readonly headers: Readonly<Record<string, string>>;
  /** Broker timestamp, milliseconds since the epoch. */
  readonly timestamp: number;
}

/** What a handler may use besides the message. */
export interface HandlerContext {
  /** 1 on the first delivery, 2 on the first retry, ... */
  readonly attempt: number;
  /** Aborted when the handler passes its timeoutMs: stop work and return (or throw). */
  readonly signal: AbortSignal;
  /** A pino logger carrying handler, topic, partition and offset. */
  readonly log: HandlerLogger;
  /**
   * Publishes events as part of handling this message: the runner sends them (in order, confirmed by the broker)
   * after `handle` returned and before the message is acknowledged. If `handle` fails, nothing it published is
   * sent; if sending fails, the message is retried like any failure (so events are at-least-once).
   * By default events go to the broker the handler consumes from: for Kafka, `destination` is a topic; for
   * RabbitMQ, an exchange (`''`: the default exchange, the key names the queue) and each event's key is its
   * routing key. `{ broker }` sends to the other one.
   */
  publish(destination: string, events: OutgoingEvent | readonly OutgoingEvent[], options?: PublishOptions): void;
}

export type Broker = 'kafka' | 'rabbitmq';

export interface PublishOptions {
  readonly broker?: Broker;
}

/** An event a handler publishes through `ctx.publish`. */
export interface OutgoingEvent {
  /** Kafka: same key, same partition. RabbitMQ: the routing key. */
  readonly key?: string | null;
  /** Objects are sent as JSON; strings as they are. */
  readonly value: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly partition?: number;
}

/** The part of pino's logger a handler gets. */
export interface HandlerLogger {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  debug(obj: object | string, msg?: string): void;
}

export interface RetryPolicy {
  /** Retries after the first failed attempt, 0-100 (default: `retry.maxAttempts`, env KAFKA_MAX_RETRY_ATTEMPTS). */
  readonly attempts?: number;
  /** Base delay in ms: retry n waits random(0, base · 2^n) (default: KAFKA_RETRY_BACKOFF_BASE seconds). */
  readonly backoffMs?: number;
  /** No retry waits longer (default: KAFKA_RETRY_BACKOFF_MAX seconds). */
  readonly maxBackoffMs?: number;
}

export type Deserializer = 'json' | 'string' | 'buffer';

export interface HandlerDeclaration<T = unknown> {
  /** Name used in logs and metrics; defaults to the file name. */
  readonly name?: string;
  /** One Kafka topic ... */
  readonly topic?: string;
  /** ... or several. */
  readonly topics?: readonly string[];
  /** ... or a RabbitMQ queue (durable; declared if missing). */
  readonly queue?: string;
  /** RabbitMQ: bind the queue to this exchange (durable; declared as `exchangeType` if missing) ... */
  readonly exchange?: string;
  /** ... with this routing key or pattern (default `#`: everything a topic exchange gets). */
  readonly routingKey?: string;
  /** RabbitMQ: type of `exchange` when it has to be declared (default `topic`). */
  readonly exchangeType?: 'direct' | 'topic' | 'fanout' | 'headers';
  /**
   * Which messages may run at the same time (docs/runtime.md, "Order and parallelism"):
   * - `partition` (default): one partition's messages one after another, each after the previous was acknowledged;
   *   partitions run at the same time. A queue is one partition: in order of delivery, one at a time.
   * - `key`: one key's messages one after another, in offset order; different keys of a partition at the same
   *   time. Messages without a key are ordered among themselves as one key. RabbitMQ: the routing key.
   * - `unordered`: any message at any time, up to `concurrency`.
   */
  readonly ordering?: 'partition' | 'key' | 'unordered';
  /**
   * Most runs of this handler at once in this process, 1-4096 (a run: one message, or consecutive messages of one
   * partition or key). Kafka default 64. RabbitMQ default 1; above 1 the default ordering is `unordered`.
   */
  readonly concurrency?: number;
  /** RabbitMQ: unacknowledged messages the broker may deliver ahead (basic.qos; default: the larger of 250 and 2 × concurrency). */
  readonly prefetch?: number;
  /** Kafka consumer group; defaults to one derived from the runner's group and the handler name. */
  readonly group?: string;
  readonly retry?: RetryPolicy;
  /** Milliseconds before the handler's signal is aborted and the attempt fails as a timeout. */
  readonly timeoutMs?: number;
  /** Where messages go after the last attempt: Kafka `{ topic }` (default `<topic>.dlq`, or
   *  KAFKA_DEAD_LETTER_TOPIC), RabbitMQ `{ queue }` (default `<queue>.dlq`); `false` keeps retrying (capped
   *  backoff) instead of dead-lettering. */
  readonly deadLetter?: { readonly topic: string } | { readonly queue: string } | false;
  readonly deserialize?: Deserializer;
  handle(message: HandlerMessage<T>, ctx: HandlerContext): Promise<void> | void;
}

const HANDLER = Symbol.for('conveyor.handler');

export type Handler<T = unknown> = HandlerDeclaration<T> & { readonly [HANDLER]: true };

/** Marks a handler declaration so discovery can tell it from any other default export. */
export function defineHandler<T = unknown>(declaration: HandlerDeclaration<T>): Handler<T> {
  return Object.freeze({ ...declaration, [HANDLER]: true as const });
}

export function isHandler(value: unknown): value is Handler {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[HANDLER] === true;
}

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
  /** Kafka offset as a decimal string; the delivery tag for RabbitMQ. */
  readonly offset: string;
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
  /** Aborted when the handler passes its timeout or the runner shuts down. */
  readonly signal: AbortSignal;
}

export interface RetryPolicy {
  /** Attempts in all, the first included (default: the runner's `retry.attempts`). */
  readonly attempts?: number;
  /** Base delay in milliseconds of the exponential backoff (default: the runner's `retry.backoffMs`). */
  readonly backoffMs?: number;
}

export type Deserializer = 'json' | 'string' | 'buffer';

export interface HandlerDeclaration<T = unknown> {
  /** Name used in logs and metrics; defaults to the file name. */
  readonly name?: string;
  /** One Kafka topic ... */
  readonly topic?: string;
  /** ... or several. */
  readonly topics?: readonly string[];
  /** Kafka consumer group; defaults to one derived from the runner's group and the handler name. */
  readonly group?: string;
  readonly retry?: RetryPolicy;
  /** Milliseconds before the handler's signal is aborted and the attempt fails as a timeout. */
  readonly timeoutMs?: number;
  /** Where messages go after the last attempt; `false` keeps retrying instead of dead-lettering. */
  readonly deadLetter?: { readonly topic: string } | false;
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

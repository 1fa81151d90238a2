/**
 * Delayed retries for RabbitMQ handlers, without blocking the queue's consumer: a failed message is republished to
 * a retry queue with a per-message TTL (`expiration`) and no consumer; when the TTL passes, RabbitMQ dead-letters
 * it back to the handler's queue (default exchange, routing key = queue), carrying its next attempt number in a
 * header. Pure naming and header logic; the I/O is in rabbit-source.ts.
 *
 * A queue expires messages only at its head, so one long TTL would hold every shorter one queued behind it.
 * Retry n therefore has a queue of its own, `<queue>.retry.<n>`: all its delays are drawn from the same range
 * [0, ceiling(n)), so a message waits at most that ceiling. Retries past the cap of the backoff share the last
 * queue (their ranges are all equal).
 */
import { backoffCeiling, type BackoffPolicy } from '../failure/backoff.ts';

/** The attempt the delivery is: 1 for the first, n + 1 after n retries. */
export const ATTEMPT_HEADER = 'x-conveyor-attempt';
/** Where the message was first published, kept across its retries (which come back through the default exchange). */
export const EXCHANGE_HEADER = 'x-conveyor-exchange';
export const ROUTING_KEY_HEADER = 'x-conveyor-routing-key';
export const INTERNAL_HEADERS: ReadonlySet<string> = new Set([ATTEMPT_HEADER, EXCHANGE_HEADER, ROUTING_KEY_HEADER]);

/** Never more retry queues than this, whatever the policy (a backoff reaches its cap long before). */
const MAX_LEVELS = 32;

/**
 * How many retry queues a handler needs: one per retry until the backoff ceiling reaches its cap (`maxRetries`
 * of them at most; `null`: retries without end, when the handler has no dead-letter destination).
 */
export function retryLevels(maxRetries: number | null, backoff: BackoffPolicy): number {
  let capped = 1;
  while (capped < MAX_LEVELS && backoffCeiling(capped - 1, backoff) < backoff.maxMs) capped += 1;
  return maxRetries === null ? capped : Math.min(maxRetries, capped);
}

/** The queue retry number `retry` (1, 2, ...) waits in. */
export function retryQueueName(queue: string, retry: number, levels: number): string {
  return `${queue}.retry.${Math.min(Math.max(1, retry), Math.max(1, levels))}`;
}

/** Every retry queue of a handler, in order. */
export function retryQueueNames(queue: string, levels: number): string[] {
  return Array.from({ length: levels }, (_, i) => retryQueueName(queue, i + 1, levels));
}

/** The attempt number a delivery carries; 1 when absent or nonsense. */
export function attemptOf(headers: Readonly<Record<string, unknown>> | undefined): number {
  const raw = headers?.[ATTEMPT_HEADER];
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw) : Number.NaN;
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

/** AMQP header values (numbers, booleans, tables, arrays, byte strings) as the strings a handler sees. */
export function headerText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Date) return value.toISOString();
  return JSON.stringify(value) ?? '';
}

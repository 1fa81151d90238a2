/**
 * Seed 000's strategy A for callers who choose to retry a publish: try again with exponential backoff and full
 * jitter (the project's one backoff function), only for retriable failures, a bounded number of times.
 */
import { backoffDelay, sleep } from '../failure/backoff.ts';

export interface RetryWithBackoffOptions {
  /** Tries in all, the first included (default 5). */
  readonly attempts?: number;
  /** Base delay in ms (default 100): retry n waits random(0, base · 2^n). */
  readonly baseMs?: number;
  /** Cap in ms (default 30 000). */
  readonly maxMs?: number;
  /** Which errors are worth another try (default: those with `retriable: true`, e.g. events.broker.unavailable). */
  readonly retryOn?: (error: unknown) => boolean;
  /** Stops waiting and rethrows the last error when aborted. */
  readonly signal?: AbortSignal;
}

const retriable = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && (error as { retriable?: unknown }).retriable === true;

export async function retryWithBackoff<T>(action: () => Promise<T>, options: RetryWithBackoffOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 5;
  const policy = { baseMs: options.baseMs ?? 100, maxMs: options.maxMs ?? 30_000 };
  const retryOn = options.retryOn ?? retriable;
  for (let attempt = 1; ; attempt++) {
    try {
      return await action();
    } catch (error) {
      if (attempt >= attempts || !retryOn(error)) throw error;
      try {
        await sleep(backoffDelay(attempt - 1, policy), options.signal);
      } catch {
        throw error;
      }
    }
  }
}

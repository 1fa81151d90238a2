/**
 * The one backoff function. Retries use exponential backoff with full jitter:
 * the delay before retry n (n = 0, 1, ...) is uniform in [0, min(max, base · 2^n)).
 * Full jitter spreads retries of many partitions (and many pods) instead of synchronising them.
 */
export interface BackoffPolicy {
  /** Base delay in milliseconds (the ceiling of the first retry's delay). */
  readonly baseMs: number;
  /** No delay exceeds this. */
  readonly maxMs: number;
}

/** The largest delay retry n may wait. */
export function backoffCeiling(retry: number, policy: BackoffPolicy): number {
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, retry));
}

/** A delay for retry n, uniformly drawn below its ceiling; `random` returns [0, 1). */
export function backoffDelay(retry: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(retry, policy));
}

/**
 * Broker reconnection (seed 000): 100 ms, then 1 s, then 10 s, then every 30 s at most. librdkafka reconnects by
 * itself from `initialMs`, doubling; the Kafka consumers cap it with kafka.reconnectBackoffMaxMs (default 10 s:
 * measured, a 30 s cap alone can take a recovery past 30 s after the broker is back), so `maxMs` is seed 000's
 * value, not what the consumers use. RabbitMQ follows the steps exactly (rabbitmq/connection.ts).
 */
export const RECONNECT_BACKOFF = { initialMs: 100, maxMs: 30_000 } as const;

/**
 * Waits for `work` at most `ms`: true if it settled by then, false if the time ran out first (the work goes on; its
 * rejection, if any, is not reported here).
 */
export async function finishedWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work.then(() => true, () => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

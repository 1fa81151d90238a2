/**
 * End-to-end latency of the latency benchmarks (bench/latency.ts, bench/rabbitmq.ts --scenario latency): the
 * producer stamps each message with `sentAt` (epoch milliseconds, sub-millisecond precision); whoever handles it
 * calls `recordHandled` first thing, which takes the time and posts [contender, seq, sentAt, handledAt] on a
 * BroadcastChannel. Conveyor's handlers run in worker threads of the benchmark's process, the bare consumer on its
 * main thread: both post the same way (same cost, taken after the clock was read), and the benchmark's main thread
 * collects them (`collectLatencies`). `performance.timeOrigin + performance.now()` is one clock for every thread.
 */
import { BroadcastChannel } from 'node:worker_threads';

const CHANNEL = 'conveyor-bench-latency';

/** Epoch milliseconds, with the monotonic clock's precision. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** What a latency message carries. */
export interface Stamp {
  seq: number;
  sentAt: number;
}

let channel: BroadcastChannel | undefined;

/** Records that `contender` handled the message stamped `stamp` now. */
export function recordHandled(contender: string, stamp: Stamp): void {
  const handledAt = nowMs();
  if (channel === undefined) {
    channel = new BroadcastChannel(CHANNEL);
    channel.unref(); // never what keeps a worker thread (or the process) alive
  }
  channel.postMessage([contender, stamp.seq, stamp.sentAt, handledAt]);
}

export interface Collected {
  /** seq → latency in ms (the first handling; a redelivery is counted in `duplicates`). */
  readonly latencies: Map<number, number>;
  readonly sentAt: Map<number, number>;
  duplicates: number;
}

/** Collects what `recordHandled` posts, per contender, until `close`. */
export function collectLatencies(): { by: (contender: string) => Collected; close: () => void } {
  const all = new Map<string, Collected>();
  const by = (contender: string): Collected => {
    let c = all.get(contender);
    if (!c) all.set(contender, (c = { latencies: new Map(), sentAt: new Map(), duplicates: 0 }));
    return c;
  };
  const listener = new BroadcastChannel(CHANNEL);
  listener.onmessage = (event) => {
    const [contender, seq, sentAt, handledAt] = (event as { data: [string, number, number, number] }).data;
    const c = by(contender);
    if (c.latencies.has(seq)) c.duplicates += 1;
    else {
      c.latencies.set(seq, handledAt - sentAt);
      c.sentAt.set(seq, sentAt);
    }
  };
  return { by, close: () => listener.close() };
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** p50, p99 and max of the latencies of the messages sent at or after `fromMs` (the warm-up left out). */
export function summarise(c: Collected, fromMs: number): LatencySummary {
  const xs: number[] = [];
  for (const [seq, ms] of c.latencies) if ((c.sentAt.get(seq) ?? 0) >= fromMs) xs.push(ms);
  xs.sort((a, b) => a - b);
  const at = (q: number): number => (xs.length === 0 ? Number.NaN : xs[Math.min(xs.length - 1, Math.max(0, Math.ceil(q * xs.length) - 1))]!);
  return { count: xs.length, p50: at(0.5), p99: at(0.99), max: at(1), mean: xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length };
}

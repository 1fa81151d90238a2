/**
 * End-to-end latency of the latency benchmarks (bench/latency.ts, bench/rabbitmq.ts --scenario latency): the
 * producer stamps each message with `sentAt` (epoch milliseconds, sub-millisecond precision); whoever handles it
 * calls `recordHandled` first thing, which takes the time and posts [contender, seq, sentAt, handledAt] on a
 * BroadcastChannel. Conveyor's handlers run in worker threads of the benchmark's process, the bare consumer on its
 * main thread: both post the same way (same cost, taken after the clock was read), and the benchmark's main thread
 * collects them (`collectLatencies`). `performance.timeOrigin + performance.now()` is one clock for every thread.
 */
import { spawn } from 'node:child_process';
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

// ------------------------------------------------------------------------------------------- contender processes

/** What a contender process answers at the end. */
export type ContenderSummary = LatencySummary & { received: number; duplicates: number; cpuUsPerMessage: number };

/** The order the benchmark sends a contender once production has finished. */
interface Order {
  total: number;
  /** Messages sent before this (epoch ms) are the warm-up, left out. */
  from: number;
}

/**
 * The contender's side of a latency benchmark, in a process of its own (so that neither contender's main thread
 * delays the other's messages): `start` sets up the consumer and resolves once it is ready for the first message;
 * then `{"ready":true}` on stdout; the parent's order on stdin (`{"total","from"}`, once production has finished);
 * waiting for `total` messages; `stop`; the summary as one JSON line on stdout.
 */
export async function serveContender(contender: string, start: () => Promise<void>, stop: () => Promise<void>): Promise<void> {
  const collected = collectLatencies();
  const say = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
  const order = new Promise<Order>((resolve) => {
    let buffered = '';
    process.stdin.on('data', (d: Buffer) => {
      buffered += d.toString('utf8');
      if (buffered.includes('\n')) resolve(JSON.parse(buffered.split('\n')[0]!) as Order);
    });
  });
  const cpu0 = process.cpuUsage();
  await start();
  say({ ready: true });
  const { total, from } = await order;
  const c = collected.by(contender);
  const t0 = performance.now();
  while (c.latencies.size < total) {
    if (performance.now() - t0 > 120_000) throw new Error(`${contender}: ${c.latencies.size} of ${total} messages handled after 120 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const cpu = process.cpuUsage(cpu0);
  await stop();
  collected.close();
  say({ ...summarise(c, from), received: c.latencies.size, duplicates: c.duplicates, cpuUsPerMessage: (cpu.user + cpu.system) / total } satisfies ContenderSummary);
}

export interface ContenderProcess {
  /** Resolves on the child's `{"ready":true}`. */
  readonly ready: Promise<void>;
  readonly result: Promise<ContenderSummary>;
  /** Production finished: `total` messages, the warm-up ends at `from`. */
  order(total: number, from: number): void;
}

/** Starts `node <script> ...argv` (with this process's node flags) as one contender; stderr is this process's. */
export function spawnContender(name: string, script: string, argv: readonly string[]): ContenderProcess {
  const proc = spawn(process.execPath, [...process.execArgv, script, ...argv], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  let buffered = '';
  proc.stdout.on('data', (d: Buffer) => {
    buffered += d.toString('utf8');
    let at: number;
    while ((at = buffered.indexOf('\n')) >= 0) {
      lines.push(buffered.slice(0, at));
      buffered = buffered.slice(at + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve));
  const line = async (n: number): Promise<string> => {
    while (lines.length <= n) {
      const code = await Promise.race([new Promise<undefined>((r) => waiters.push(() => r(undefined))), exited]);
      if (code !== undefined && lines.length <= n) throw new Error(`${name} exited with ${code}`);
    }
    return lines[n]!;
  };
  const ready = line(0).then(() => undefined);
  const result = line(1).then((l) => JSON.parse(l) as ContenderSummary);
  ready.catch(() => {});
  result.catch(() => {});
  return { ready, result, order: (total, from) => void proc.stdin.write(`${JSON.stringify({ total, from } satisfies Order)}\n`) };
}

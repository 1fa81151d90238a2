// Benchmark fixture (bench/rabbitmq.ts --scenario io): an I/O-bound queue handler that awaits BENCH_DELAY_MS per
// message (read in handle: the workers share process.env), up to BENCH_CONCURRENCY (default 50) at once; prefetch
// defaults to the concurrency. The queue comes from the benchmark (BENCH_QUEUE).
import { setTimeout as sleep } from 'node:timers/promises';
import { defineHandler } from 'conveyor';

let delayMs: number | undefined;

export default defineHandler({
  name: 'rabbit-io',
  queue: process.env.BENCH_QUEUE ?? 'conveyor.bench.unset',
  concurrency: Number(process.env.BENCH_CONCURRENCY ?? '50'),
  deserialize: 'buffer',
  deadLetter: false,
  async handle() {
    delayMs ??= Number(process.env.BENCH_DELAY_MS ?? '20');
    await sleep(delayMs);
  },
});

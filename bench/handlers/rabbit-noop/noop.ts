// Benchmark fixture (bench/rabbitmq.ts --scenario noop): a queue handler that does nothing, at Conveyor's default
// settings (no concurrency, no prefetch declared). The queue comes from the benchmark (BENCH_QUEUE).
import { defineHandler } from 'conveyor';

export default defineHandler({
  name: 'rabbit-noop',
  queue: process.env.BENCH_QUEUE ?? 'conveyor.bench.unset',
  deserialize: 'buffer',
  deadLetter: false,
  handle() {},
});

// Benchmark fixture (bench/memory.ts): a RabbitMQ queue handler that does nothing. The queue comes from the
// benchmark (BENCH_QUEUE), which fills a fresh queue per run.
import { defineHandler } from 'conveyor';

export default defineHandler({
  name: 'noop-queue',
  queue: process.env.BENCH_QUEUE ?? 'conveyor.bench.unset',
  deserialize: 'buffer',
  deadLetter: false,
  handle() {},
});

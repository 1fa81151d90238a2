// Benchmark fixture (bench/rabbitmq.ts --scenario latency): a no-op queue handler, in order (concurrency 1) with
// prefetch 8, that records when it got each message (bench/lib/latency.ts). The queue comes from the benchmark.
import { defineHandler } from 'conveyor';
import { recordHandled, type Stamp } from '../../lib/latency.ts';

export default defineHandler<Stamp>({
  name: 'rabbit-latency',
  queue: process.env.BENCH_QUEUE ?? 'conveyor.bench.unset',
  concurrency: 1,
  prefetch: 8,
  deserialize: 'json',
  deadLetter: false,
  handle(message) {
    recordHandled('conveyor', message.value);
  },
});

// Benchmark fixture (bench/latency.ts): a no-op handler (default ordering and concurrency) that records when it
// got each message (bench/lib/latency.ts: the time is taken first, then posted to the benchmark's main thread).
import { defineHandler } from 'conveyor';
import { recordHandled, type Stamp } from '../../lib/latency.ts';

export default defineHandler<Stamp>({
  name: 'latency',
  topic: process.env.BENCH_TOPIC ?? 'conveyor.bench.unset',
  deserialize: 'json',
  deadLetter: false,
  handle(message) {
    recordHandled('conveyor', message.value);
  },
});

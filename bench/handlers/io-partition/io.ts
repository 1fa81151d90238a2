// Benchmark fixture (bench/io.ts): an I/O-bound handler that awaits BENCH_DELAY_MS per message (set by the
// benchmark; read in handle, since the workers share process.env), in the order of each partition: one message of
// a partition at a time, the partitions at once.
import { setTimeout as sleep } from 'node:timers/promises';
import { defineHandler } from 'conveyor';

let delayMs: number | undefined;

export default defineHandler({
  name: 'io-partition',
  topic: process.env.BENCH_TOPIC ?? 'conveyor.bench.unset',
  ordering: 'partition',
  concurrency: 256,
  deserialize: 'buffer',
  deadLetter: false,
  async handle() {
    delayMs ??= Number(process.env.BENCH_DELAY_MS ?? '20');
    await sleep(delayMs);
  },
});

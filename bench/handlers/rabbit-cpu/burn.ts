// Benchmark fixture (bench/rabbitmq.ts --scenario cpu): burns the calibrated ~1 ms of CPU per message
// (BENCH_BURN_ITERATIONS SHA-256 rounds, bench/lib/burn.ts, the function the bare consumer calls on its main
// thread), up to 8 messages at once. The queue comes from the benchmark (BENCH_QUEUE).
import { defineHandler } from 'conveyor';
import { burn } from '../../lib/burn.ts';

let iterations: number | undefined;

export default defineHandler({
  name: 'rabbit-cpu',
  queue: process.env.BENCH_QUEUE ?? 'conveyor.bench.unset',
  concurrency: 8,
  deserialize: 'buffer',
  deadLetter: false,
  handle(message) {
    iterations ??= Number(process.env.BENCH_BURN_ITERATIONS ?? '500');
    burn(iterations, message.value as Buffer | null);
  },
});

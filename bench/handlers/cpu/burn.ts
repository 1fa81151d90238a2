// Benchmark fixture (bench/cpu.ts): burns the calibrated ~1 ms of CPU per message (BENCH_BURN_ITERATIONS
// SHA-256 rounds, the same function the bare contender calls on its main thread).
import { defineHandler } from 'conveyor';
import { burn } from '../../lib/burn.ts';

let iterations: number | undefined;

export default defineHandler({
  name: 'burn',
  topic: process.env.BENCH_TOPIC ?? 'conveyor.bench.unset',
  deserialize: 'buffer',
  deadLetter: false,
  handle(message) {
    iterations ??= Number(process.env.BENCH_BURN_ITERATIONS ?? '500');
    burn(iterations, message.value as Buffer | null);
  },
});

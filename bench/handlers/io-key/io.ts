// Benchmark fixture (bench/io.ts): an I/O-bound handler that awaits BENCH_DELAY_MS (set by the benchmark; read in
// handle, since the workers share process.env) per message, in the order of each key: one message of a key at a
// time, up to 256 messages at once. The declaration is a variable rather than a literal so that it also type-
// checks against a defineHandler that does not know `ordering` yet.
import { setTimeout as sleep } from 'node:timers/promises';
import { defineHandler } from 'conveyor';

let delayMs: number | undefined;

const declaration = {
  name: 'io-key',
  topic: process.env.BENCH_TOPIC ?? 'conveyor.bench.unset',
  ordering: 'key' as const,
  concurrency: 256,
  deserialize: 'buffer' as const,
  deadLetter: false as const,
  async handle(): Promise<void> {
    delayMs ??= Number(process.env.BENCH_DELAY_MS ?? '20');
    await sleep(delayMs);
  },
};

export default defineHandler(declaration);

// Benchmark fixture (bench/throughput.ts): a handler that does nothing, so the benchmark measures the runtime.
// The topic comes from the benchmark (BENCH_TOPIC), which creates a fresh topic per run. `buffer` skips JSON
// parsing, as the bare client does; set BENCH_DESERIALIZE=json to include it.
import { defineHandler, type Deserializer } from 'conveyor';

export default defineHandler({
  name: 'noop',
  topic: process.env.BENCH_TOPIC ?? 'conveyor.bench.unset',
  deserialize: (process.env.BENCH_DESERIALIZE ?? 'buffer') as Deserializer,
  deadLetter: false,
  handle() {},
});

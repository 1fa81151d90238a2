/**
 * Throughput: how close Conveyor (no-op handler on the worker pool) comes to the bare client (no-op eachBatch)
 * on the same topic data. One topic, 12 partitions, 200,000 messages of 1 KiB, produced once; the contenders
 * alternate (bare, conveyor, bare, conveyor, …), each with a fresh consumer group reading from the beginning.
 * Reported: the median msgs/s of each, and ratio = conveyor / bare. Last stdout line: the JSON result.
 *
 *   bash bench/run.sh throughput [--runs N] [--only bare|conveyor] [--messages N] [--partitions N] [--size BYTES]
 */
import { join } from 'node:path';
import {
  BENCH_DIR, RUN_HEADERS, benchAdmin, benchConfig, benchKafka, deleteTopic, emit, environment, loadAverage, median, pairs, parseCommonArgs, prepareTopic, progressLine, round, runBare,
  runConveyor, runId, runJson, runRows, table, type RunResult,
  runMain,
} from './lib/common.ts';

const PARTITIONS = 12;
const MESSAGES = 200_000;

async function main(): Promise<void> {
  const args = parseCommonArgs({ partitions: PARTITIONS, messages: MESSAGES, size: 1024, runs: 2 });
  const total = args.messages;
  const handlersDir = join(BENCH_DIR, 'handlers', 'noop');
  const kafka = benchKafka(`conveyor-bench-${runId}`);
  const admin = benchAdmin('conveyor-bench-admin');
  const topic = args.topic ?? `conveyor.bench.throughput.${runId}`;
  const runs: RunResult[] = [];
  let conveyorConfig = benchConfig(handlersDir, 'probe');
  try {
    if (args.topic === undefined) {
      const produced = await prepareTopic(admin, kafka, topic, args.partitions, total, args.size);
      console.log(`produced ${total.toLocaleString('en-US')} messages of ${args.size} B to ${topic} (${args.partitions} partitions) in ${round(produced)} ms`);
    }
    console.log(
      `kafka.maxBatchSize ${conveyorConfig.kafka.maxBatchSize}, pool.maxBatch ${conveyorConfig.pool.maxBatch}, ` +
        `pool.size ${conveyorConfig.pool.size || 'cores'}, ${args.runs} run(s) each, alternating; load average ${loadAverage()}\n`,
    );
    for (let i = 1; i <= args.runs; i++) {
      if (args.only !== 'conveyor') {
        const r = await runBare({ kafka, admin, topic, config: conveyorConfig, expected: total, run: i });
        runs.push(r);
        console.log(progressLine(r));
      }
      if (args.only !== 'bare') {
        const r = await runConveyor({ admin, topic, handlersDir, expected: total, run: i });
        conveyorConfig = r.config;
        runs.push(r);
        console.log(progressLine(r));
      }
    }
  } finally {
    if (!args.keepTopic) await deleteTopic(admin, topic);
    await admin.close();
  }

  const bare = median(runs.filter((r) => r.contender === 'bare').map((r) => r.msgsPerS));
  const conveyor = median(runs.filter((r) => r.contender === 'conveyor').map((r) => r.msgsPerS));
  const bareSteady = median(runs.filter((r) => r.contender === 'bare').map((r) => r.steadyMsgsPerS));
  const conveyorSteady = median(runs.filter((r) => r.contender === 'conveyor').map((r) => r.steadyMsgsPerS));
  const ratio = conveyor / bare;
  console.log(`\n${table(RUN_HEADERS, runRows(runs))}\n`);
  console.log(table(['median', 'bare msgs/s', 'conveyor msgs/s', 'ratio', 'target'], [
    ['from start', round(bare), round(conveyor), round(ratio, 3), '>= 0.9'],
    ['steady (after first batch)', round(bareSteady), round(conveyorSteady), round(conveyorSteady / bareSteady, 3), ''],
  ]));
  console.log(Number.isFinite(ratio) ? `\nratio ${round(ratio, 3)} (per pair: ${pairs(runs).join(', ')}): ${ratio >= 0.9 ? 'meets' : 'MISSES'} the target (>= 0.9)\n` : '');
  emit('throughput', {
    bench: 'throughput',
    messages: total,
    partitions: args.partitions,
    bare_msgs_per_s: round(bare),
    conveyor_msgs_per_s: round(conveyor),
    ratio: round(ratio, 3),
    steady_ratio: round(conveyorSteady / bareSteady, 3),
    pair_ratios: pairs(runs),
    message_bytes: args.size,
    load_average: loadAverage(),
    ...environment(conveyorConfig),
    runs: runs.map(runJson),
  });
}

runMain(main);

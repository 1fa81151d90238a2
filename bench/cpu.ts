/**
 * CPU-bound handlers: a handler that burns ~1 ms of CPU per message (a calibrated chain of SHA-256 digests).
 * Contender A, the bare client, calls the burn function in eachBatch, message after message, on the main
 * thread. Contender B is Conveyor, whose worker pool (pool.size = cores by default) runs the same function.
 * Same topic data (12 partitions × 600 messages of 1 KiB by default), contenders alternating, fresh groups.
 * Reported: median msgs/s of each, speedup = conveyor / bare, against the target 0.9 × cores.
 *
 *   bash bench/run.sh cpu [--runs N] [--only bare|conveyor] [--messages N] [--partitions N] [--burn-ms MS]
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { burn, burnRate, calibrate } from './lib/burn.ts';
import {
  BENCH_DIR, RUN_HEADERS, benchAdmin, benchConfig, benchKafka, deleteTopic, emit, environment, loadAverage, median, pairs, parseCommonArgs, prepareTopic, progressLine,
  round, runBare, runConveyor, runId, runJson, runRows, table, type RunResult,
  runMain,
} from './lib/common.ts';

async function main(): Promise<void> {
  const args = parseCommonArgs({ partitions: 12, messages: 12 * 600, size: 1024, runs: 2 });
  const cores = availableParallelism();
  const { iterations, msPerCall } = calibrate(args.burnMs);
  process.env.BENCH_BURN_ITERATIONS = String(iterations); // read by bench/handlers/cpu/burn.ts in the workers
  const handlersDir = join(BENCH_DIR, 'handlers', 'cpu');
  const kafka = benchKafka(`conveyor-bench-${runId}`);
  const admin = benchAdmin('conveyor-bench-admin');
  const topic = args.topic ?? `conveyor.bench.cpu.${runId}`;
  const total = args.messages;
  const runs: RunResult[] = [];
  let conveyorConfig = benchConfig(handlersDir, 'probe');
  console.log(`burn: ${iterations} SHA-256 rounds per message, ${round(msPerCall, 3)} ms on the main thread (target ${args.burnMs} ms); ${cores} cores; load average ${loadAverage()}`);
  // The hardware's own ceiling: 1 plain worker thread vs one per core, no Kafka and no pool; measured before the
  // runs and after each pair, since other work on the machine moves it.
  const perThread = Math.max(200, Math.round(1000 / Math.max(msPerCall, 0.01)));
  const ceilings: number[] = [];
  const measureCeiling = async (): Promise<void> => {
    const one = await burnRate(1, iterations, perThread);
    const all = await burnRate(cores, iterations, perThread);
    ceilings.push(all / one);
    console.log(`ceiling: 1 thread ${round(one)} msgs/s, ${cores} threads ${round(all)} msgs/s: ${round(all / one, 2)}× (plain worker threads, no Kafka)`);
  };
  await measureCeiling();
  try {
    if (args.topic === undefined) {
      const ms = await prepareTopic(admin, kafka, topic, args.partitions, total, args.size);
      console.log(`produced ${total.toLocaleString('en-US')} messages of ${args.size} B to ${topic} (${args.partitions} partitions) in ${round(ms)} ms`);
    }
    console.log(
      `kafka.maxBatchSize ${conveyorConfig.kafka.maxBatchSize}, pool.maxBatch ${conveyorConfig.pool.maxBatch}, ` +
        `pool.size ${conveyorConfig.pool.size || `cores (${cores})`}, ${args.runs} run(s) each, alternating\n`,
    );
    for (let i = 1; i <= args.runs; i++) {
      if (args.only !== 'conveyor') {
        const r = await runBare({ kafka, admin, topic, config: conveyorConfig, expected: total, run: i, work: (m) => burn(iterations, m.value) });
        runs.push(r);
        console.log(progressLine(r));
      }
      if (args.only !== 'bare') {
        const r = await runConveyor({ admin, topic, handlersDir, expected: total, run: i });
        conveyorConfig = r.config;
        runs.push(r);
        console.log(progressLine(r));
      }
      await measureCeiling();
    }
  } finally {
    if (!args.keepTopic) await deleteTopic(admin, topic);
    await admin.close();
  }

  const bare = median(runs.filter((r) => r.contender === 'bare').map((r) => r.msgsPerS));
  const conveyor = median(runs.filter((r) => r.contender === 'conveyor').map((r) => r.msgsPerS));
  const speedup = conveyor / bare;
  const target = 0.9 * cores;
  const ceiling = median(ceilings);
  console.log(`\n${table(RUN_HEADERS, runRows(runs))}\n`);
  console.log(table(['median', 'bare msgs/s', 'conveyor msgs/s', 'speedup', 'target'], [
    ['from start', round(bare), round(conveyor), round(speedup, 2), `>= ${round(target, 2)} (0.9 × ${cores} cores); hardware ceiling ${round(ceiling, 2)} (median)`],
    [
      'steady (after first batch)',
      round(median(runs.filter((r) => r.contender === 'bare').map((r) => r.steadyMsgsPerS))),
      round(median(runs.filter((r) => r.contender === 'conveyor').map((r) => r.steadyMsgsPerS))),
      round(median(runs.filter((r) => r.contender === 'conveyor').map((r) => r.steadyMsgsPerS)) / median(runs.filter((r) => r.contender === 'bare').map((r) => r.steadyMsgsPerS)), 2),
      '',
    ],
  ]));
  console.log(Number.isFinite(speedup) ? `\nspeedup ${round(speedup, 2)} (per pair: ${pairs(runs).join(', ')}): ${speedup >= target ? 'meets' : 'MISSES'} the target (>= ${round(target, 2)})\n` : '');
  emit('cpu', {
    bench: 'cpu',
    bare_msgs_per_s: round(bare, 1),
    conveyor_msgs_per_s: round(conveyor, 1),
    speedup: round(speedup, 3),
    cores,
    target_speedup: round(target, 2),
    ceiling_speedup: round(ceiling, 3),
    ceiling_samples: ceilings.map((c) => round(c, 3)),
    pair_speedups: pairs(runs),
    messages: total,
    partitions: args.partitions,
    burn_ms: round(msPerCall, 3),
    burn_iterations: iterations,
    load_average: loadAverage(),
    ...environment(conveyorConfig),
    runs: runs.map(runJson),
  });
}

runMain(main);

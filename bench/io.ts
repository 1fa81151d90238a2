/**
 * I/O-bound handlers: a handler that awaits --delay-ms (default 20 ms) per message and uses no CPU, like a call to
 * another service. One topic, 12 partitions, 12,000 messages of 1 KiB over 1,200 distinct keys (each key in one
 * partition, 100 keys a partition), produced once. Contenders, alternating, each with a fresh consumer group
 * reading from the beginning:
 *
 *   bare                the bare client: eachMessage with partitionsConsumedConcurrently = partitions, awaiting the
 *                       same delay (one message of a partition at a time, every partition at once)
 *   conveyor/partition  Conveyor, bench/handlers/io-partition: ordering 'partition'
 *   conveyor/key        Conveyor, bench/handlers/io-key: ordering 'key', concurrency 256
 *   conveyor/unordered  Conveyor, bench/handlers/io-unordered: ordering 'unordered', concurrency 256
 *
 * Reported: the median msgs/s of each, ratio to bare, and the targets: partition ≥ 0.9 × partitions × 1000 / delay
 * and ≥ bare; key ≥ 20 × bare. A missed target is reported, not an error. Last stdout line: the JSON result.
 *
 *   bash bench/run.sh io [--runs N] [--only bare|conveyor] [--modes partition,key,unordered] [--delay-ms MS]
 *                        [--messages N] [--keys N] [--partitions N] [--size BYTES]
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BENCH_DIR, RUN_HEADERS, benchAdmin, benchConfig, benchKafka, deleteTopic, emit, environment, loadAverage, median, parseCommonArgs, prepareTopic, progressLine, round, runBare,
  runConveyor, runId, runJson, runRows, table, type RunResult,
  runMain,
} from './lib/common.ts';

const MODES = ['partition', 'key', 'unordered'] as const;
type Mode = (typeof MODES)[number];

async function main(): Promise<void> {
  const args = parseCommonArgs({ partitions: 12, messages: 12_000, size: 1024, runs: 2 }, [
    { name: 'delay-ms', default: 20, help: 'what the handler awaits per message' },
    { name: 'keys', default: 1200, help: 'distinct keys, spread evenly over the partitions' },
    { name: 'modes', default: MODES.join(','), help: 'the Conveyor orderings to run' },
  ]);
  const delayMs = args.extra['delay-ms'] as number;
  const keys = args.extra.keys as number;
  const modes = String(args.extra.modes).split(',').map((m) => m.trim());
  for (const m of modes) if (!(MODES as readonly string[]).includes(m)) throw new Error(`unknown mode ${m}; one of ${MODES.join(', ')}`);
  process.env.BENCH_DELAY_MS = String(delayMs); // read by bench/handlers/io-*/io.ts in the workers
  const total = args.messages;
  const kafka = benchKafka(`conveyor-bench-${runId}`);
  const admin = benchAdmin('conveyor-bench-admin');
  const topic = args.topic ?? `conveyor.bench.io.${runId}`;
  const runs: RunResult[] = [];
  let conveyorConfig = benchConfig(join(BENCH_DIR, 'handlers', 'io-partition'), 'probe');
  try {
    if (args.topic === undefined) {
      // key j always goes to partition j % partitions, as a key-hashing partitioner would keep it in one
      const produced = await prepareTopic(admin, kafka, topic, args.partitions, total, args.size, (i) => ({ partition: (i % keys) % args.partitions, key: `k${i % keys}` }));
      console.log(
        `produced ${total.toLocaleString('en-US')} messages of ${args.size} B over ${keys.toLocaleString('en-US')} keys to ${topic} (${args.partitions} partitions) in ${round(produced)} ms`,
      );
    }
    console.log(
      `handler awaits ${delayMs} ms; pool.size ${conveyorConfig.pool.size || 'cores'}, ${args.runs} run(s) each, alternating; load average ${loadAverage()}\n`,
    );
    for (let i = 1; i <= args.runs; i++) {
      if (args.only !== 'conveyor') {
        const r = await runBare({
          kafka, admin, topic, config: conveyorConfig, expected: total, run: i,
          eachMessage: () => sleep(delayMs).then(() => undefined),
          partitionsConsumedConcurrently: args.partitions,
        });
        runs.push(r);
        console.log(progressLine(r));
      }
      if (args.only !== 'bare') {
        for (const mode of modes) {
          const r = await runConveyor({ admin, topic, handlersDir: join(BENCH_DIR, 'handlers', `io-${mode}`), expected: total, run: i });
          conveyorConfig = r.config;
          r.label = `conveyor/${mode}`;
          runs.push(r);
          console.log(progressLine(r));
        }
      }
    }
  } finally {
    if (!args.keepTopic) await deleteTopic(admin, topic);
    await admin.close();
  }

  const of = (label: string): RunResult[] => runs.filter((r) => (r.label ?? r.contender) === label);
  const bare = median(of('bare').map((r) => r.msgsPerS));
  const bareSteady = median(of('bare').map((r) => r.steadyMsgsPerS));
  const byMode = new Map<Mode, { msgsPerS: number; steady: number; pairs: number[] }>();
  for (const mode of modes as Mode[]) {
    const mine = of(`conveyor/${mode}`);
    const pairs = mine.flatMap((c) => of('bare').filter((b) => b.run === c.run).map((b) => round(c.msgsPerS / b.msgsPerS, 3)));
    byMode.set(mode, { msgsPerS: median(mine.map((r) => r.msgsPerS)), steady: median(mine.map((r) => r.steadyMsgsPerS)), pairs });
  }
  const ceiling = (args.partitions * 1000) / delayMs;
  const targets: Array<{ name: string; value: number; target: number; met: boolean }> = [];
  const target = (name: string, value: number | undefined, goal: number): void => {
    if (value === undefined || !Number.isFinite(value) || !Number.isFinite(goal)) return;
    targets.push({ name, value: round(value), target: round(goal), met: value >= goal });
  };
  target(`partition >= 0.9 × ${args.partitions} partitions × 1000 / ${delayMs} ms`, byMode.get('partition')?.msgsPerS, 0.9 * ceiling);
  target('partition >= bare', byMode.get('partition')?.msgsPerS, bare);
  target('key >= 20 × bare', byMode.get('key')?.msgsPerS, 20 * bare);

  console.log(`\n${table(RUN_HEADERS, runRows(runs))}\n`);
  console.log(table(['median', 'msgs/s', 'steady msgs/s', 'ratio to bare', 'per pair'], [
    ['bare', round(bare), round(bareSteady), 1, ''],
    ...[...byMode].map(([mode, m]) => [`conveyor/${mode}`, round(m.msgsPerS), round(m.steady), round(m.msgsPerS / bare, 3), m.pairs.join(', ')]),
  ]));
  console.log(`\none message of each partition at a time, every partition at once, is at most ${round(ceiling)} msgs/s (${args.partitions} × 1000 / ${delayMs} ms)`);
  for (const t of targets) console.log(`${t.name}: ${t.value.toLocaleString('en-US')} msgs/s ${t.met ? 'meets' : 'MISSES'} the target (>= ${t.target.toLocaleString('en-US')})`);
  console.log('');
  emit('io', {
    bench: 'io',
    messages: total,
    partitions: args.partitions,
    keys,
    delay_ms: delayMs,
    bare_msgs_per_s: round(bare),
    ...Object.fromEntries([...byMode].map(([mode, m]) => [`${mode}_msgs_per_s`, round(m.msgsPerS)])),
    ratios: Object.fromEntries([...byMode].map(([mode, m]) => [mode, round(m.msgsPerS / bare, 3)])),
    pair_ratios: Object.fromEntries([...byMode].map(([mode, m]) => [mode, m.pairs])),
    partition_ceiling_msgs_per_s: round(ceiling),
    targets,
    message_bytes: args.size,
    load_average: loadAverage(),
    ...environment(conveyorConfig),
    runs: runs.map(runJson),
  });
}

runMain(main);

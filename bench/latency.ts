/**
 * Latency: end-to-end latency per message (handled − produced) at a steady rate, Conveyor against the bare client
 * consuming the SAME topic AT THE SAME TIME, each in its own consumer group and its own process. The benchmark's
 * process produces --rate messages a second (default 1,000) for --duration-s (default 20 s) to one topic of 12
 * partitions; each message carries its send time (bench/lib/latency.ts: `{ seq, sentAt }`, JSON).
 *
 *   bare      the bare client: eachMessage, partitionsConsumedConcurrently = partitions, records the time (no-op)
 *   conveyor  Conveyor, bench/handlers/latency (no-op that records the time; default ordering and concurrency),
 *             its handler in a worker thread of the contender's process
 *
 * Both read the clock first thing in the handler and post it on a BroadcastChannel to their process's main thread
 * (same cost for both, after the clock was read); `performance.timeOrigin + performance.now()` is the clock of
 * every process. The contenders run in processes of their own so that neither's main thread (nor the producer)
 * delays the other's messages; they share the machine's cores, as two services on one node would. Production
 * starts once both groups have every partition assigned (and the topic was warmed up: one message a partition,
 * deleted); the messages produced in the first --warmup-s (default 2 s) are left out of the statistics of both.
 * Reported: p50, p99 and max of each, conveyor / bare; target: conveyor p99 ≤ 1.1 × bare p99. Last stdout line: the
 * JSON result.
 *
 *   bash bench/run.sh latency [--rate N] [--duration-s S] [--warmup-s S] [--partitions N] [--runs N] [--only bare|conveyor]
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { KafkaAdmin } from '../dist/kafka/admin.js';
import { Runtime } from '../dist/runtime.js';
import {
  BENCH_DIR, bareConsumer, benchAdmin, benchConfig, benchKafka, deadline, deleteTopic, emit, environment, loadAverage, logger, median, round, runId, runMain, table,
} from './lib/common.ts';
import { nowMs, recordHandled, serveContender, spawnContender, type ContenderSummary, type LatencySummary, type Stamp } from './lib/latency.ts';

const CONTENDERS = ['bare', 'conveyor'] as const;
type Contender = (typeof CONTENDERS)[number];

interface Args {
  rate: number;
  durationS: number;
  warmupS: number;
  partitions: number;
  runs: number;
  only: Contender | undefined;
  /** Internal: run one contender (a child process of the benchmark). */
  child: Contender | undefined;
  topic: string | undefined;
}

function parse(): Args {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      rate: { type: 'string' },
      'duration-s': { type: 'string' },
      'warmup-s': { type: 'string' },
      partitions: { type: 'string' },
      runs: { type: 'string' },
      only: { type: 'string' },
      child: { type: 'string' },
      topic: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(`options: --rate N (msgs/s produced; default 1000)  --duration-s S (default 20)  --warmup-s S (left out; default 2)
         --partitions N (default 12)  --runs N (measurements, both contenders at once in each; default 1)  --only bare|conveyor
environment: any Conveyor setting applies to the Conveyor consumer (kafka.maxBatchSize to the bare one too);
             KAFKA_BROKERS (default 127.0.0.1:9092); LOG_LEVEL (default warn, logs go to stderr)`);
    process.exit(0);
  }
  const int = (v: string | undefined, d: number, min = 1): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`expected an integer >= ${min}, got ${v}`);
    return n;
  };
  if (values.only !== undefined && values.only !== 'bare' && values.only !== 'conveyor') throw new Error('--only must be bare or conveyor');
  return {
    rate: int(values.rate, 1000),
    durationS: int(values['duration-s'], 20),
    warmupS: int(values['warmup-s'], 2, 0),
    partitions: int(values.partitions, 12),
    runs: int(values.runs, 1),
    only: values.only,
    child: values.child as Contender | undefined,
    topic: values.topic,
  };
}

// ------------------------------------------------------------------------------------------- child side

/** One contender in a process of its own (bench/lib/latency.ts, serveContender). */
async function child(contender: Contender, topic: string, partitions: number, run: number): Promise<void> {
  const kafka = benchKafka(`conveyor-bench-latency-${runId}`);
  const config = benchConfig(join(BENCH_DIR, 'handlers', 'latency'), `${runId}.latency-${run}`);
  let assigned: () => number;
  let stop: () => Promise<void> = async () => {};
  const waitForAssignment = (): Promise<void> => deadline('partition assignment', (async () => {
    while (assigned() < partitions) await sleep(50);
  })(), 60_000, () => `${assigned()} of ${partitions}`);
  await serveContender(contender, async () => {
    if (contender === 'bare') {
      const consumer = bareConsumer(kafka, config, `bench.${runId}.latency-bare-${run}`);
      // offsets committed every commit.intervalMs, as Conveyor does
      const next = new Map<number, string>();
      await consumer.connect();
      await consumer.subscribe({ topics: [topic] });
      await consumer.run({
        partitionsConsumedConcurrently: partitions,
        eachMessage: async ({ partition, message }) => {
          recordHandled('bare', JSON.parse(message.value!.toString('utf8')) as Stamp);
          next.set(partition, (BigInt(message.offset) + 1n).toString());
        },
      });
      const timer = setInterval(() => {
        if (next.size === 0) return;
        const offsets = [...next].map(([partition, offset]) => ({ topic, partition, offset }));
        next.clear();
        consumer.commitOffsets(offsets).catch((err: unknown) => logger.warn({ err }, 'bare commit failed'));
      }, config.commit.intervalMs);
      assigned = () => consumer.assignment().length;
      stop = async () => {
        clearInterval(timer);
        await consumer.disconnect();
      };
    } else {
      const runtime = await Runtime.create(config, logger);
      let count = 0;
      runtime.events.on('partitions.assigned', (e) => (count += e.partitions.length));
      runtime.events.on('partitions.revoked', (e) => (count -= e.partitions.length));
      await runtime.start();
      assigned = () => count;
      stop = () => runtime.stop();
    }
    await waitForAssignment();
  }, () => stop());
}

// ------------------------------------------------------------------------------------------- parent side

interface LatencyRun {
  run: number;
  sent: number;
  /** From spawning the contenders until both had every partition assigned. */
  readyMs: number;
  produceMs: number;
  results: Partial<Record<Contender, ContenderSummary>>;
}

async function measure(args: Args, run: number, topic: string, contenders: readonly Contender[]): Promise<LatencyRun> {
  const kafka = benchKafka(`conveyor-bench-latency-${runId}`);
  const total = args.rate * args.durationS;
  const producer = kafka.producer({ 'linger.ms': 0, acks: 1, 'enable.idempotence': false, 'compression.type': 'none' } as never);
  await producer.connect();
  try {
    const t0 = performance.now();
    const script = join(BENCH_DIR, 'latency.ts');
    const children = new Map(contenders.map((c) => [c, spawnContender(c, script, ['--child', c, '--topic', topic, '--partitions', String(args.partitions), '--runs', String(run)])] as const));
    await deadline('contenders ready', Promise.all([...children.values()].map((c) => c.ready)), 90_000, () => 'waiting for partition assignment');
    const readyMs = performance.now() - t0;
    await sleep(1000); // the consumers' first fetches (offset lookups) before the first message

    // a steady rate: every millisecond or so, send the messages due by now, each stamped as it is sent
    const start = nowMs();
    let sent = 0;
    const sending = new Set<Promise<unknown>>();
    while (sent < total) {
      const due = Math.min(total, Math.floor(((nowMs() - start) / 1000) * args.rate));
      if (due > sent) {
        const messages = [];
        for (; sent < due; sent++) messages.push({ partition: sent % args.partitions, key: `k${sent}`, value: JSON.stringify({ seq: sent, sentAt: nowMs() } satisfies Stamp) });
        const p: Promise<unknown> = producer.send({ topic, messages }).finally(() => sending.delete(p));
        sending.add(p);
      }
      await sleep(1);
    }
    await Promise.all(sending);
    const produceMs = nowMs() - start;
    for (const c of children.values()) c.order(total, start + args.warmupS * 1000);
    const results: LatencyRun['results'] = {};
    for (const [c, child] of children) results[c] = await child.result;
    return { run, sent, readyMs, produceMs, results };
  } finally {
    await producer.disconnect().catch(() => {});
  }
}

/** One message to each partition and their deletion: the producer and the partitions' leaders are warm, the topic empty. */
async function warmUp(topic: string, partitions: number): Promise<void> {
  const kafka = benchKafka(`conveyor-bench-latency-${runId}`);
  const admin = benchAdmin('conveyor-bench-admin');
  const producer = kafka.producer({ 'linger.ms': 0, acks: 1, 'enable.idempotence': false } as never);
  await producer.connect();
  try {
    await producer.send({ topic, messages: Array.from({ length: partitions }, (_, partition) => ({ partition, value: '{}' })) });
    await emptyTopic(admin, topic);
  } finally {
    await producer.disconnect();
    await admin.close();
  }
}

/** Deletes every record of the topic: a fresh group reading from the beginning then starts at the end. */
async function emptyTopic(admin: KafkaAdmin, topic: string): Promise<void> {
  for (const p of await admin.topicOffsets(topic)) if (p.high > p.low) await admin.deleteRecords(topic, p.partition, p.high);
}

async function main(args: Args): Promise<void> {
  const contenders = CONTENDERS.filter((c) => args.only === undefined || args.only === c);
  const admin = benchAdmin('conveyor-bench-admin');
  const topic = `conveyor.bench.latency.${runId}`;
  process.env.BENCH_TOPIC = topic; // read by bench/handlers/latency when it is first imported
  const config = benchConfig(join(BENCH_DIR, 'handlers', 'latency'), 'probe');
  const runs: LatencyRun[] = [];
  try {
    if (!(await admin.createTopic(topic, args.partitions))) throw new Error(`topic ${topic} already exists`);
    console.log(
      `${args.rate.toLocaleString('en-US')} msgs/s for ${args.durationS} s to ${topic} (${args.partitions} partitions); ${contenders.join(' and ')} at the same time, ` +
        `each in its own group; the first ${args.warmupS} s left out; ${args.runs} run(s); load average ${loadAverage()}\n`,
    );
    await warmUp(topic, args.partitions);
    for (let i = 1; i <= args.runs; i++) {
      const r = await measure(args, i, topic, contenders);
      runs.push(r);
      const line = (c: Contender): string => {
        const s = r.results[c]!;
        return `${c} p50 ${round(s.p50, 2)} ms, p99 ${round(s.p99, 2)} ms, max ${round(s.max, 1)} ms (${s.count.toLocaleString('en-US')} measured, ${s.duplicates} duplicates)`;
      };
      console.log(`run #${i}: ${contenders.map(line).join('; ')}; produced ${r.sent.toLocaleString('en-US')} in ${round(r.produceMs)} ms`);
      // the next run's fresh groups start from the beginning: empty the partitions first
      if (i < args.runs) await emptyTopic(admin, topic);
    }
  } finally {
    await deleteTopic(admin, topic);
    await admin.close();
  }

  const med = (c: Contender, k: keyof LatencySummary): number => median(runs.map((r) => r.results[c]?.[k] ?? Number.NaN));
  const rows = (['p50', 'p99', 'max', 'mean'] as const).map((k) => [k, round(med('bare', k), 2), round(med('conveyor', k), 2), round(med('conveyor', k) / med('bare', k), 2)]);
  console.log(`\n${table(['run', 'contender', 'measured', 'p50 ms', 'p99 ms', 'max ms', 'mean ms', 'process cpu µs/msg'], runs.flatMap((r) => contenders.map((c) => {
    const s = r.results[c]!;
    return [`#${r.run}`, c, s.count, round(s.p50, 2), round(s.p99, 2), round(s.max, 1), round(s.mean, 2), round(s.cpuUsPerMessage)];
  })))}\n`);
  console.log(table([`median of ${runs.length} run(s), ms`, 'bare', 'conveyor', 'conveyor / bare'], rows));
  const p99 = med('conveyor', 'p99');
  const goal = 1.1 * med('bare', 'p99');
  const met = p99 <= goal;
  const targets = Number.isFinite(p99) && Number.isFinite(goal) ? [{ name: 'conveyor p99 <= 1.1 × bare p99 (ms)', value: round(p99, 3), target: round(goal, 3), met }] : [];
  const perRun = runs.map((r) => round((r.results.conveyor?.p99 ?? Number.NaN) / (r.results.bare?.p99 ?? Number.NaN), 3));
  for (const t of targets) {
    console.log(`\nconveyor p99 ${t.value} ms ${t.met ? 'meets' : 'MISSES'} the target (<= 1.1 × bare p99 = ${t.target} ms); p99 conveyor / bare per run: ${perRun.join(', ')}`);
  }
  console.log('');
  const summary = (c: Contender): Record<string, number> => ({ p50: round(med(c, 'p50'), 3), p99: round(med(c, 'p99'), 3), max: round(med(c, 'max'), 3), mean: round(med(c, 'mean'), 3) });
  emit('latency', {
    bench: 'latency',
    rate: args.rate,
    duration_s: args.durationS,
    warmup_s: args.warmupS,
    partitions: args.partitions,
    bare_ms: summary('bare'),
    conveyor_ms: summary('conveyor'),
    p99_ratio: round(p99 / med('bare', 'p99'), 3),
    p99_ratios_per_run: perRun,
    targets,
    load_average: loadAverage(),
    ...environment(config),
    runs: runs.map((r) => ({
      run: r.run, sent: r.sent, ready_ms: round(r.readyMs, 1), produce_ms: round(r.produceMs, 1),
      ...Object.fromEntries(Object.entries(r.results).map(([c, s]) => [c, Object.fromEntries(Object.entries(s).map(([k, v]) => [k, round(v, 3)]))])),
    })),
  });
}

runMain(async () => {
  const args = parse();
  if (args.child) await child(args.child, args.topic!, args.partitions, args.runs);
  else await main(args);
});

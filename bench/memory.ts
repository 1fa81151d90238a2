/**
 * Memory: peak and sampled RSS of one process while it drains a backlog, each contender in a process of its own
 * (RSS is per process), one after the other, on the same data:
 *
 *   kafka-bare        the bare Confluent client (same librdkafka), eachBatch no-op, its default prefetch
 *   kafka-conveyor    Conveyor, no-op handler, the default memory budget (memory.budgetMb)
 *   kafka-unbounded   Conveyor, no-op handler, memory.budgetMb=0 (no budget: the client's own prefetch defaults,
 *                     the lanes' configured limits, no worker resourceLimits), for the throughput comparison
 *   rabbit-bare       a bare amqplib consumer (manual ack, the same prefetch Conveyor's run uses)
 *   rabbit-conveyor   Conveyor, a no-op queue handler (bench/handlers/noop-queue), the default memory budget
 *   rabbit-unbounded  the same with memory.budgetMb=0
 *
 * Kafka: 1,000,000 × 512 B over 12 partitions, produced once; each contender reads it from the beginning with a
 * fresh group. RabbitMQ: 100,000 × 1 KiB, published into a fresh queue before each RabbitMQ contender.
 * The parent samples each child's VmRSS (and the kernel's high-water mark VmHWM, so no peak between two samples
 * is missed) from /proc every --sample-ms. Prints a table and, as the last stdout line, one JSON object.
 *
 *   bash bench/run.sh memory [--only kafka-bare,kafka-conveyor,...] [--messages N] [--queue-messages N] ...
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import {
  BENCH_DIR, benchConfig, benchAdmin,
  benchKafka, deleteTopic, emit, loadAverage, logger, prepareTopic, round, runBare, runConveyor, runId, runMain, table,
} from './lib/common.ts';
import { amqpUrl, deleteQueue, fillQueue } from './lib/rabbit.ts';
import { Runtime } from '../dist/runtime.js';
import { deriveMemoryPlan } from '../dist/config/memory-budget.js';
import { availableParallelism } from 'node:os';

const CONTENDERS = ['kafka-bare', 'kafka-conveyor', 'kafka-unbounded', 'rabbit-bare', 'rabbit-conveyor', 'rabbit-unbounded'] as const;
type Contender = (typeof CONTENDERS)[number];

interface Args {
  only: Contender[];
  topic: string | undefined;
  keepTopic: boolean;
  partitions: number;
  messages: number;
  size: number;
  queueMessages: number;
  queueSize: number;
  sampleMs: number;
  child: Contender | undefined;
  queue: string | undefined;
  prefetch: number | undefined;
}

function parse(): Args {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      only: { type: 'string' },
      topic: { type: 'string' },
      'keep-topic': { type: 'boolean' },
      partitions: { type: 'string' },
      messages: { type: 'string' },
      size: { type: 'string' },
      'queue-messages': { type: 'string' },
      'queue-size': { type: 'string' },
      'sample-ms': { type: 'string' },
      child: { type: 'string' },
      queue: { type: 'string' },
      prefetch: { type: 'string' },
      // accepted for `bench/run.sh all`, which passes the same options to every benchmark: one run per contender here
      runs: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(`options: --only ${CONTENDERS.join(',')} (a comma-separated subset; default all, in this order)
         --messages N (Kafka, default 1000000)  --partitions N (default 12)  --size BYTES (default 512)
         --queue-messages N (RabbitMQ, default 100000)  --queue-size BYTES (default 1024)
         --sample-ms MS (RSS sampling interval, default 100)
         --topic NAME (reuse an existing, already filled topic)  --keep-topic
environment: CONVEYOR_MEMORY_BUDGET_MB and any other Conveyor setting apply to the Conveyor contenders
             (kafka-unbounded and rabbit-unbounded run with CONVEYOR_MEMORY_BUDGET_MB=0); KAFKA_BROKERS, AMQP_URL`);
    process.exit(0);
  }
  const int = (v: string | undefined, d: number): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got ${v}`);
    return n;
  };
  const only = (values.only ?? CONTENDERS.join(',')).split(',').map((s) => s.trim());
  for (const c of only) if (!(CONTENDERS as readonly string[]).includes(c)) throw new Error(`unknown contender ${c}; one of ${CONTENDERS.join(', ')}`);
  if (values.child !== undefined && !(CONTENDERS as readonly string[]).includes(values.child)) throw new Error(`unknown contender ${values.child}`);
  return {
    only: only as Contender[],
    topic: values.topic,
    keepTopic: values['keep-topic'] ?? values.topic !== undefined,
    partitions: int(values.partitions, 12),
    messages: int(values.messages, 1_000_000),
    size: int(values.size, 512),
    queueMessages: int(values['queue-messages'], 100_000),
    queueSize: int(values['queue-size'], 1024),
    sampleMs: int(values['sample-ms'], 100),
    child: values.child as Contender | undefined,
    queue: values.queue,
    prefetch: values.prefetch === undefined ? undefined : int(values.prefetch, 1),
  };
}

// ------------------------------------------------------------------------------------------- child side

/** What a child prints as its one stdout line. */
interface ChildResult {
  messages: number;
  /** From start until the last message was handled. */
  ms: number;
  /** Settings the contender ran with, for the report. */
  settings: Record<string, unknown>;
}

async function child(args: Args): Promise<ChildResult> {
  const contender = args.child!;
  const kafka = benchKafka(`conveyor-bench-memory-${runId}`);
  if (contender === 'kafka-bare') {
    const admin = benchAdmin(`conveyor-bench-memory-${runId}`);
    try {
      const config = benchConfig(join(BENCH_DIR, 'handlers', 'noop'), 'probe');
      const r = await runBare({ kafka, admin, topic: args.topic!, config, expected: args.messages, run: 1, timeoutMs: 900_000 });
      return { messages: r.messages, ms: r.ms, settings: { 'js.consumer.max.batch.size': config.kafka.maxBatchSize } };
    } finally {
      await admin.close();
    }
  }
  if (contender === 'kafka-conveyor' || contender === 'kafka-unbounded') {
    const admin = benchAdmin(`conveyor-bench-memory-${runId}`);
    try {
      const r = await runConveyor({ admin, topic: args.topic!, handlersDir: join(BENCH_DIR, 'handlers', 'noop'), expected: args.messages, run: 1, timeoutMs: 900_000 });
      const plan = deriveMemoryPlan(r.config, { kafkaConsumers: 1, queueConsumers: 0 }, availableParallelism());
      return { messages: r.messages, ms: r.ms, settings: { budgetMb: r.config.memory.budgetMb, ...plan.summary, nodeFlags: process.execArgv.join(' ') } };
    } finally {
      await admin.close();
    }
  }
  if (contender === 'rabbit-bare') {
    const connection = await amqp.connect(amqpUrl, { noDelay: true });
    const channel = await connection.createChannel();
    await channel.prefetch(args.prefetch ?? 1);
    let count = 0;
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      void channel.consume(args.queue!, (m) => {
        if (!m) return;
        channel.ack(m);
        count += 1;
        if (count >= args.queueMessages) resolve();
      });
    });
    const ms = performance.now() - t0;
    await channel.close();
    await connection.close();
    return { messages: count, ms, settings: { prefetch: args.prefetch ?? 1 } };
  }
  // rabbit-conveyor, rabbit-unbounded
  process.env.BENCH_QUEUE = args.queue!;
  const config = benchConfig(join(BENCH_DIR, 'handlers', 'noop-queue'), 'rabbit');
  const runtime = await Runtime.create(config, logger);
  let count = 0;
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  runtime.events.on('messages.handled', (e) => {
    count += e.count;
    if (count >= args.queueMessages) finish();
  });
  const t0 = performance.now();
  await runtime.start();
  await done;
  const ms = performance.now() - t0;
  await runtime.stop();
  const plan = deriveMemoryPlan(config, { kafkaConsumers: 0, queueConsumers: 1 }, availableParallelism());
  return { messages: count, ms, settings: { budgetMb: config.memory.budgetMb, prefetch: plan.queuePrefetch(runtime.handlers[0]!.queue!.prefetch) } };
}

// ------------------------------------------------------------------------------------------- parent side

interface Sampled {
  contender: Contender;
  messages: number;
  ms: number;
  msgsPerS: number;
  peakRssMb: number;
  /** RSS every sampleMs: [ms since spawn, MB]. */
  samples: Array<[number, number]>;
  settings: Record<string, unknown>;
}

function readStatus(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

async function runChild(contender: Contender, args: Args, extra: string[], env: Record<string, string>, flags: readonly string[] = []): Promise<Sampled> {
  const node = process.execPath;
  const proc = spawn(node, [...process.execArgv, ...flags, join(BENCH_DIR, 'memory.ts'), '--child', contender, ...extra], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const t0 = performance.now();
  const samples: Array<[number, number]> = [];
  let hwm = 0;
  const timer = setInterval(() => {
    const s = readStatus(proc.pid!);
    if (!s) return;
    samples.push([Math.round(performance.now() - t0), round(s.rss / 1024, 1)]);
    hwm = Math.max(hwm, s.hwm);
  }, args.sampleMs);
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  clearInterval(timer);
  if (code !== 0) throw new Error(`${contender} exited with ${code}`);
  const result = JSON.parse(out.trim().split('\n').pop()!) as ChildResult;
  const peak = Math.max(hwm / 1024, ...samples.map(([, mb]) => mb));
  return {
    contender, messages: result.messages, ms: result.ms, msgsPerS: result.messages / (result.ms / 1000), peakRssMb: round(peak, 1), samples, settings: result.settings,
  };
}

/** RSS at a few points of the run, for the table: the timeline itself is in the JSON. */
function timeline(samples: ReadonlyArray<[number, number]>, points = 6): string {
  if (samples.length === 0) return '';
  const picks = Array.from({ length: points }, (_, i) => samples[Math.min(samples.length - 1, Math.round((i * (samples.length - 1)) / (points - 1)))]!);
  return picks.map(([ms, mb]) => `${round(ms / 1000, 1)}s:${Math.round(mb)}`).join(' ');
}

async function parent(args: Args): Promise<void> {
  const kafkaContenders = args.only.filter((c) => c.startsWith('kafka-'));
  const rabbitContenders = args.only.filter((c) => c.startsWith('rabbit-'));
  const results: Sampled[] = [];
  const config = benchConfig(join(BENCH_DIR, 'handlers', 'noop'), 'probe');
  const rabbitPrefetch = deriveMemoryPlan(config, { kafkaConsumers: 0, queueConsumers: 1 }, availableParallelism()).queuePrefetch(1);
  const mainFlags = deriveMemoryPlan(config, { kafkaConsumers: 1, queueConsumers: 0 }, availableParallelism()).mainThreadFlags;
  console.log(`memory.budgetMb ${config.memory.budgetMb} (node ${mainFlags.join(' ')}); load average ${loadAverage()}`);
  if (kafkaContenders.length > 0) {
    const kafka = benchKafka(`conveyor-bench-${runId}`);
    const admin = benchAdmin(`conveyor-bench-memory-${runId}`);
    const topic = args.topic ?? `conveyor.bench.memory.${runId}`;
    try {
      if (args.topic === undefined) {
        const produced = await prepareTopic(admin, kafka, topic, args.partitions, args.messages, args.size);
        console.log(`produced ${args.messages.toLocaleString('en-US')} messages of ${args.size} B to ${topic} (${args.partitions} partitions) in ${round(produced)} ms`);
      }
      for (const c of kafkaContenders) {
        const env: Record<string, string> = c === 'kafka-unbounded' ? { CONVEYOR_MEMORY_BUDGET_MB: '0' } : {};
        // the Conveyor contender starts node as the image does: with the main-thread heap flags its budget derives
        const flags = c === 'kafka-conveyor' ? mainFlags : [];
        const r = await runChild(c, args, ['--topic', topic, '--messages', String(args.messages)], env, flags);
        results.push(r);
        console.log(`${c.padEnd(16)} peak RSS ${r.peakRssMb} MB, ${round(r.msgsPerS).toLocaleString('en-US')} msgs/s (${round(r.ms)} ms)  ${timeline(r.samples)}`);
      }
    } finally {
      if (!args.keepTopic) await deleteTopic(admin, topic);
      await admin.close();
    }
  }
  for (const c of rabbitContenders) {
    const queue = `conveyor.bench.memory.${runId}.${c}`;
    try {
      const filled = await fillQueue(queue, args.queueMessages, args.queueSize);
      console.log(`published ${args.queueMessages.toLocaleString('en-US')} messages of ${args.queueSize} B to queue ${queue} in ${round(filled)} ms`);
      const env: Record<string, string> = c === 'rabbit-unbounded' ? { CONVEYOR_MEMORY_BUDGET_MB: '0' } : {};
      const r = await runChild(c, args, ['--queue', queue, '--queue-messages', String(args.queueMessages), '--prefetch', String(rabbitPrefetch)], env, c === 'rabbit-conveyor' ? mainFlags : []);
      results.push(r);
      console.log(`${c.padEnd(16)} peak RSS ${r.peakRssMb} MB, ${round(r.msgsPerS).toLocaleString('en-US')} msgs/s (${round(r.ms)} ms)  ${timeline(r.samples)}`);
    } finally {
      await deleteQueue(queue);
    }
  }

  const by = (c: Contender): Sampled | undefined => results.find((r) => r.contender === c);
  console.log(`\n${table(
    ['contender', 'messages', 'peak RSS MB', 'msgs/s', 'ms', 'RSS over time (s:MB)'],
    results.map((r) => [r.contender, r.messages, r.peakRssMb, round(r.msgsPerS), round(r.ms), timeline(r.samples)]),
  )}\n`);
  const conveyor = by('kafka-conveyor');
  const unbounded = by('kafka-unbounded');
  const ratio = conveyor && unbounded ? conveyor.msgsPerS / unbounded.msgsPerS : Number.NaN;
  if (conveyor) console.log(`kafka-conveyor peak RSS ${conveyor.peakRssMb} MB: ${conveyor.peakRssMb < 300 ? 'meets' : 'MISSES'} the target (< 300 MB)`);
  if (Number.isFinite(ratio)) console.log(`throughput budget / unbounded ${round(ratio, 3)}: ${ratio >= 0.9 ? 'meets' : 'MISSES'} the target (>= 0.9)`);
  console.log('');
  emit('memory', {
    bench: 'memory',
    budget_mb: config.memory.budgetMb,
    kafka: { messages: args.messages, partitions: args.partitions, message_bytes: args.size },
    rabbitmq: { messages: args.queueMessages, message_bytes: args.queueSize, prefetch: rabbitPrefetch },
    throughput_ratio_budget_vs_unbounded: round(ratio, 3),
    load_average: loadAverage(),
    node: process.versions.node,
    sample_ms: args.sampleMs,
    contenders: results.map((r) => ({
      contender: r.contender,
      messages: r.messages,
      peak_rss_mb: r.peakRssMb,
      msgs_per_s: round(r.msgsPerS),
      ms: round(r.ms, 1),
      settings: r.settings,
      rss_mb: r.samples,
    })),
  });
}

runMain(async () => {
  const args = parse();
  if (args.child) {
    const r = await child(args);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  await parent(args);
});

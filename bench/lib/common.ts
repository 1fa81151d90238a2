/**
 * What both benchmarks share: the topic data (created and produced once per run), the two contenders (the bare
 * Confluent client and Conveyor's Runtime, in this process), timing, statistics, the table and the result file.
 *
 * Both contenders get the same consumer settings (js.consumer.max.batch.size, assignment strategy, session
 * timeout, auto.offset.reset=earliest, manual commits every commit.intervalMs) read from one loaded Conveyor
 * configuration, so an environment override (KAFKA_MAX_BATCH_SIZE=…) applies to both.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino, type Logger } from 'pino';
import { loadConfig } from '../../dist/config/load.js';
import type { ConveyorConfig } from '../../dist/config/schema.js';
import { KafkaAdmin } from '../../dist/kafka/admin.js';
import { createKafka, type Consumer, type Kafka, type KafkaMessage } from '../../dist/kafka/client.js';
import { Runtime } from '../../dist/runtime.js';

export const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const brokers = (process.env.KAFKA_BROKERS ?? process.env.KAFKA_BOOTSTRAP_SERVERS ?? '127.0.0.1:9092').split(',').map((s) => s.trim());

/** Runtime and driver logs go to stderr, so stdout stays the table and the final JSON line. */
export const logger: Logger = pino({ name: 'bench', level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2));

export function benchKafka(clientId: string): Kafka {
  return createKafka({ brokers, clientId, logger });
}

/** The admin port (pure JavaScript) on the bench brokers. */
export function benchAdmin(clientId: string): KafkaAdmin {
  return new KafkaAdmin({ brokers, clientId, timeoutMs: 30_000 });
}

export const runId = `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomUUID().slice(0, 6)}`;

export interface CommonArgs {
  runs: number;
  only: 'bare' | 'conveyor' | undefined;
  keepTopic: boolean;
  topic: string | undefined;
  partitions: number;
  /** Messages in all, round-robin over the partitions. */
  messages: number;
  size: number;
  /** CPU per message in the cpu benchmark. */
  burnMs: number;
  /** The benchmark's own options (`extra` of parseCommonArgs), by name: a number where the default is one. */
  extra: Record<string, number | string>;
}

/** An option of one benchmark only (e.g. io's --delay-ms): a positive integer if its default is a number, else a string. */
export interface ExtraOption {
  readonly name: string;
  readonly default: number | string;
  readonly help: string;
}

export function parseCommonArgs(
  defaults: { partitions: number; messages: number; size: number; runs: number },
  extra: readonly ExtraOption[] = [],
): CommonArgs {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      ...Object.fromEntries(extra.map((o) => [o.name, { type: 'string' as const }])),
      runs: { type: 'string' },
      only: { type: 'string' },
      'keep-topic': { type: 'boolean' },
      topic: { type: 'string' },
      partitions: { type: 'string' },
      messages: { type: 'string' },
      size: { type: 'string' },
      'burn-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(`options: --runs N (per contender, alternating; default ${defaults.runs})  --only bare|conveyor
         --partitions N (default ${defaults.partitions})  --messages N (default ${defaults.messages})  --size BYTES (default ${defaults.size})
         --burn-ms MS (cpu only; default 1)${extra.map((o) => `\n         --${o.name} ${typeof o.default === 'number' ? 'N' : 'LIST'} (${o.help}; default ${o.default})`).join('')}
         --topic NAME (reuse an existing, already filled topic)  --keep-topic (do not delete the topic afterwards)
environment: KAFKA_MAX_BATCH_SIZE, CONVEYOR_POOL_MAX_BATCH, CONVEYOR_POOL_SIZE, … (docs/configuration.md) apply to the run;
             KAFKA_BROKERS (default 127.0.0.1:9092); LOG_LEVEL (default warn, logs go to stderr)`);
    process.exit(0);
  }
  const int = (v: string | undefined, d: number): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got ${v}`);
    return n;
  };
  if (values.only !== undefined && values.only !== 'bare' && values.only !== 'conveyor') throw new Error('--only must be bare or conveyor');
  return {
    runs: int(values.runs, defaults.runs),
    only: values.only,
    keepTopic: values['keep-topic'] ?? values.topic !== undefined,
    topic: values.topic,
    partitions: int(values.partitions, defaults.partitions),
    messages: int(values.messages, defaults.messages),
    size: int(values.size, defaults.size),
    burnMs: values['burn-ms'] === undefined ? 1 : Number(values['burn-ms']),
    extra: Object.fromEntries(extra.map((o) => {
      const given = (values as Record<string, string | boolean | undefined>)[o.name] as string | undefined;
      return [o.name, typeof o.default === 'number' ? int(given, o.default) : (given ?? o.default)];
    })),
  };
}

/** The configuration Conveyor runs with: the environment, plus what the benchmark must fix. */
export function benchConfig(handlersDir: string, group: string): ConveyorConfig {
  return loadConfig({
    env: {
      ...process.env,
      KAFKA_BOOTSTRAP_SERVERS: brokers.join(','),
      KAFKA_AUTO_OFFSET_RESET: 'earliest',
      KAFKA_ENVIRONMENT: 'bench',
      KAFKA_GROUP: group,
      CONVEYOR_HANDLERS_DIR: handlersDir,
      // metrics and health stay on (they are part of what runs in production), on a free port
      CONVEYOR_OPS_PORT: process.env.CONVEYOR_OPS_PORT ?? '0',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    },
  });
}

// ------------------------------------------------------------------------------------------- topic data

/** Partition and key of message `i`: by default round-robin over the partitions, every key distinct (`k<i>`). */
export type TopicLayout = (i: number) => { partition: number; key: string };

/** Creates the topic and produces `total` messages of `size` bytes round-robin over its partitions (idempotent, batched). */
export async function prepareTopic(
  admin: KafkaAdmin, kafka: Kafka, topic: string, partitions: number, total: number, size: number,
  layout: TopicLayout = (i) => ({ partition: i % partitions, key: `k${i}` }),
): Promise<number> {
  const created = await admin.createTopic(topic, partitions);
  if (!created) throw new Error(`topic ${topic} already exists`);
  const producer = kafka.producer({
    'enable.idempotence': true,
    acks: -1,
    'linger.ms': 10,
    'batch.size': 1_000_000,
    'batch.num.messages': 10_000,
    'queue.buffering.max.kbytes': 1_048_576,
    'compression.type': 'none',
  } as never);
  const t0 = performance.now();
  await producer.connect();
  try {
    const chunk = 2000;
    const inFlight = new Set<Promise<unknown>>();
    for (let start = 0; start < total; start += chunk) {
      const messages = [];
      for (let i = start; i < Math.min(total, start + chunk); i++) {
        messages.push({ ...layout(i), value: payload(i, size) });
      }
      const sent: Promise<unknown> = producer.send({ topic, messages }).finally(() => inFlight.delete(sent));
      inFlight.add(sent);
      if (inFlight.size >= 8) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  } finally {
    await producer.disconnect();
  }
  const offsets = await admin.topicOffsets(topic);
  const stored = offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  if (stored !== total) throw new Error(`topic ${topic} holds ${stored} messages, expected ${total}`);
  return performance.now() - t0;
}

/** A JSON object of exactly `size` bytes (valid JSON so BENCH_DESERIALIZE=json works too). */
function payload(i: number, size: number): Buffer {
  const head = `{"seq":${i},"pad":"`;
  const fill = Math.max(0, size - head.length - 2);
  return Buffer.from(`${head}${'x'.repeat(fill)}"}`);
}

/** Deletes the topic, checking that it stays deleted (a deletion can be lost); warns on stderr if it could not. */
export async function deleteTopic(admin: KafkaAdmin, topic: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    try {
      if (!(await admin.topics()).has(topic)) return;
      await admin.deleteTopics([topic]);
    } catch (err) {
      logger.debug({ err, topic }, 'topic deletion failed; trying again');
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  process.stderr.write(`could not delete topic ${topic}; delete it by hand\n`);
}

/** Sum of the group's committed offsets on the topic (what a restarted consumer would skip). */
export async function committedTotal(admin: KafkaAdmin, group: string, topic: string): Promise<number> {
  const committed = (await admin.committedOffsets(group, [topic])).get(topic) ?? new Map<number, bigint>();
  return [...committed.values()].reduce((n, offset) => n + Number(offset), 0);
}

// ------------------------------------------------------------------------------------------- contenders

export interface RunResult {
  contender: 'bare' | 'conveyor';
  /** What the tables call the contender, when there is more than one Conveyor setting (io: conveyor/key, …). */
  label?: string;
  run: number;
  group: string;
  messages: number;
  /** From start (connect / Runtime.start) until the last message was handled. */
  ms: number;
  msgsPerS: number;
  /** From the end of the first batch (bare) or pool task (Conveyor) until the last message: throughput without the group join. */
  steadyMs: number;
  steadyMsgsPerS: number;
  /** Start until the first batch or task was handled (connect, join, assignment, first fetch, first batch). */
  firstMessageMs: number;
  /** CPU time of the whole process (all threads: main, librdkafka, workers) during the run. */
  cpuMs: number;
  /** Main thread event-loop utilisation during the run (1 = saturated). */
  mainElu: number;
  /** Offsets committed by the group after the run (should equal `messages`). */
  committed: number;
  extra: Record<string, number>;
}

export interface Clock {
  t0: number;
  cpu0: NodeJS.CpuUsage;
  elu0: ReturnType<typeof performance.eventLoopUtilization>;
}

export function startClock(): Clock {
  return { t0: performance.now(), cpu0: process.cpuUsage(), elu0: performance.eventLoopUtilization() };
}

export function readClock(c: Clock): { ms: number; cpuMs: number; mainElu: number } {
  const cpu = process.cpuUsage(c.cpu0);
  return { ms: performance.now() - c.t0, cpuMs: (cpu.user + cpu.system) / 1000, mainElu: performance.eventLoopUtilization(c.elu0).utilization };
}

export function deadline<T>(what: string, promise: Promise<T>, ms: number, progress: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms (${progress()})`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export interface BareOptions {
  kafka: Kafka;
  admin: KafkaAdmin;
  topic: string;
  config: ConveyorConfig;
  expected: number;
  run: number;
  /** Work per message, on the main thread, in order (the cpu benchmark); absent: a no-op. */
  work?: (message: KafkaMessage) => void;
  /**
   * Instead of eachBatch: eachMessage awaiting this for each message, with `partitionsConsumedConcurrently`
   * partitions at once (the io benchmark).
   */
  eachMessage?: (message: KafkaMessage) => Promise<void>;
  partitionsConsumedConcurrently?: number;
  timeoutMs?: number;
}

/** A bare consumer with the settings Conveyor's consumers use (read from `config`), manual commits, from the beginning. */
export function bareConsumer(kafka: Kafka, config: ConveyorConfig, group: string): Consumer {
  const k = config.kafka;
  return kafka.consumer({
    kafkaJS: { groupId: group, fromBeginning: true, autoCommit: false },
    'group.id': group,
    'session.timeout.ms': k.instanceId ? k.sessionTimeoutMs : k.dynamicSessionTimeoutMs,
    'allow.auto.create.topics': false,
    'partition.assignment.strategy': k.assignmentStrategy,
    'enable.auto.commit': false,
    'auto.offset.reset': 'earliest',
    'js.consumer.max.batch.size': k.maxBatchSize,
  } as never);
}

/**
 * The bare client: one consumer group, eachBatch (no-op, or `work` per message in order) or eachMessage
 * (`eachMessage`, several partitions at once), offsets committed manually every commit.intervalMs (as Conveyor
 * does) and once at the end.
 */
export async function runBare(o: BareOptions): Promise<RunResult> {
  const { config, topic } = o;
  const group = `bench.${runId}.bare-${o.run}`;
  const consumer = bareConsumer(o.kafka, config, group);
  const next = new Map<number, bigint>(); // partition → offset to commit (last handled + 1)
  let count = 0;
  let firstAt = 0;
  let firstCount = 0;
  let batches = 0;
  let commits = 0;
  let doneAt = 0;
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const commit = async (): Promise<void> => {
    if (next.size === 0) return;
    const list = [...next].map(([partition, offset]) => ({ topic, partition, offset: offset.toString() }));
    next.clear();
    await consumer.commitOffsets(list);
    commits += 1;
  };
  let committing = Promise.resolve();
  const timer = setInterval(() => {
    committing = committing.then(commit).catch((err: unknown) => logger.warn({ err }, 'bare commit failed'));
  }, config.commit.intervalMs);

  const clock = startClock();
  await consumer.connect();
  await consumer.subscribe({ topics: [topic] });
  const eachMessage = o.eachMessage;
  if (eachMessage) {
    await consumer.run({
      partitionsConsumedConcurrently: o.partitionsConsumedConcurrently ?? 1,
      eachMessage: async ({ partition, message }) => {
        await eachMessage(message);
        if (firstAt === 0) {
          firstAt = performance.now();
          firstCount = 1;
        }
        next.set(partition, BigInt(message.offset) + 1n);
        count += 1;
        if (count >= o.expected && doneAt === 0) {
          doneAt = performance.now();
          finish();
        }
      },
    });
  } else {
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const messages = batch.messages;
        if (messages.length === 0) return;
        if (o.work) for (const m of messages) o.work(m);
        if (firstAt === 0) {
          firstAt = performance.now();
          firstCount = messages.length;
        }
        batches += 1;
        next.set(batch.partition, BigInt(messages[messages.length - 1]!.offset) + 1n);
        count += messages.length;
        if (count >= o.expected && doneAt === 0) {
          doneAt = performance.now();
          finish();
        }
      },
    });
  }
  await deadline('bare consumer', done, o.timeoutMs ?? 300_000, () => `${count}/${o.expected} handled`);
  const measured = readClock(clock);
  clearInterval(timer);
  await committing;
  await commit();
  await consumer.disconnect();
  const committed = await committedTotal(o.admin, group, topic);
  const extra: Record<string, number> = eachMessage ? { commits } : { batches, avgBatch: count / batches, commits };
  return result('bare', o.run, group, count, clock.t0, firstAt, firstCount, doneAt, measured, committed, extra);
}

export interface ConveyorOptions {
  admin: KafkaAdmin;
  topic: string;
  handlersDir: string;
  expected: number;
  run: number;
  timeoutMs?: number;
}

/** Conveyor in this process: Runtime.create (handler discovery, not timed), then start() until every message was handled. */
export async function runConveyor(o: ConveyorOptions): Promise<RunResult & { config: ConveyorConfig }> {
  process.env.BENCH_TOPIC = o.topic;
  const config = benchConfig(o.handlersDir, `${runId}.conveyor-${o.run}`);
  const runtime = await Runtime.create(config, logger);
  const group = runtime.handlers[0]!.group;
  let count = 0;
  let tasks = 0;
  let taskMs = 0;
  let firstAt = 0;
  let firstCount = 0;
  let doneAt = 0;
  let pauses = 0;
  let commits = 0;
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  runtime.events.on('messages.handled', (e) => {
    if (firstAt === 0) {
      firstAt = performance.now();
      firstCount = e.count;
    }
    count += e.count;
    tasks += 1;
    taskMs += e.durationMs;
    if (count >= o.expected && doneAt === 0) {
      doneAt = performance.now();
      finish();
    }
  });
  runtime.events.on('partition.paused', () => (pauses += 1));
  runtime.events.on('offsets.committed', () => (commits += 1));

  const clock = startClock();
  await runtime.start();
  let measured: ReturnType<typeof readClock>;
  try {
    await deadline('conveyor', done, o.timeoutMs ?? 300_000, () => `${count}/${o.expected} handled`);
    measured = readClock(clock);
  } finally {
    await runtime.stop();
  }
  const committed = await committedTotal(o.admin, group, o.topic);
  return {
    ...result('conveyor', o.run, group, count, clock.t0, firstAt, firstCount, doneAt, measured, committed, {
      poolTasks: tasks,
      avgTaskMessages: count / tasks,
      avgTaskRoundTripMs: taskMs / tasks,
      pauses,
      commits,
    }),
    config,
  };
}

/** A RunResult from a run's times and counts (shared by the benchmarks' own contenders). */
export function result(
  contender: 'bare' | 'conveyor', run: number, group: string, messages: number, t0: number, firstAt: number, firstCount: number, doneAt: number,
  measured: { ms: number; cpuMs: number; mainElu: number }, committed: number, extra: Record<string, number>,
): RunResult {
  const ms = doneAt - t0;
  const steadyMs = doneAt - firstAt;
  return {
    contender, run, group, messages, ms, msgsPerS: messages / (ms / 1000), steadyMs, steadyMsgsPerS: (messages - firstCount) / (steadyMs / 1000),
    firstMessageMs: firstAt - t0, cpuMs: measured.cpuMs, mainElu: measured.mainElu, committed, extra,
  };
}

// ------------------------------------------------------------------------------------------- reporting

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** conveyor / bare for each run number that has both: under noise, the spread tells as much as the median. */
export function pairs(runs: readonly RunResult[]): number[] {
  const out: number[] = [];
  for (const c of runs.filter((r) => r.contender === 'conveyor')) {
    const b = runs.find((r) => r.contender === 'bare' && r.run === c.run);
    if (b) out.push(round(c.msgsPerS / b.msgsPerS, 3));
  }
  return out;
}

export const round = (x: number, digits = 0): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export function table(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? c.toLocaleString('en-US', { maximumFractionDigits: 3 }) : c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: ReadonlyArray<string | number>): string => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function runRows(runs: readonly RunResult[]): Array<Array<string | number>> {
  return runs.map((r) => [
    `${r.label ?? r.contender} #${r.run}`,
    round(r.msgsPerS),
    round(r.steadyMsgsPerS),
    round(r.ms),
    round(r.firstMessageMs),
    round(r.cpuMs),
    round((r.cpuMs * 1000) / r.messages, 2),
    round(r.mainElu, 2),
    r.committed === r.messages ? 'ok' : `${r.committed}/${r.messages}`,
  ]);
}

/** One line of progress while the benchmark runs. */
export function progressLine(r: RunResult): string {
  const extra = Object.entries(r.extra).map(([k, v]) => `${k} ${round(v, 2)}`).join(', ');
  return `${`${r.label ?? r.contender} #${r.run}`.padEnd(12)} ${round(r.msgsPerS).toLocaleString('en-US').padStart(9)} msgs/s  ` +
    `(steady ${round(r.steadyMsgsPerS).toLocaleString('en-US')}, ${round(r.ms)} ms, first batch done after ${round(r.firstMessageMs)} ms, ` +
    `cpu ${round((r.cpuMs * 1000) / r.messages, 1)} µs/msg, main ELU ${round(r.mainElu, 2)}; ${extra})`;
}

export const RUN_HEADERS = ['run', 'msgs/s', 'steady msgs/s', 'total ms', 'first batch ms', 'cpu ms', 'cpu µs/msg', 'main ELU', 'committed'] as const;

export function runJson(r: RunResult): Record<string, unknown> {
  return {
    contender: r.contender,
    ...(r.label !== undefined ? { label: r.label } : {}),
    run: r.run,
    msgs_per_s: round(r.msgsPerS),
    steady_msgs_per_s: round(r.steadyMsgsPerS),
    ms: round(r.ms, 1),
    first_message_ms: round(r.firstMessageMs, 1),
    cpu_ms: round(r.cpuMs, 1),
    main_elu: round(r.mainElu, 3),
    committed_ok: r.committed === r.messages,
    ...Object.fromEntries(Object.entries(r.extra).map(([key, v]) => [key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), round(v, 3)])),
  };
}

/** The 1-minute load average: other work on the machine makes every number here noisier. */
export function loadAverage(): number {
  return round(loadavg()[0] ?? 0, 2);
}

export function environment(config: ConveyorConfig | undefined): Record<string, unknown> {
  return {
    node: process.versions.node,
    cores: availableParallelism(),
    max_batch_size: config?.kafka.maxBatchSize,
    pool_max_batch: config?.pool.maxBatch,
    pool_size: config ? (config.pool.size > 0 ? config.pool.size : availableParallelism()) : undefined,
  };
}

/** Writes bench/results/<name>-<timestamp>.json and prints the object as the last line of stdout. */
export function emit(name: string, json: Record<string, unknown>): void {
  const dir = join(BENCH_DIR, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  process.stderr.write(`results written to ${file}\n`);
  process.stdout.write(`${JSON.stringify(json)}\n`);
}

/** Runs a benchmark's main: exit 0 when it finished, 1 with the error otherwise. */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

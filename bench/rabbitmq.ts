/**
 * RabbitMQ: Conveyor's queue handlers against a bare amqplib consumer (manual ack, one channel, basic.qos =
 * prefetch) in the same run, on durable queues. Four scenarios (--scenario to run some):
 *
 *   noop     100,000 × 1 KiB, no-op handler: Conveyor at its default settings (bench/handlers/rabbit-noop: no
 *            concurrency or prefetch declared) vs bare with the prefetch Conveyor's handler gets (--bare-prefetch
 *            to change it). Target: conveyor ≥ 0.8 × bare.
 *   io       2,000 messages, the handler awaits 20 ms: Conveyor with concurrency 50 (bench/handlers/rabbit-io) on
 *            the default thread count vs bare with prefetch 50 (50 handlers awaiting at once).
 *            Target: ≥ 0.9 × 50 × 1000 / 20 ms (2,250 msgs/s) and ≥ bare.
 *   cpu      2,000 messages, ~1 ms of SHA-256 each (bench/lib/burn.ts): Conveyor with concurrency 8
 *            (bench/handlers/rabbit-cpu) vs bare, prefetch 8, burning on its one thread. Target: speedup ≥ 0.9 × cores.
 *   latency  500 msgs/s for 20 s to a fanout exchange bound to two queues, one per contender, both consuming at the
 *            same time, each in a process of its own, prefetch 8 both (bench/handlers/rabbit-latency: concurrency 1, prefetch 8). End-to-end latency
 *            (handled − published, bench/lib/latency.ts), the first 2 s left out. Target: conveyor p99 ≤ 2 × bare p99.
 *
 * noop, io and cpu: the contenders alternate (bare, conveyor, bare, …), each draining a queue filled just before
 * (not timed); msgs/s from the consumer's start to the last message handled. Last stdout line: the JSON result.
 *
 *   bash bench/run.sh rabbitmq [--scenario noop,io,cpu,latency] [--runs N] [--only bare|conveyor] ...   (--help)
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { deriveMemoryPlan } from '../dist/config/memory-budget.js';
import { discoverHandlers } from '../dist/handlers/discover.js';
import { Runtime } from '../dist/runtime.js';
import { burn, burnRate, calibrate } from './lib/burn.ts';
import {
  BENCH_DIR, RUN_HEADERS, benchConfig, deadline, emit, environment, loadAverage, logger, median, progressLine, readClock, result, round, runId, runJson, runMain, runRows,
  startClock, table, type RunResult,
} from './lib/common.ts';
import { nowMs, recordHandled, serveContender, spawnContender, type ContenderSummary, type Stamp } from './lib/latency.ts';
import { amqpUrl, deleteQueue, fillQueue, queueDepth } from './lib/rabbit.ts';

const SCENARIOS = ['noop', 'io', 'cpu', 'latency'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Args {
  scenarios: Scenario[];
  runs: number;
  only: 'bare' | 'conveyor' | undefined;
  size: number;
  noopMessages: number;
  barePrefetch: number | undefined;
  ioMessages: number;
  delayMs: number;
  concurrency: number;
  cpuMessages: number;
  burnMs: number;
  rate: number;
  durationS: number;
  warmupS: number;
  /** Internal: one latency contender (a child process of the benchmark) on --queue. */
  child: 'bare' | 'conveyor' | undefined;
  queue: string | undefined;
}

function parse(): Args {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      scenario: { type: 'string' },
      runs: { type: 'string' },
      only: { type: 'string' },
      size: { type: 'string' },
      'noop-messages': { type: 'string' },
      'bare-prefetch': { type: 'string' },
      'io-messages': { type: 'string' },
      'delay-ms': { type: 'string' },
      concurrency: { type: 'string' },
      'cpu-messages': { type: 'string' },
      'burn-ms': { type: 'string' },
      rate: { type: 'string' },
      'duration-s': { type: 'string' },
      'warmup-s': { type: 'string' },
      child: { type: 'string' },
      queue: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(`options: --scenario ${SCENARIOS.join(',')} (a comma-separated subset; default all, in this order)
         --runs N (per contender, alternating; default 2; latency: measurements of --duration-s each)  --only bare|conveyor
         --size BYTES (message size of noop, io and cpu; default 1024)
         noop:    --noop-messages N (default 100000)  --bare-prefetch N (default: the prefetch Conveyor's handler gets)
         io:      --io-messages N (default 2000)  --delay-ms MS (default 20)  --concurrency N (Conveyor's, and bare's prefetch; default 50)
         cpu:     --cpu-messages N (default 2000)  --burn-ms MS (default 1)
         latency: --rate N msgs/s (default 500)  --duration-s S (default 20)  --warmup-s S (left out; default 2)
environment: any Conveyor setting (CONVEYOR_POOL_SIZE, CONVEYOR_MEMORY_BUDGET_MB, …) applies to the Conveyor runs;
             AMQP_URL (default amqp://guest:guest@127.0.0.1:5672); LOG_LEVEL (default warn, logs go to stderr)`);
    process.exit(0);
  }
  const int = (v: string | undefined, d: number, min = 1): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`expected an integer >= ${min}, got ${v}`);
    return n;
  };
  const scenarios = (values.scenario ?? SCENARIOS.join(',')).split(',').map((s) => s.trim());
  for (const s of scenarios) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s}; one of ${SCENARIOS.join(', ')}`);
  if (values.only !== undefined && values.only !== 'bare' && values.only !== 'conveyor') throw new Error('--only must be bare or conveyor');
  return {
    scenarios: SCENARIOS.filter((s) => scenarios.includes(s)),
    runs: int(values.runs, 2),
    only: values.only,
    size: int(values.size, 1024),
    noopMessages: int(values['noop-messages'], 100_000),
    barePrefetch: values['bare-prefetch'] === undefined ? undefined : int(values['bare-prefetch'], 1),
    ioMessages: int(values['io-messages'], 2000),
    delayMs: int(values['delay-ms'], 20, 0),
    concurrency: int(values.concurrency, 50),
    cpuMessages: int(values['cpu-messages'], 2000),
    burnMs: values['burn-ms'] === undefined ? 1 : Number(values['burn-ms']),
    rate: int(values.rate, 500),
    durationS: int(values['duration-s'], 20),
    warmupS: int(values['warmup-s'], 2, 0),
    child: values.child === 'bare' || values.child === 'conveyor' ? values.child : undefined,
    queue: values.queue,
  };
}

// ------------------------------------------------------------------------------------------- contenders

interface BareRabbitOptions {
  queue: string;
  prefetch: number;
  expected: number;
  run: number;
  /** Per message before its ack: a promise is awaited (messages still arrive meanwhile, up to prefetch); absent: a no-op. */
  work?: (content: Buffer) => void | Promise<void>;
}

/** The bare amqplib consumer: one connection, one channel, basic.qos = prefetch, ack after `work`. */
async function runBareRabbit(o: BareRabbitOptions): Promise<RunResult> {
  const connection = await amqp.connect(amqpUrl, { noDelay: true });
  const clock = startClock();
  const channel = await connection.createChannel();
  await channel.prefetch(o.prefetch);
  let count = 0;
  let firstAt = 0;
  let doneAt = 0;
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const handled = (m: amqp.ConsumeMessage): void => {
    channel.ack(m);
    if (firstAt === 0) firstAt = performance.now();
    count += 1;
    if (count >= o.expected && doneAt === 0) {
      doneAt = performance.now();
      finish();
    }
  };
  await channel.consume(o.queue, (m) => {
    if (!m) return;
    const pending = o.work?.(m.content);
    if (pending) void pending.then(() => handled(m));
    else handled(m);
  });
  try {
    await deadline('bare consumer', done, 600_000, () => `${count}/${o.expected} handled`);
  } finally {
    await channel.close().catch(() => {});
    await connection.close().catch(() => {});
  }
  const measured = readClock(clock);
  const left = await queueDepth(o.queue);
  return result('bare', o.run, o.queue, count, clock.t0, firstAt, 1, doneAt, measured, o.expected - left, { prefetch: o.prefetch });
}

/** Conveyor in this process with one queue handler: Runtime.create (not timed), start() until `expected` were handled. */
async function runConveyorRabbit(handlersDir: string, queue: string, expected: number, run: number): Promise<RunResult & { prefetch: number; threads: number }> {
  process.env.BENCH_QUEUE = queue; // read when the handler module is first imported: one queue name per handler file
  const config = benchConfig(handlersDir, `${runId}.rabbit`);
  const runtime = await Runtime.create(config, logger);
  const spec = runtime.handlers[0]!;
  if (spec.queue?.name !== queue) throw new Error(`handler ${spec.name} consumes ${spec.queue?.name}, not ${queue}`);
  const plan = deriveMemoryPlan(config, { kafkaConsumers: 0, queueConsumers: 1 }, availableParallelism());
  let count = 0;
  let tasks = 0;
  let taskMs = 0;
  let firstAt = 0;
  let firstCount = 0;
  let doneAt = 0;
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
    if (count >= expected && doneAt === 0) {
      doneAt = performance.now();
      finish();
    }
  });
  const clock = startClock();
  await runtime.start();
  let measured: ReturnType<typeof readClock>;
  try {
    await deadline('conveyor', done, 600_000, () => `${count}/${expected} handled`);
    measured = readClock(clock);
  } finally {
    await runtime.stop();
  }
  const left = await queueDepth(queue);
  const prefetch = plan.queuePrefetch(spec.queue.prefetch, spec.concurrency);
  return {
    ...result('conveyor', run, queue, count, clock.t0, firstAt, firstCount, doneAt, measured, expected - left, {
      concurrency: spec.concurrency,
      prefetch,
      poolTasks: tasks,
      avgTaskMessages: count / tasks,
      avgTaskRoundTripMs: taskMs / tasks,
    }),
    prefetch,
    threads: plan.summary.threads ?? availableParallelism(),
  };
}

// ------------------------------------------------------------------------------------------- throughput scenarios

interface Target {
  name: string;
  value: number;
  target: number;
  met: boolean;
}

function target(targets: Target[], name: string, value: number, goal: number): void {
  if (!Number.isFinite(value) || !Number.isFinite(goal)) return;
  targets.push({ name, value: round(value, 3), target: round(goal, 3), met: value >= goal });
}

interface Drain {
  scenario: Scenario;
  messages: number;
  /** Prefetch of the bare consumer. */
  barePrefetch: number;
  handlersDir: string;
  work?: (content: Buffer) => void | Promise<void>;
  /** Between pairs (cpu: the hardware ceiling). */
  afterPair?: () => Promise<void>;
}

function queueName(scenario: Scenario, contender: 'bare' | 'conveyor'): string {
  return `conveyor.bench.rabbitmq.${runId}.${scenario}.${contender}`;
}

/** Alternates bare and Conveyor, each on a freshly filled queue (one per contender: the handler's queue name is fixed at import). */
async function drain(args: Args, d: Drain): Promise<RunResult[]> {
  const runs: RunResult[] = [];
  const queues = { bare: queueName(d.scenario, 'bare'), conveyor: queueName(d.scenario, 'conveyor') };
  try {
    for (let i = 1; i <= args.runs; i++) {
      for (const contender of ['bare', 'conveyor'] as const) {
        if (args.only !== undefined && args.only !== contender) continue;
        const filled = await fillQueue(queues[contender], d.messages, args.size);
        logger.debug({ queue: queues[contender], ms: filled }, 'queue filled');
        const r = contender === 'bare'
          ? await runBareRabbit({ queue: queues.bare, prefetch: d.barePrefetch, expected: d.messages, run: i, ...(d.work ? { work: d.work } : {}) })
          : await runConveyorRabbit(d.handlersDir, queues.conveyor, d.messages, i);
        runs.push(r);
        console.log(`${d.scenario.padEnd(5)} ${progressLine(r)}`);
      }
      await d.afterPair?.();
    }
  } finally {
    await deleteQueue(queues.bare);
    await deleteQueue(queues.conveyor);
  }
  return runs;
}

function medians(runs: readonly RunResult[]): { bare: number; conveyor: number; pairs: number[] } {
  const of = (c: 'bare' | 'conveyor'): number => median(runs.filter((r) => r.contender === c).map((r) => r.msgsPerS));
  const pairs = runs.filter((r) => r.contender === 'conveyor').flatMap((c) => runs.filter((b) => b.contender === 'bare' && b.run === c.run).map((b) => round(c.msgsPerS / b.msgsPerS, 3)));
  return { bare: of('bare'), conveyor: of('conveyor'), pairs };
}

// ------------------------------------------------------------------------------------------- latency scenario

interface LatencyRun {
  run: number;
  sent: number;
  bare: ContenderSummary;
  conveyor: ContenderSummary;
}

/** One latency contender in a process of its own (bench/lib/latency.ts, serveContender), consuming `queue`. */
async function latencyChild(contender: 'bare' | 'conveyor', queue: string): Promise<void> {
  let stop: () => Promise<void> = async () => {};
  await serveContender(contender, async () => {
    if (contender === 'bare') {
      const connection = await amqp.connect(amqpUrl, { noDelay: true });
      const channel = await connection.createChannel();
      await channel.prefetch(8);
      await channel.consume(queue, (m) => {
        if (!m) return;
        recordHandled('bare', JSON.parse(m.content.toString('utf8')) as Stamp);
        channel.ack(m);
      });
      stop = async () => {
        await channel.close().catch(() => {});
        await connection.close().catch(() => {});
      };
    } else {
      process.env.BENCH_QUEUE = queue;
      const runtime = await Runtime.create(benchConfig(join(BENCH_DIR, 'handlers', 'rabbit-latency'), `${runId}.rabbit`), logger);
      await runtime.start();
      stop = () => runtime.stop();
    }
  }, () => stop());
}

/**
 * Both contenders consume at the same time, each from its own queue bound to one fanout exchange, each in a process
 * of its own; this process publishes.
 */
async function latencyRun(args: Args, run: number, exchange: string, queues: { bare: string; conveyor: string }): Promise<LatencyRun> {
  const total = args.rate * args.durationS;
  const script = join(BENCH_DIR, 'rabbitmq.ts');
  const children = {
    bare: spawnContender('bare', script, ['--child', 'bare', '--queue', queues.bare]),
    conveyor: spawnContender('conveyor', script, ['--child', 'conveyor', '--queue', queues.conveyor]),
  };
  const connection = await amqp.connect(amqpUrl, { noDelay: true });
  try {
    const channel = await connection.createChannel();
    await deadline('contenders ready', Promise.all([children.bare.ready, children.conveyor.ready]), 90_000, () => 'waiting for the consumers');
    await sleep(500);
    // a steady rate: every millisecond or so, publish the messages due by now, each stamped as it is published
    const t0 = nowMs();
    let sent = 0;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((nowMs() - t0) / 1000) * args.rate));
      for (; sent < due; sent++) channel.publish(exchange, '', Buffer.from(JSON.stringify({ seq: sent, sentAt: nowMs() } satisfies Stamp)));
      await sleep(1);
    }
    children.bare.order(total, t0 + args.warmupS * 1000);
    children.conveyor.order(total, t0 + args.warmupS * 1000);
    return { run, sent, bare: await children.bare.result, conveyor: await children.conveyor.result };
  } finally {
    await connection.close().catch(() => {});
  }
}

// ------------------------------------------------------------------------------------------- main

async function main(args: Args): Promise<void> {
  const cores = availableParallelism();
  const probe = benchConfig(join(BENCH_DIR, 'handlers', 'rabbit-noop'), 'probe');
  const plan = deriveMemoryPlan(probe, { kafkaConsumers: 0, queueConsumers: 1 }, cores);
  console.log(
    `${cores} cores, pool.size ${probe.pool.size || `cores (${plan.summary.threads ?? cores} threads)`}, memory.budgetMb ${probe.memory.budgetMb}; ` +
      `${args.runs} run(s) each, alternating; scenarios ${args.scenarios.join(', ')}; load average ${loadAverage()}\n`,
  );
  const targets: Target[] = [];
  const out: Record<string, unknown> = {};
  const tables: string[] = [];

  if (args.scenarios.includes('noop')) {
    const handlersDir = join(BENCH_DIR, 'handlers', 'rabbit-noop');
    // the bare consumer gets the prefetch Conveyor gives rabbit-noop (no concurrency, no prefetch declared)
    process.env.BENCH_QUEUE = queueName('noop', 'conveyor'); // read once, when the handler module is first imported
    const spec = (await discoverHandlers(handlersDir, probe))[0]!;
    const barePrefetch = args.barePrefetch ?? plan.queuePrefetch(spec.queue!.prefetch, spec.concurrency);
    const runs = await drain(args, { scenario: 'noop', messages: args.noopMessages, barePrefetch, handlersDir });
    const m = medians(runs);
    target(targets, 'noop: conveyor / bare >= 0.8', m.conveyor / m.bare, 0.8);
    tables.push(`noop: ${args.noopMessages.toLocaleString('en-US')} × ${args.size} B, no-op; Conveyor default settings, bare prefetch ${barePrefetch}\n${table(RUN_HEADERS, runRows(runs))}\n` +
      `median: bare ${round(m.bare).toLocaleString('en-US')} msgs/s, conveyor ${round(m.conveyor).toLocaleString('en-US')} msgs/s, ratio ${round(m.conveyor / m.bare, 3)} (per pair: ${m.pairs.join(', ')})`);
    out.noop = { messages: args.noopMessages, bare_prefetch: barePrefetch, bare_msgs_per_s: round(m.bare), conveyor_msgs_per_s: round(m.conveyor), ratio: round(m.conveyor / m.bare, 3), pair_ratios: m.pairs, runs: runs.map(runJson) };
  }

  if (args.scenarios.includes('io')) {
    process.env.BENCH_DELAY_MS = String(args.delayMs); // read by bench/handlers/rabbit-io in the workers
    process.env.BENCH_CONCURRENCY = String(args.concurrency); // read by bench/handlers/rabbit-io when imported
    const runs = await drain(args, {
      scenario: 'io', messages: args.ioMessages, barePrefetch: args.concurrency, handlersDir: join(BENCH_DIR, 'handlers', 'rabbit-io'),
      work: () => sleep(args.delayMs).then(() => undefined),
    });
    const m = medians(runs);
    const ceiling = (args.concurrency * 1000) / Math.max(args.delayMs, 1e-9);
    target(targets, `io: conveyor msgs/s >= 0.9 × ${args.concurrency} × 1000 / ${args.delayMs} ms`, m.conveyor, 0.9 * ceiling);
    target(targets, 'io: conveyor msgs/s >= bare', m.conveyor, m.bare);
    tables.push(`io: ${args.ioMessages.toLocaleString('en-US')} messages, the handler awaits ${args.delayMs} ms; Conveyor concurrency ${args.concurrency}, bare prefetch ${args.concurrency} ` +
      `(at most ${round(ceiling).toLocaleString('en-US')} msgs/s)\n${table(RUN_HEADERS, runRows(runs))}\n` +
      `median: bare ${round(m.bare).toLocaleString('en-US')} msgs/s, conveyor ${round(m.conveyor).toLocaleString('en-US')} msgs/s, ratio ${round(m.conveyor / m.bare, 3)} (per pair: ${m.pairs.join(', ')})`);
    out.io = {
      messages: args.ioMessages, delay_ms: args.delayMs, concurrency: args.concurrency, ceiling_msgs_per_s: round(ceiling),
      bare_msgs_per_s: round(m.bare), conveyor_msgs_per_s: round(m.conveyor), ratio: round(m.conveyor / m.bare, 3), pair_ratios: m.pairs, runs: runs.map(runJson),
    };
  }

  if (args.scenarios.includes('cpu')) {
    const { iterations, msPerCall } = calibrate(args.burnMs);
    process.env.BENCH_BURN_ITERATIONS = String(iterations); // read by bench/handlers/rabbit-cpu in the workers
    const perThread = Math.max(200, Math.round(1000 / Math.max(msPerCall, 0.01)));
    const ceilings: number[] = [];
    const measureCeiling = async (): Promise<void> => {
      const one = await burnRate(1, iterations, perThread);
      const all = await burnRate(cores, iterations, perThread);
      ceilings.push(all / one);
      console.log(`cpu   ceiling: 1 thread ${round(one)} msgs/s, ${cores} threads ${round(all)} msgs/s: ${round(all / one, 2)}× (plain worker threads, no broker)`);
    };
    console.log(`cpu   burn: ${iterations} SHA-256 rounds per message, ${round(msPerCall, 3)} ms on the main thread (target ${args.burnMs} ms)`);
    await measureCeiling();
    const runs = await drain(args, {
      scenario: 'cpu', messages: args.cpuMessages, barePrefetch: 8, handlersDir: join(BENCH_DIR, 'handlers', 'rabbit-cpu'),
      work: (content) => void burn(iterations, content), afterPair: measureCeiling,
    });
    const m = medians(runs);
    const speedup = m.conveyor / m.bare;
    target(targets, `cpu: speedup >= 0.9 × ${cores} cores`, speedup, 0.9 * cores);
    tables.push(`cpu: ${args.cpuMessages.toLocaleString('en-US')} messages, ${round(msPerCall, 3)} ms of SHA-256 each; Conveyor concurrency 8, bare prefetch 8 on its one thread\n` +
      `${table(RUN_HEADERS, runRows(runs))}\n` +
      `median: bare ${round(m.bare).toLocaleString('en-US')} msgs/s, conveyor ${round(m.conveyor).toLocaleString('en-US')} msgs/s, speedup ${round(speedup, 2)} ` +
      `(per pair: ${m.pairs.join(', ')}); hardware ceiling ${round(median(ceilings), 2)} (median of ${ceilings.map((c) => round(c, 2)).join(', ')})`);
    out.cpu = {
      messages: args.cpuMessages, burn_ms: round(msPerCall, 3), burn_iterations: iterations, bare_msgs_per_s: round(m.bare, 1), conveyor_msgs_per_s: round(m.conveyor, 1),
      speedup: round(speedup, 3), pair_speedups: m.pairs, ceiling_speedup: round(median(ceilings), 3), ceiling_samples: ceilings.map((c) => round(c, 3)), runs: runs.map(runJson),
    };
  }

  if (args.scenarios.includes('latency')) {
    const exchange = `conveyor.bench.rabbitmq.${runId}.latency`;
    const queues = { bare: `${exchange}.bare`, conveyor: `${exchange}.conveyor` };
    const results: LatencyRun[] = [];
    const connection = await amqp.connect(amqpUrl);
    const channel = await connection.createChannel();
    try {
      await channel.assertExchange(exchange, 'fanout', { durable: false, autoDelete: false });
      for (const q of Object.values(queues)) {
        await channel.assertQueue(q, { durable: true });
        await channel.bindQueue(q, exchange, '');
      }
      console.log(`latency: ${args.rate} msgs/s for ${args.durationS} s to fanout exchange ${exchange}, both contenders at once, each in a process of its own (prefetch 8); the first ${args.warmupS} s left out`);
      for (let i = 1; i <= args.runs; i++) {
        const r = await latencyRun(args, i, exchange, queues);
        results.push(r);
        const line = (c: 'bare' | 'conveyor'): string => `${c} p50 ${round(r[c].p50, 2)} ms, p99 ${round(r[c].p99, 2)} ms, max ${round(r[c].max, 1)} ms (${r[c].count} measured, process cpu ${round(r[c].cpuUsPerMessage)} µs/msg)`;
        console.log(`latency #${i}: ${line('bare')}; ${line('conveyor')}`);
      }
    } finally {
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close().catch(() => {});
      for (const q of Object.values(queues)) await deleteQueue(q);
    }
    const med = (c: 'bare' | 'conveyor', k: 'p50' | 'p99' | 'max'): number => median(results.map((r) => r[c][k]));
    const rows = (['p50', 'p99', 'max'] as const).map((k) => [k, round(med('bare', k), 2), round(med('conveyor', k), 2), round(med('conveyor', k) / med('bare', k), 2)]);
    // lower is better: "met" when conveyor p99 <= 2 × bare p99
    const p99 = med('conveyor', 'p99');
    const goal = 2 * med('bare', 'p99');
    if (Number.isFinite(p99) && Number.isFinite(goal)) targets.push({ name: 'latency: conveyor p99 <= 2 × bare p99 (ms)', value: round(p99, 2), target: round(goal, 2), met: p99 <= goal });
    const perRun = results.map((r) => round(r.conveyor.p99 / r.bare.p99, 3));
    tables.push(`latency: ${args.rate} msgs/s for ${args.durationS} s, both at once, prefetch 8, first ${args.warmupS} s left out; median of ${results.length} run(s), ms\n` +
      `${table(['', 'bare', 'conveyor', 'conveyor / bare'], rows)}\np99 conveyor / bare per run: ${perRun.join(', ')}`);
    out.latency = {
      rate: args.rate, duration_s: args.durationS, warmup_s: args.warmupS, prefetch: 8,
      bare_ms: { p50: round(med('bare', 'p50'), 3), p99: round(med('bare', 'p99'), 3), max: round(med('bare', 'max'), 3) },
      conveyor_ms: { p50: round(med('conveyor', 'p50'), 3), p99: round(med('conveyor', 'p99'), 3), max: round(med('conveyor', 'max'), 3) },
      p99_ratio: round(p99 / med('bare', 'p99'), 3),
      p99_ratios_per_run: perRun,
      runs: results.map((r) => ({ run: r.run, sent: r.sent, bare: roundAll(r.bare), conveyor: roundAll(r.conveyor) })),
    };
  }

  console.log(`\n${tables.join('\n\n')}\n`);
  for (const t of targets) {
    const lower = t.name.includes('<=');
    console.log(`${t.name}: ${t.value.toLocaleString('en-US')} ${t.met ? 'meets' : 'MISSES'} the target (${lower ? '<=' : '>='} ${t.target.toLocaleString('en-US')})`);
  }
  console.log('');
  emit('rabbitmq', {
    bench: 'rabbitmq',
    scenarios: args.scenarios,
    message_bytes: args.size,
    ...out,
    targets,
    load_average: loadAverage(),
    ...environment(probe),
    memory_budget_mb: probe.memory.budgetMb,
  });
}

function roundAll<T extends object>(o: T): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v as number, 3)]));
}

runMain(async () => {
  const args = parse();
  if (args.child) await latencyChild(args.child, args.queue!);
  else await main(args);
});

/**
 * One memory budget (`memory.budgetMb`) for the whole process, and everything derived from it: the Kafka
 * consumers' prefetch, the lanes' limits, the RabbitMQ prefetch, each worker thread's V8 heap limits (piscina
 * `resourceLimits`) and the main thread's V8 heap flags. Pure: the same configuration, handler counts and core
 * count always give the same plan. docs/configuration.md ("Memory budget") explains it for operators.
 *
 * For a budget of B MiB, T worker threads and C consumers (one per Kafka handler, one per queue handler):
 *
 *   rest       = B − BASE_MB − T × WORKER_BASE_MB              (what the process costs at rest is measured)
 *   workers    = WORKER_SHARE × rest, evenly: each worker's heap limit (WORKER_YOUNG_MB young + the rest old)
 *   messages   = MESSAGE_SHARE × rest, evenly over the C consumers; a Kafka consumer's share S goes
 *                  PREFETCH_SHARE × S / PREFETCH_COST  to librdkafka's queue (queued.max.messages.kbytes; the
 *                                                      fetch sizes follow it): each queued byte costs ~8 in RSS
 *                  the rest                            to its lanes, divided among the partitions it owns
 *                                                      (re-divided on every rebalance); each message is charged
 *                                                      at least MESSAGE_COST bytes
 *                a queue consumer's share bounds its prefetch at QUEUE_MESSAGE_COST a message
 *   headroom   = the remaining 1 − WORKER_SHARE − MESSAGE_SHARE of rest: garbage not yet collected, allocator
 *                free lists, native buffers. Nothing is derived from it; it is why the process stays below B.
 *   main heap  = --max-semi-space-size=MAIN_SEMI_SPACE_MB
 *                --max-old-space-size=(MAIN_OLD_BASE_MB + 2 × MESSAGE_SHARE × (B − BASE_MB)):
 *                V8 otherwise sizes the main thread's young generation from the machine's memory (128 MB of
 *                garbage and the buffers it holds on a 23 GB machine). Node takes these only at start.
 *
 * Explicit settings are ceilings: `kafka.maxBatchSize`, `lanes.maxMessages`, `lanes.maxBytes` and a queue
 * handler's `prefetch` still apply, and the budget can only lower them, never raise them. `memory.budgetMb = 0`
 * turns the budget off: the client's own prefetch defaults, the configured lane limits, unbounded worker heaps.
 */
import type { ResourceLimits } from 'node:worker_threads';
import type { ConveyorConfig } from './schema.ts';

const MiB = 1024 * 1024;

/** Main thread at rest: Node, the runtime's modules, the Kafka client and its threads, amqplib, metrics (measured: ~70-90 MB). */
export const BASE_MB = 96;
/** A worker thread at rest: its isolate, Node's bootstrap and the handler modules (measured: ~10-15 MB). */
export const WORKER_BASE_MB = 16;
/** Part of what is left after the fixed costs that goes to the worker threads' heaps. */
export const WORKER_SHARE = 0.3;
/**
 * Part that goes to messages held in memory (prefetch, lanes). The rest (1 − WORKER_SHARE − MESSAGE_SHARE) is
 * headroom nothing is derived from: garbage not yet collected, the allocator's free lists, native buffers.
 */
export const MESSAGE_SHARE = 0.1;
/** A worker's young generation (semi-spaces), out of its heap limit; smaller makes every handler slower. */
export const WORKER_YOUNG_MB = 4;
/** The smallest old generation a worker gets: below it, handlers fail for want of heap, not because they run away. */
export const MIN_WORKER_OLD_MB = 16;
/** Part of a Kafka consumer's share that bounds the client's prefetch (librdkafka queue; its JS cache mirrors it). */
export const PREFETCH_SHARE = 0.25;
/** Every queued message is charged at least this much (its objects and buffers cost memory beyond its bytes). */
export const MESSAGE_COST = 1024;
/** What a RabbitMQ delivery held in memory is assumed to cost, for the prefetch bound (the broker counts messages, not bytes). */
export const QUEUE_MESSAGE_COST = 16 * 1024;
/**
 * RSS per byte of payload librdkafka is allowed to queue (measured, bare client, 512 B messages: raising
 * queued.max.messages.kbytes and fetch.max.bytes by 1 MiB raised the peak RSS by ~8-10 MiB: message headers,
 * fetch buffers kept alive by the messages in them, the JS layer's copies).
 */
export const PREFETCH_COST = 8;
/** The smallest prefetch (KiB): below it the consumer waits on the broker (measured: 1 MiB still reaches the bare client's rate). */
const MIN_PREFETCH_KB = 1024;
/** The main thread's young generation (semi-space, MiB): V8's default lets ~100 MB of garbage (and the message buffers it holds) pile up. */
export const MAIN_SEMI_SPACE_MB = 8;
/** The main thread's old generation beyond the messages it holds: the runtime, the clients, metrics. */
export const MAIN_OLD_BASE_MB = 64;
/** A partition's lane never gets less than this, however many partitions share it. */
const MIN_LANE_BYTES = 256 * 1024;

/** How many consumers share the message part of the budget. */
export interface Consumers {
  /** Kafka consumers: one per Kafka handler (each handler is its own consumer group). */
  readonly kafkaConsumers: number;
  /** RabbitMQ queue handlers. */
  readonly queueConsumers: number;
}

export interface LaneLimitsPlan {
  readonly maxMessages: number;
  readonly maxBytes: number;
  readonly resumeRatio: number;
}

export interface MemoryPlan {
  /** 0: no budget. */
  readonly budgetMb: number;
  readonly threads: number;
  /** piscina/Worker `resourceLimits` for every worker thread; undefined without a budget. */
  readonly workerResourceLimits: ResourceLimits | undefined;
  /**
   * V8 flags for the main thread's heap. Node takes them only at start (NODE_OPTIONS or the command line): the
   * image and the manifests pass them, and the runtime warns when the running heap is larger than they allow.
   */
  readonly mainThreadFlags: readonly string[];
  /** The main thread's heap limit those flags give (old + young generation), MiB; undefined without a budget. */
  readonly mainHeapLimitMb: number | undefined;
  /** librdkafka and JS-layer properties for each Kafka consumer (spread into the consumer's configuration). */
  readonly kafkaConsumerProperties: Readonly<Record<string, number>>;
  /** Limits of each lane of a Kafka consumer that owns `partitions` partitions. */
  laneLimits(partitions: number): LaneLimitsPlan;
  /** basic.qos prefetch for a queue handler that declared `declared` (at least its `concurrency`). */
  queuePrefetch(declared: number, concurrency?: number): number;
  /** The derived numbers, for logs and `conveyor check`. */
  readonly summary: Readonly<Record<string, number>>;
}

/**
 * Worker threads the pool runs: `pool.size`; when 0, one per core, but no more than the budget gives a heap of
 * at least its minimum (a 64-core node must not make the default budget unusable).
 */
export function poolThreads(config: Pick<ConveyorConfig, 'pool' | 'memory'>, cores: number): number {
  if (config.pool.size > 0) return config.pool.size;
  let threads = Math.max(1, cores);
  if (config.memory.budgetMb > 0) while (threads > 1 && minimumBudgetMb(threads) > config.memory.budgetMb) threads -= 1;
  return threads;
}

/** The smallest budget that gives `threads` workers their minimum heap and leaves as much for the messages. */
export function minimumBudgetMb(threads: number): number {
  const perWorker = MIN_WORKER_OLD_MB + WORKER_YOUNG_MB;
  const workers = threads * perWorker;
  const rest = workers / WORKER_SHARE;
  return Math.ceil(BASE_MB + threads * WORKER_BASE_MB + rest);
}

/**
 * The main thread's V8 heap flags for a budget: the old generation holds the messages (the client's copies, the
 * lanes) and their garbage, twice the message share (taken before the workers' part, so the flags depend on the
 * budget alone and one NODE_OPTIONS fits any pool size).
 */
export function mainThreadFlagsFor(budgetMb: number): string[] {
  if (budgetMb === 0) return [];
  const oldMb = MAIN_OLD_BASE_MB + 2 * Math.ceil(MESSAGE_SHARE * (budgetMb - BASE_MB));
  return [`--max-semi-space-size=${MAIN_SEMI_SPACE_MB}`, `--max-old-space-size=${oldMb}`];
}

/** Undefined when the budget fits the pool, else why not (for the configuration error). */
export function budgetProblem(budgetMb: number, threads: number): string | undefined {
  if (budgetMb === 0) return undefined;
  const min = minimumBudgetMb(threads);
  if (budgetMb >= min) return undefined;
  return `must be 0 (no budget) or at least ${min} for ${threads} worker thread${threads === 1 ? '' : 's'} (pool.size; ${BASE_MB} MB for the process, ${WORKER_BASE_MB} MB and a heap of at least ${MIN_WORKER_OLD_MB + WORKER_YOUNG_MB} MB per worker, with the messages' share and headroom); got ${budgetMb}`;
}

type BudgetConfig = Pick<ConveyorConfig, 'memory' | 'kafka' | 'lanes' | 'pool'>;

/**
 * The plan for `config` with `consumers` consumers on `cores` cores (only used when `pool.size` is 0).
 * Throws a RangeError when the budget is too small for the pool (loadConfig reports that as a configuration error first).
 */
export function deriveMemoryPlan(config: BudgetConfig, consumers: Consumers, cores = 1): MemoryPlan {
  const budgetMb = config.memory.budgetMb;
  const threads = poolThreads(config, cores);
  const maxBatchSize = config.kafka.maxBatchSize;
  const configuredLanes = config.lanes;
  if (budgetMb === 0) {
    return {
      budgetMb,
      threads,
      workerResourceLimits: undefined,
      mainThreadFlags: [],
      mainHeapLimitMb: undefined,
      kafkaConsumerProperties: { 'js.consumer.max.batch.size': maxBatchSize },
      laneLimits: () => ({ ...configuredLanes }),
      queuePrefetch: (declared) => declared,
      summary: { budgetMb, threads },
    };
  }
  const problem = budgetProblem(budgetMb, threads);
  if (problem !== undefined) throw new RangeError(`memory.budgetMb ${problem}`);

  const rest = budgetMb - BASE_MB - threads * WORKER_BASE_MB;
  const workerMb = Math.floor((WORKER_SHARE * rest) / threads);
  const workerResourceLimits: ResourceLimits = {
    maxYoungGenerationSizeMb: WORKER_YOUNG_MB,
    maxOldGenerationSizeMb: workerMb - WORKER_YOUNG_MB,
  };

  const sharers = Math.max(1, consumers.kafkaConsumers + consumers.queueConsumers);
  const consumerBytes = Math.floor(((MESSAGE_SHARE * rest) / sharers) * MiB);

  // Kafka: what librdkafka queues costs PREFETCH_COST times its payload in RSS
  const prefetchBytes = Math.floor((PREFETCH_SHARE * consumerBytes) / PREFETCH_COST);
  const prefetchKb = Math.max(MIN_PREFETCH_KB, Math.floor(prefetchBytes / 1024));
  const fetchMaxBytes = Math.min(50 * MiB, prefetchKb * 1024);
  const partitionFetchBytes = Math.min(MiB, Math.max(64 * 1024, Math.floor(fetchMaxBytes / 8)));
  const mainThreadFlags = mainThreadFlagsFor(budgetMb);
  const mainOldMb = MAIN_OLD_BASE_MB + 2 * Math.ceil(MESSAGE_SHARE * (budgetMb - BASE_MB));
  const batchSize = Math.max(1, Math.min(maxBatchSize, Math.floor(prefetchKb * 1024 / MESSAGE_COST)));
  const kafkaConsumerProperties: Record<string, number> = {
    'queued.max.messages.kbytes': prefetchKb,
    // librdkafka keeps up to queued.min.messages per partition (default 100,000) until the byte bound: never more
    // than the byte bound holds at MESSAGE_COST
    'queued.min.messages': Math.max(1000, Math.floor((prefetchKb * 1024) / MESSAGE_COST)),
    'fetch.max.bytes': fetchMaxBytes,
    'max.partition.fetch.bytes': partitionFetchBytes,
    // with a small queue the thresholds are reached often: back off a few ms, not librdkafka's default second (20 ms
    // still cost ~40% of the throughput benchmark's rate; docs/benchmarks.md, memory)
    'fetch.queue.backoff.ms': 5,
    'js.consumer.max.batch.size': batchSize,
    // the JS layer caches what its workers consume in this many ms (default 1500): keep it to a fraction of a second
    'js.consumer.max.cache.size.per.worker.ms': 300,
  };

  const laneBytes = Math.max(0, consumerBytes - PREFETCH_COST * prefetchKb * 1024);
  const laneLimits = (partitions: number): LaneLimitsPlan => {
    const perLane = Math.max(MIN_LANE_BYTES, Math.floor(laneBytes / Math.max(1, partitions)));
    return {
      maxBytes: Math.min(configuredLanes.maxBytes, perLane),
      maxMessages: Math.max(1, Math.min(configuredLanes.maxMessages, Math.floor(perLane / MESSAGE_COST))),
      resumeRatio: configuredLanes.resumeRatio,
    };
  };

  const queueCap = Math.max(1, Math.floor(consumerBytes / QUEUE_MESSAGE_COST));
  const queuePrefetch = (declared: number, concurrency = 1): number => Math.min(65_535, Math.max(concurrency, Math.min(declared, queueCap)));

  return {
    budgetMb,
    threads,
    workerResourceLimits,
    mainThreadFlags,
    mainHeapLimitMb: mainOldMb + 3 * MAIN_SEMI_SPACE_MB,
    kafkaConsumerProperties,
    laneLimits,
    queuePrefetch,
    summary: {
      budgetMb,
      threads,
      workerHeapMb: workerMb,
      consumerShareMb: Math.round(consumerBytes / MiB),
      queuedMaxMessagesKbytes: prefetchKb,
      fetchMaxBytes,
      maxPartitionFetchBytes: partitionFetchBytes,
      maxBatchSize: batchSize,
      laneBytesPerConsumer: laneBytes,
      queuePrefetchCap: queueCap,
    },
  };
}

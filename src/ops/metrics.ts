/**
 * Conveyor's Prometheus metrics (docs/observability.md): one prom-client Registry per Runtime, holding the
 * process and Node.js default metrics and Conveyor's own. Counters and the duration histogram are fed by the
 * runtime events (instrumentation.ts) as they happen; gauges of current state (lanes, pool, circuits, brokers)
 * are read from the runtime when Prometheus scrapes (`collect()`), so nothing is kept up to date in between.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Instrumentation, LagLevel, RuntimeEvents } from '../lanes/instrumentation.ts';
import { CIRCUIT_STATE_VALUE, type CircuitStateName } from '../publish/circuit-breaker.ts';

/** Seconds; from a no-op handler (well under 1 ms) to the longest sensible timeout. */
export const HANDLER_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

/** Prometheus value of a lag level. */
export const LAG_LEVEL_VALUE: Readonly<Record<LagLevel, number>> = { ok: 0, info: 1, warning: 2, critical: 3 };

/** What the gauges read at scrape time; each function is called once per scrape and must not throw. */
export interface MetricsReadings {
  /** Messages each lane holds, not yet acknowledged (queued plus the batch with a worker). */
  lanes(): Iterable<{ readonly handler: string; readonly topic: string; readonly partition: number; readonly depth: number }>;
  /** The worker pool; undefined before start. */
  pool(): {
    readonly size: number;
    readonly threads: number;
    readonly busy: number;
    readonly inFlight: ReadonlyMap<string, number>;
    readonly replaced: { readonly crash: number; readonly timeout: number };
    /** Workers that died after their task finished, by handler and kind (absent: none). */
    readonly lateFailures?: Iterable<{ readonly handler: string; readonly kind: WorkerLateFailureKind; readonly count: number }>;
  } | undefined;
  circuits(): Iterable<{ readonly broker: string; readonly state: CircuitStateName }>;
  /** Brokers the handlers consume from; `up` undefined while not known yet (no series then). */
  brokers(): Iterable<{ readonly broker: string; readonly up: boolean | undefined }>;
  /** Partitions each Kafka consumer group of this member owns. */
  assignments(): Iterable<{ readonly group: string; readonly partitions: number }>;
}

/** How a worker died after its task finished: conveyor_worker_late_failures_total's `kind`. */
export type WorkerLateFailureKind = 'uncaught_exception' | 'unhandled_rejection' | 'exit';
const WORKER_LATE_FAILURE_KINDS: readonly WorkerLateFailureKind[] = ['uncaught_exception', 'unhandled_rejection', 'exit'];

/** A handler and the topics (Kafka) or queue (RabbitMQ) it consumes, to start its counters at zero. */
export interface MetricsHandler {
  readonly name: string;
  readonly topics: readonly string[];
  /** Kafka handlers: the consumer group, whose lag level is exported (0, ok) from the start. */
  readonly group?: string;
}

export interface ConveyorMetricsOptions {
  readonly handlers: readonly MetricsHandler[];
  readonly readings: MetricsReadings;
  /** process_* and nodejs_* metrics (default true). */
  readonly defaultMetrics?: boolean;
}

type Listeners = { [E in keyof RuntimeEvents]?: (...args: RuntimeEvents[E]) => void };

let processMetrics: Registry | undefined;

/**
 * prom-client's default metrics, once per process: they describe the process, and their collectors (an event-loop
 * delay monitor, a GC observer) stay installed for good, so a second Runtime in the same process shares them.
 */
function defaultMetrics(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

export class ConveyorMetrics {
  /** Everything /metrics shows: the default metrics and Conveyor's. */
  readonly registry: Registry;
  private readonly events: Instrumentation;
  private readonly listeners: Listeners;

  constructor(events: Instrumentation, options: ConveyorMetricsOptions) {
    this.events = events;
    const own = new Registry();
    const registers = [own];
    const { readings } = options;

    const messages = new Counter({
      name: 'conveyor_messages_total',
      help: 'Outcomes of handler attempts: ok (handled), retried (an attempt failed and will be retried), dead_lettered (given up, published to the dead-letter topic or queue).',
      labelNames: ['handler', 'topic', 'result'] as const,
      registers,
    });
    const duration = new Histogram({
      name: 'conveyor_handler_duration_seconds',
      help: 'Time handle() took for each message handled successfully, measured in the worker thread.',
      labelNames: ['handler', 'topic'] as const,
      buckets: [...HANDLER_DURATION_BUCKETS],
      registers,
    });
    const retries = new Counter({
      name: 'conveyor_retries_total',
      help: 'Failed attempts that will be retried, by error class (ReceiverError: the handler threw; RuntimeFailure: timeout, crashed worker, ...).',
      labelNames: ['handler', 'topic', 'error_class'] as const,
      registers,
    });
    const deadLetters = new Counter({
      name: 'conveyor_dead_letters_total',
      help: 'Messages published to their dead-letter topic or queue (confirmed by the broker), by error class and type.',
      labelNames: ['handler', 'topic', 'error_class', 'error_type'] as const,
      registers,
    });
    const deadLetterFailures = new Counter({
      name: 'conveyor_dead_letter_publish_failures_total',
      help: 'Dead-letter publishes that failed (the lane holds the message and tries again).',
      labelNames: ['handler', 'topic'] as const,
      registers,
    });
    const rebalances = new Counter({
      name: 'conveyor_rebalances_total',
      help: 'Rebalance callbacks of this member, by kind (assigned, revoked).',
      labelNames: ['group', 'kind'] as const,
      registers,
    });
    const committed = new Counter({
      name: 'conveyor_offsets_committed_total',
      help: 'Partition offsets committed (one per partition per commit).',
      labelNames: ['group'] as const,
      registers,
    });
    const commitFailures = new Counter({
      name: 'conveyor_offset_commit_failures_total',
      help: 'Commits that failed or were not answered within commit.timeoutMs (the next commit carries the newest watermark).',
      labelNames: ['group'] as const,
      registers,
    });
    const skipped = new Counter({
      name: 'conveyor_messages_skipped_total',
      help: 'Messages not handed to the handler, by reason: completed_before_restart (the commit metadata records them as completed by the partition\'s previous owner; docs/commit-metadata.md).',
      labelNames: ['handler', 'topic', 'reason'] as const,
      registers,
    });
    const metadataOverflows = new Counter({
      name: 'conveyor_offset_metadata_overflow_total',
      help: 'Partition commits whose completed-ahead offsets did not fit in commit.metadataMaxBytes: the watermark was committed without them.',
      labelNames: ['group'] as const,
      registers,
    });
    const lag = new Gauge({
      name: 'conveyor_consumer_lag',
      help: 'Messages between the committed offset and the end of the partition (lag monitor).',
      labelNames: ['group', 'topic', 'partition'] as const,
      registers,
    });
    const lagSeconds = new Gauge({
      name: 'conveyor_consumer_lag_seconds',
      help: 'Age of the oldest message of the partition not yet committed, in seconds (0 without lag).',
      labelNames: ['group', 'topic', 'partition'] as const,
      registers,
    });
    const lagLevel = new Gauge({
      name: 'conveyor_consumer_lag_level',
      help: 'Lag level of the consumer group: 0 ok, 1 info, 2 warning, 3 critical.',
      labelNames: ['group'] as const,
      registers,
    });

    new Gauge({
      name: 'conveyor_in_flight_messages',
      help: 'Messages handed to the worker pool and not yet finished (running or waiting for a thread).',
      labelNames: ['handler'] as const,
      registers,
      collect() {
        this.reset();
        const pool = readings.pool();
        for (const h of options.handlers) this.set({ handler: h.name }, pool?.inFlight.get(h.name) ?? 0);
      },
    });
    new Gauge({
      name: 'conveyor_lane_queue_depth',
      help: 'Messages a lane holds and has not acknowledged yet, including the batch with a worker (RabbitMQ: partition "-1", summed over the queue\'s lanes).',
      labelNames: ['handler', 'topic', 'partition'] as const,
      registers,
      collect() {
        this.reset();
        const depth = new Map<string, { handler: string; topic: string; partition: string; depth: number }>();
        for (const l of readings.lanes()) {
          const key = `${l.handler}\u0000${l.topic}\u0000${l.partition}`;
          const seen = depth.get(key);
          if (seen) seen.depth += l.depth;
          else depth.set(key, { handler: l.handler, topic: l.topic, partition: String(l.partition), depth: l.depth });
        }
        for (const { depth: n, ...labels } of depth.values()) this.set(labels, n);
      },
    });
    new Gauge({
      name: 'conveyor_pool_utilization',
      help: 'Busy worker threads / pool size, 0..1, at the moment of the scrape.',
      registers,
      collect() {
        const pool = readings.pool();
        this.set(pool && pool.size > 0 ? Math.min(pool.busy, pool.size) / pool.size : 0);
      },
    });
    new Gauge({
      name: 'conveyor_pool_threads',
      help: 'Worker threads alive in the pool.',
      registers,
      collect() {
        this.set(readings.pool()?.threads ?? 0);
      },
    });
    new Counter({
      name: 'conveyor_worker_replacements_total',
      help: 'Worker threads replaced, by reason: crash (died by itself), timeout (terminated: its handler did not return after timeoutMs).',
      labelNames: ['reason'] as const,
      registers,
      collect() {
        const pool = readings.pool();
        this.reset();
        this.inc({ reason: 'crash' }, pool?.replaced.crash ?? 0);
        this.inc({ reason: 'timeout' }, pool?.replaced.timeout ?? 0);
      },
    });
    new Counter({
      name: 'conveyor_worker_late_failures_total',
      help: 'Worker threads that died after their task finished, of what the handler left behind: uncaught_exception (a throw in a timer), unhandled_rejection, exit (process.exit). Logged with the handler file; the thread is replaced.',
      labelNames: ['handler', 'kind'] as const,
      registers,
      collect() {
        this.reset();
        // every handler from zero, so that rate() and increase() see the first one
        for (const h of options.handlers) for (const kind of WORKER_LATE_FAILURE_KINDS) this.inc({ handler: h.name, kind }, 0);
        for (const f of readings.pool()?.lateFailures ?? []) this.inc({ handler: f.handler, kind: f.kind }, f.count);
      },
    });
    new Gauge({
      name: 'conveyor_publish_circuit_state',
      help: 'Publish circuit breaker per broker: 0 closed, 1 half_open, 2 open.',
      labelNames: ['broker'] as const,
      registers,
      collect() {
        this.reset();
        for (const c of readings.circuits()) this.set({ broker: c.broker }, CIRCUIT_STATE_VALUE[c.state]);
      },
    });
    new Gauge({
      name: 'conveyor_broker_up',
      help: 'Whether a broker the handlers consume from is reachable (1) or not (0).',
      labelNames: ['broker'] as const,
      registers,
      collect() {
        this.reset();
        for (const b of readings.brokers()) if (b.up !== undefined) this.set({ broker: b.broker }, b.up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'conveyor_assigned_partitions',
      help: 'Partitions this member owns, per consumer group.',
      labelNames: ['group'] as const,
      registers,
      collect() {
        this.reset();
        const owned = new Map<string, number>();
        for (const a of readings.assignments()) owned.set(a.group, (owned.get(a.group) ?? 0) + a.partitions);
        for (const [group, partitions] of owned) this.set({ group }, partitions);
      },
    });

    // Every handler's outcomes start at 0, so that rate() and absent() work from the first scrape.
    for (const h of options.handlers) {
      if (h.group !== undefined) {
        lagLevel.set({ group: h.group }, LAG_LEVEL_VALUE.ok);
        committed.inc({ group: h.group }, 0);
        commitFailures.inc({ group: h.group }, 0);
        metadataOverflows.inc({ group: h.group }, 0);
      }
      for (const topic of h.topics) {
        for (const result of ['ok', 'retried', 'dead_lettered']) messages.inc({ handler: h.name, topic, result }, 0);
        if (h.group !== undefined) skipped.inc({ handler: h.name, topic, reason: 'completed_before_restart' }, 0);
        duration.zero({ handler: h.name, topic });
      }
    }

    // Labelled children cached per handler and topic: the 'messages.handled' listener runs for every batch.
    const handled = new Map<string, { ok: Counter.Internal; duration: Histogram.Internal<'handler' | 'topic'> }>();
    this.listeners = {
      'messages.handled': (e) => {
        const key = `${e.handler}\u0000${e.topic}`;
        let series = handled.get(key);
        if (!series) {
          series = { ok: messages.labels(e.handler, e.topic, 'ok'), duration: duration.labels(e.handler, e.topic) };
          handled.set(key, series);
        }
        series.ok.inc(e.count);
        const durations = e.durationsMs;
        if (durations && durations.length >= e.count) {
          for (let i = 0; i < e.count; i++) series.duration.observe(durations[i]! / 1000);
        } else {
          // no per-message times (a batch partly completed by a worker that died): the batch's mean for each
          const mean = e.durationMs / e.count / 1000;
          for (let i = 0; i < e.count; i++) series.duration.observe(mean);
        }
      },
      'message.retry': (e) => {
        messages.inc({ handler: e.handler, topic: e.topic, result: 'retried' });
        retries.inc({ handler: e.handler, topic: e.topic, error_class: e.errorClass });
      },
      'message.dead_lettered': (e) => {
        messages.inc({ handler: e.handler, topic: e.topic, result: 'dead_lettered' });
        deadLetters.inc({ handler: e.handler, topic: e.topic, error_class: e.errorClass, error_type: e.errorType });
      },
      'dead_letter.publish_failed': (e) => deadLetterFailures.inc({ handler: e.handler, topic: e.topic }),
      'offsets.committed': (e) => committed.inc({ group: e.group }, e.offsets.length),
      'offsets.commit_failed': (e) => commitFailures.inc({ group: e.group }),
      'offsets.metadata_overflow': (e) => metadataOverflows.inc({ group: e.group }),
      'messages.skipped': (e) => skipped.inc({ handler: e.handler, topic: e.topic, reason: e.reason }, e.count),
      'partitions.assigned': (e) => rebalances.inc({ group: e.group, kind: 'assigned' }),
      'partitions.revoked': (e) => rebalances.inc({ group: e.group, kind: 'revoked' }),
      'lag.sampled': (e) => {
        const labels = { group: e.group, topic: e.topic, partition: String(e.partition) };
        lag.set(labels, e.lag);
        lagSeconds.set(labels, e.lagSeconds);
      },
      'lag.level_changed': (e) => lagLevel.set({ group: e.group }, LAG_LEVEL_VALUE[e.level]),
    };
    for (const [event, listener] of Object.entries(this.listeners)) events.on(event as keyof RuntimeEvents, listener as never);
    this.registry = (options.defaultMetrics ?? true) ? Registry.merge([defaultMetrics(), own]) : own;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** Stops listening to the runtime's events. */
  close(): void {
    for (const [event, listener] of Object.entries(this.listeners)) this.events.off(event as keyof RuntimeEvents, listener as never);
  }
}

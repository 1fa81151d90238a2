/**
 * The composition root: configuration → handler discovery → one source per handler (a Kafka consumer group, or a
 * RabbitMQ queue consumer), a shared worker pool, the dead-letter and event publishers, and one RabbitMQ
 * connection when any handler or publish needs it. `Runtime.events` reports what happens (see instrumentation.ts).
 */
import { availableParallelism } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { deriveMemoryPlan, type MemoryPlan } from './config/memory-budget.ts';
import type { ConveyorConfig } from './config/schema.ts';
import { finishedWithin } from './failure/backoff.ts';
import { DeadLetterPublisher } from './failure/dead-letter.ts';
import { discoverHandlers, type HandlerSpec } from './handlers/discover.ts';
import { KafkaAdmin, kafkaAdminOptions } from './kafka/admin.ts';
import { createKafka, kafkaClientOptions } from './kafka/client.ts';
import { KafkaSource } from './kafka/kafka-source.ts';
import { readMaxMessageBytes } from './kafka/topic-limits.ts';
import { Instrumentation } from './lanes/instrumentation.ts';
import { eventBusHealth, readiness, type EventBusHealth, type HealthSnapshot, type Readiness } from './ops/health.ts';
import { KAFKA_PROBE_DEFAULTS, KafkaProbe } from './ops/kafka-probe.ts';
import { LagMonitor } from './ops/lag-monitor.ts';
import { createLogger, type Logger } from './ops/logger.ts';
import { ConveyorMetrics, type MetricsReadings } from './ops/metrics.ts';
import { OpsServer } from './ops/ops-server.ts';
import { WorkerPool } from './pool/worker-pool.ts';
import { KafkaPublisher } from './publish/kafka-publisher.ts';
import { RabbitPublisher } from './publish/rabbitmq-publisher.ts';
import { connectAmqp, type AmqpConnectionManager } from './rabbitmq/connection.ts';
import { RabbitSource } from './rabbitmq/rabbit-source.ts';

/** How long start-up waits for the worker threads to import the handlers before it goes on regardless. */
const WARM_UP_LIMIT_MS = 30_000;

export interface RuntimeStats {
  handled: number;
  retries: number;
  deadLettered: number;
  deadLetterFailures: number;
  commits: number;
  rebalances: number;
}

export class Runtime {
  readonly events = new Instrumentation();
  readonly config: ConveyorConfig;
  readonly handlers: readonly HandlerSpec[];
  readonly logger: Logger;
  /**
   * Settles with the reason when a Kafka client failed for good (librdkafka's fatal error: the driver would retry
   * without ever consuming again); the runner then stops and exits 1, so that the process is started afresh.
   */
  readonly failed: Promise<string>;
  private fail: (reason: string) => void = () => {};
  readonly stats: RuntimeStats = { handled: 0, retries: 0, deadLettered: 0, deadLetterFailures: 0, commits: 0, rebalances: 0 };
  private pool: WorkerPool | undefined;
  private deadLetters: DeadLetterPublisher | undefined;
  private publisher: KafkaPublisher | undefined;
  private rabbitPublisher: RabbitPublisher | undefined;
  private amqp: AmqpConnectionManager | undefined;
  private sources: Array<KafkaSource | RabbitSource> = [];
  private stopping: Promise<void> | undefined;
  private started = false;
  private metricsRegistry: ConveyorMetrics | undefined;
  private opsServer: OpsServer | undefined;
  private kafkaProbe: KafkaProbe | undefined;
  private lagMonitor: LagMonitor | undefined;
  /** Partition counts, end and committed offsets for the Kafka sources' start positions (start-position.ts). */
  private readonly topicInspector: KafkaAdmin;
  /** Where the ops server listens, once it does (ops.enabled). */
  opsAddress: { readonly host: string; readonly port: number } | undefined;

  private constructor(config: ConveyorConfig, handlers: readonly HandlerSpec[], logger: Logger) {
    this.config = config;
    this.failed = new Promise<string>((resolve) => (this.fail = resolve));
    this.handlers = handlers;
    this.logger = logger;
    this.topicInspector = new KafkaAdmin(kafkaAdminOptions(config, `${config.app.name}-topics`, config.commit.timeoutMs));
    this.events.on('messages.handled', (e) => (this.stats.handled += e.count));
    this.events.on('message.retry', () => (this.stats.retries += 1));
    this.events.on('message.dead_lettered', () => (this.stats.deadLettered += 1));
    this.events.on('dead_letter.publish_failed', () => (this.stats.deadLetterFailures += 1));
    this.events.on('offsets.committed', () => (this.stats.commits += 1));
    this.events.on('partitions.revoked', () => (this.stats.rebalances += 1));
  }

  /** Discovers and checks the handler files; throws HandlerDiscoveryError before anything connects. */
  static async create(config: ConveyorConfig, logger: Logger = createLogger('conveyor', config.log.level)): Promise<Runtime> {
    const handlers = await discoverHandlers(config.handlers.directory, config);
    return new Runtime(config, handlers, logger);
  }

  /** Conveyor's Prometheus metrics (docs/observability.md); created by start(). */
  get metrics(): ConveyorMetrics | undefined {
    return this.metricsRegistry;
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    // metrics and the ops server before anything connects: liveness answers (and readiness says why not) during start-up
    this.metricsRegistry = new ConveyorMetrics(this.events, {
      handlers: this.handlers.map((h) => (h.queue ? { name: h.name, topics: [h.queue.name] } : { name: h.name, topics: [...h.topics], group: h.group })),
      readings: this.metricsReadings(),
    });
    if (config.ops.enabled) {
      const ops = new OpsServer({
        host: config.ops.host,
        port: config.ops.port,
        logger,
        endpoints: {
          metrics: async () => ({ contentType: this.metricsRegistry!.contentType, body: await this.metricsRegistry!.metrics() }),
          readiness: () => this.readiness(),
          eventBus: () => this.eventBusHealth(),
        },
      });
      this.opsServer = ops;
      this.opsAddress = await ops.start();
      if (this.stopping) return;
      const kafkaTopics = [...new Set(this.handlers.filter((h) => h.broker === 'kafka').flatMap((h) => h.topics))];
      if (kafkaTopics.length > 0) {
        // a client of its own, without the driver's log lines: the probe logs each change of reachability once
        const probeAdmin = new KafkaAdmin(kafkaAdminOptions(config, `${config.app.name}-health`, KAFKA_PROBE_DEFAULTS.timeoutMs));
        this.kafkaProbe = new KafkaProbe(probeAdmin, { topics: kafkaTopics, ...KAFKA_PROBE_DEFAULTS, logger });
        this.kafkaProbe.start();
      }
    }
    // handlers' ctx.log in the worker threads logs at the configured level (workers copy the environment at start)
    process.env.LOG_LEVEL = config.log.level;
    const memory = this.memoryPlan();
    logger.info({ memory: memory.summary, nodeFlags: memory.mainThreadFlags }, 'memory budget');
    const heapLimitMb = getHeapStatistics().heap_size_limit / 1024 / 1024;
    if (memory.mainHeapLimitMb !== undefined && heapLimitMb > 1.5 * memory.mainHeapLimitMb) {
      // V8 sizes the main thread's heap from the machine's memory unless told at start; it cannot be changed later
      logger.warn(
        { heapLimitMb: Math.round(heapLimitMb), budgetMb: memory.budgetMb, nodeFlags: memory.mainThreadFlags },
        `the main thread's heap is not bounded by memory.budgetMb: start node with NODE_OPTIONS="${memory.mainThreadFlags.join(' ')}" (docs/configuration.md, "Memory budget")`,
      );
    }
    this.pool = new WorkerPool({
      size: memory.threads,
      tasksPerThread: config.pool.tasksPerThread,
      // imported by every worker before its first task: ready means warm
      handlerUrls: this.handlers.map((h) => h.url),
      timeoutGraceMs: config.pool.timeoutGraceMs,
      resourceLimits: memory.workerResourceLimits,
      // its message was acknowledged already: nothing to retry, but the handler has a bug to fix
      onLateFailure: ({ handler, file, kind, error, exitCode }) =>
        logger.error({ handler, file, kind, ...(error ? { err: error } : {}), ...(exitCode !== undefined ? { exitCode } : {}) }, 'worker thread died after its task finished'),
    });
    const kafka = createKafka({
      ...kafkaClientOptions(config, `${config.app.name}${config.kafka.instanceId ? `-${config.kafka.instanceId}` : ''}`, logger),
      onFatal: (message) => this.fail(message),
    });
    // bounded by publish.timeoutMs like every publish; sized to what each dead-letter topic accepts
    this.deadLetters = new DeadLetterPublisher(kafka, {
      timeoutMs: config.publish.timeoutMs,
      topicLimit: (topic) => readMaxMessageBytes(config, topic, config.publish.timeoutMs),
    });
    this.publisher = new KafkaPublisher(config, { logger });
    // one connection for the queue consumers and ctx.publish to RabbitMQ; without queue handlers the publisher
    // opens its own on first use
    if (this.handlers.some((h) => h.broker === 'rabbitmq')) {
      this.amqp = connectAmqp({
        url: config.rabbitmq.url,
        heartbeatSeconds: config.rabbitmq.heartbeatSeconds,
        caFile: config.rabbitmq.caFile,
        name: `${config.app.name}-consumer`,
        logger,
      });
    }
    this.rabbitPublisher = new RabbitPublisher(config, { logger, ...(this.amqp ? { connection: this.amqp } : {}) });
    const publishers = { kafka: this.publisher, rabbitmq: this.rabbitPublisher };
    // the consumers connect, join and declare meanwhile; they take their first messages once it resolved
    const workersWarm = this.warmWorkers();
    this.sources = this.handlers.map((spec) =>
      spec.broker === 'rabbitmq'
        ? new RabbitSource(spec, config, { connection: this.amqp!, pool: this.pool!, publishers, events: this.events, logger, memory, workersWarm })
        : new KafkaSource(spec, config, { kafka, pool: this.pool!, deadLetters: this.deadLetters!, publishers, events: this.events, logger, topics: this.topicInspector, memory, workersWarm }),
    );
    logger.info(
      {
        handlers: this.handlers.map((h) =>
          h.queue ? { name: h.name, queue: h.queue.name, exchange: h.queue.exchange, file: h.file } : { name: h.name, topics: h.topics, group: h.group, file: h.file },
        ),
        poolSize: this.pool.size,
      },
      'starting',
    );
    // queues first: their exchanges and bindings exist before any handler can publish to them
    await Promise.all(this.sources.filter((s) => s instanceof RabbitSource).map((s) => s.start()));
    if (this.stopping) return;
    await Promise.all(this.sources.filter((s) => s instanceof KafkaSource).map((s) => s.start()));
    if (this.stopping) return; // stopped during start-up
    await workersWarm; // ready means warm
    if (this.stopping) return;
    const lagGroups = this.handlers.filter((h) => h.broker === 'kafka').map((h) => ({ group: h.group, topics: h.topics }));
    if (lagGroups.length > 0) {
      this.lagMonitor = new LagMonitor({ config, groups: lagGroups, events: this.events, logger, reportsFor: (group) => this.leads(group) });
      this.lagMonitor.start();
    }
    this.started = true;
    logger.info('running');
  }

  /**
   * Resolves once every worker thread imported every handler module, so the first messages do not pay for the
   * imports (which took 270-470 ms a message for the first ~800 on a fresh start) and readiness means warm. The
   * sources take their first messages after it; they connect meanwhile. Bounded: a worker that cannot warm (it keeps
   * dying) must not keep the runner from starting; its tasks report why. Never rejects.
   */
  private async warmWorkers(): Promise<void> {
    const pool = this.pool!;
    const started = performance.now();
    const warm = await finishedWithin(pool.warm(), WARM_UP_LIMIT_MS);
    if (warm) this.logger.debug({ threads: pool.size, ms: Math.round(performance.now() - started) }, 'worker threads imported the handlers');
    else this.logger.warn({ threads: pool.size, warmed: pool.warmed, limitMs: WARM_UP_LIMIT_MS }, 'not every worker thread imported the handlers in time; starting anyway');
  }

  /** What the memory budget gives each part: one consumer per Kafka handler, one per queue handler. */
  memoryPlan(): MemoryPlan {
    return deriveMemoryPlan(
      this.config,
      { kafkaConsumers: this.handlers.filter((h) => h.broker === 'kafka').length, queueConsumers: this.handlers.filter((h) => h.broker === 'rabbitmq').length },
      availableParallelism(),
    );
  }

  /** Graceful stop within `deadlineMs`: stop fetching, drain in-flight batches, commit, disconnect. Idempotent. */
  stop(deadlineMs: number = this.config.shutdown.deadlineMs): Promise<void> {
    this.stopping ??= (async () => {
      const started = Date.now();
      await this.lagMonitor?.stop();
      await Promise.all(this.sources.map((s) => s.stop(deadlineMs)));
      await this.deadLetters?.close();
      await this.publisher?.close();
      await this.rabbitPublisher?.close();
      await this.amqp?.close().catch(() => {});
      await this.pool?.close();
      await this.kafkaProbe?.stop();
      await this.topicInspector.close();
      // last: liveness and metrics answer until the very end
      this.metricsRegistry?.close();
      await this.opsServer?.stop();
      this.logger.info({ ...this.stats, stopMs: Date.now() - started }, 'stopped');
    })();
    return this.stopping;
  }

  /**
   * Whether this member speaks for a consumer group (lag webhooks): it owns partition 0 of the group's first topic.
   * Every member measures the same lag; one webhook call per change is enough.
   */
  private leads(group: string): boolean {
    return this.sources.some(
      (s) => s instanceof KafkaSource && s.spec.group === group && s.assignment().some((tp) => tp.topic === s.spec.topics[0] && tp.partition === 0),
    );
  }

  /** What the health decisions need, now (src/ops/health.ts). */
  health(): HealthSnapshot {
    const kafkaSources = this.sources.filter((s) => s instanceof KafkaSource);
    const rabbitSources = this.sources.filter((s) => s instanceof RabbitSource);
    const kafkaHandlers = this.handlers.some((h) => h.broker === 'kafka');
    const rabbitHandlers = this.handlers.some((h) => h.broker === 'rabbitmq');
    const amqpUp = this.amqp?.isConnected();
    return {
      started: this.started,
      stopping: this.stopping !== undefined,
      ...(kafkaHandlers
        ? {
            kafka: {
              ...(this.kafkaProbe?.state ?? { up: undefined }),
              sources: kafkaSources.map((s) => ({ handler: s.spec.name, group: s.spec.group, topics: s.spec.topics, ...s.status() })),
            },
          }
        : {}),
      ...(rabbitHandlers
        ? {
            rabbitmq: {
              up: amqpUp,
              ...(amqpUp === false ? { reason: 'the connection is down; reconnecting' } : {}),
              sources: rabbitSources.map((s) => ({ handler: s.spec.name, queue: s.spec.queue!.name, consuming: s.consuming })),
            },
          }
        : {}),
      circuits: this.circuits(),
    };
  }

  /** The publish circuit breakers' states. */
  private circuits(): HealthSnapshot['circuits'] {
    return { kafka: this.publisher?.circuitState ?? 'closed', rabbitmq: this.rabbitPublisher?.circuitState ?? 'closed' };
  }

  /** /health/ready: started, every consumer connected and assigned (Kafka) or set up (RabbitMQ), brokers reachable. */
  readiness(): Readiness {
    return readiness(this.health());
  }

  /** /health/event-bus: seed 001's health_check() fields. */
  eventBusHealth(): EventBusHealth {
    const { kafka } = this.config;
    return eventBusHealth(this.health(), {
      environment: kafka.environment,
      group: kafka.group,
      bootstrapServers: kafka.bootstrapServers,
      subscriberCount: this.handlers.length,
      topicCount: new Set(this.handlers.flatMap((h) => (h.queue ? [`queue:${h.queue.name}`] : h.topics.map((t) => `topic:${t}`)))).size,
    });
  }

  private metricsReadings(): MetricsReadings {
    return {
      lanes: () =>
        this.sources.flatMap((s) => s.laneDepths().map((l) => ({ handler: s.spec.name, ...l }))),
      pool: () => {
        const pool = this.pool;
        if (!pool) return undefined;
        return { size: pool.size, threads: pool.threads, busy: pool.busy, inFlight: pool.inFlight(), replaced: { crash: pool.crashed, timeout: pool.terminated }, lateFailures: pool.lateFailures() };
      },
      circuits: () => {
        const { kafka, rabbitmq } = this.circuits();
        return [{ broker: 'kafka', state: kafka }, { broker: 'rabbitmq', state: rabbitmq }];
      },
      brokers: () => {
        const { kafka, rabbitmq } = this.health();
        return [...(kafka ? [{ broker: 'kafka', up: kafka.up }] : []), ...(rabbitmq ? [{ broker: 'rabbitmq', up: rabbitmq.up }] : [])];
      },
      assignments: () => this.sources.flatMap((s) => (s instanceof KafkaSource ? [{ group: s.spec.group, partitions: s.status().partitions }] : [])),
    };
  }

  assignment(): Array<{ group: string; topic: string; partition: number }> {
    return this.sources.flatMap((s) => (s instanceof KafkaSource ? s.assignment().map((tp) => ({ group: s.spec.group, ...tp })) : []));
  }
}

/**
 * The composition root: configuration → handler discovery → one source per handler (a Kafka consumer group, or a
 * RabbitMQ queue consumer), a shared worker pool, the dead-letter and event publishers, and one RabbitMQ
 * connection when any handler or publish needs it. `Runtime.events` reports what happens (see instrumentation.ts).
 */
import type { ConveyorConfig } from './config/schema.ts';
import { DeadLetterPublisher } from './failure/dead-letter.ts';
import { discoverHandlers, type HandlerSpec } from './handlers/discover.ts';
import { createKafka, kafkaClientOptions } from './kafka/client.ts';
import { KafkaSource } from './kafka/kafka-source.ts';
import { Instrumentation } from './lanes/instrumentation.ts';
import { createLogger, type Logger } from './ops/logger.ts';
import { WorkerPool } from './pool/worker-pool.ts';
import { KafkaPublisher } from './publish/kafka-publisher.ts';
import { RabbitPublisher } from './publish/rabbitmq-publisher.ts';
import { connectAmqp, type AmqpConnectionManager } from './rabbitmq/connection.ts';
import { RabbitSource } from './rabbitmq/rabbit-source.ts';

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
  readonly stats: RuntimeStats = { handled: 0, retries: 0, deadLettered: 0, deadLetterFailures: 0, commits: 0, rebalances: 0 };
  private pool: WorkerPool | undefined;
  private deadLetters: DeadLetterPublisher | undefined;
  private publisher: KafkaPublisher | undefined;
  private rabbitPublisher: RabbitPublisher | undefined;
  private amqp: AmqpConnectionManager | undefined;
  private sources: Array<KafkaSource | RabbitSource> = [];
  private stopping: Promise<void> | undefined;

  private constructor(config: ConveyorConfig, handlers: readonly HandlerSpec[], logger: Logger) {
    this.config = config;
    this.handlers = handlers;
    this.logger = logger;
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

  async start(): Promise<void> {
    const { config, logger } = this;
    this.pool = new WorkerPool({ size: config.pool.size, timeoutGraceMs: config.pool.timeoutGraceMs });
    const kafka = createKafka(kafkaClientOptions(config, `${config.app.name}${config.kafka.instanceId ? `-${config.kafka.instanceId}` : ''}`, logger));
    this.deadLetters = new DeadLetterPublisher(kafka, { timeoutMs: config.kafka.timeoutSeconds * 1000 });
    this.publisher = new KafkaPublisher(config, { logger });
    // one connection for the queue consumers and ctx.publish to RabbitMQ; without queue handlers the publisher
    // opens its own on first use
    if (this.handlers.some((h) => h.broker === 'rabbitmq')) {
      this.amqp = connectAmqp({ url: config.rabbitmq.url, heartbeatSeconds: config.rabbitmq.heartbeatSeconds, name: `${config.app.name}-consumer`, logger });
    }
    this.rabbitPublisher = new RabbitPublisher(config, { logger, ...(this.amqp ? { connection: this.amqp } : {}) });
    const publishers = { kafka: this.publisher, rabbitmq: this.rabbitPublisher };
    this.sources = this.handlers.map((spec) =>
      spec.broker === 'rabbitmq'
        ? new RabbitSource(spec, config, { connection: this.amqp!, pool: this.pool!, publishers, events: this.events, logger })
        : new KafkaSource(spec, config, { kafka, pool: this.pool!, deadLetters: this.deadLetters!, publishers, events: this.events, logger }),
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
    logger.info('running');
  }

  /** Graceful stop within `deadlineMs`: stop fetching, drain in-flight batches, commit, disconnect. Idempotent. */
  stop(deadlineMs: number = this.config.shutdown.deadlineMs): Promise<void> {
    this.stopping ??= (async () => {
      const started = Date.now();
      await Promise.all(this.sources.map((s) => s.stop(deadlineMs)));
      await this.deadLetters?.close();
      await this.publisher?.close();
      await this.rabbitPublisher?.close();
      await this.amqp?.close().catch(() => {});
      await this.pool?.close();
      this.logger.info({ ...this.stats, stopMs: Date.now() - started }, 'stopped');
    })();
    return this.stopping;
  }

  assignment(): Array<{ group: string; topic: string; partition: number }> {
    return this.sources.flatMap((s) => (s instanceof KafkaSource ? s.assignment().map((tp) => ({ group: s.spec.group, ...tp })) : []));
  }
}

/**
 * One RabbitMQ consumer per queue handler. Declares its topology (durable queue, optional exchange binding, the
 * retry queues, the dead-letter queue) on every (re)connect, consumes with `prefetch`, and hands deliveries to one
 * lane whose ordering decides what runs at once: `partition` (the default with concurrency 1) in order of delivery,
 * `unordered` up to `concurrency`, `key` in order per routing key.
 *
 * A delivery is acked only after its handler succeeded, or after the broker confirmed its copy in a retry queue
 * or its dead letter. Everything unacked when the channel or the process dies is redelivered by RabbitMQ.
 * Each channel's life is a Generation: its deliveries can only be acked on it, so when it closes, its lanes stop
 * and whatever they held is left to the redelivery (never acked on the next channel, where the same delivery tag
 * names another message).
 */
import { randomUUID } from 'node:crypto';
import type { ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { MemoryPlan } from '../config/memory-budget.ts';
import type { ConveyorConfig } from '../config/schema.ts';
import type { DeadLetter, DeadLetterSink } from '../failure/dead-letter.ts';
import { BrokerFailure, ConveyorError } from '../failure/errors.ts';
import type { Broker } from '../handlers/define-handler.ts';
import type { HandlerSpec, QueueSpec } from '../handlers/discover.ts';
import type { Instrumentation } from '../lanes/instrumentation.ts';
import { LaneDriver, type EventSender } from '../lanes/lane-driver.ts';
import { PartitionLane, type LaneRecord } from '../lanes/partition-lane.ts';
import { ConcurrencySlots } from '../scheduling/concurrency-slots.ts';
import type { Logger } from '../ops/logger.ts';
import type { WorkerPool } from '../pool/worker-pool.ts';
import { reconnectDelaySeconds, type AmqpConnectionManager } from './connection.ts';
import {
  ATTEMPT_HEADER,
  attemptOf,
  EXCHANGE_HEADER,
  headerText,
  INTERNAL_HEADERS,
  retryLevels,
  retryQueueName,
  retryQueueNames,
  ROUTING_KEY_HEADER,
} from './retry-queues.ts';

export interface RabbitSourceDeps {
  readonly connection: AmqpConnectionManager;
  readonly pool: WorkerPool;
  readonly publishers: Readonly<Record<Broker, EventSender>>;
  readonly events: Instrumentation;
  readonly logger: Logger;
  /** The memory budget's plan: bounds the prefetch. */
  readonly memory: MemoryPlan;
  /** Resolves once the worker threads imported the handlers: consuming starts after it (never rejects). */
  readonly workersWarm?: Promise<void>;
}

/** Lanes hold at most `prefetch` deliveries: the broker's qos is the bound, the lane limits never pause. */
const UNBOUNDED_LANE = { maxMessages: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER, resumeRatio: 0.5 };

/** What lives and dies with one channel. */
interface Generation {
  readonly channel: ConfirmChannel;
  readonly driver: LaneDriver;
  /** Deliveries not yet acked, by receipt sequence (the lane record's offset), in order of delivery tag. */
  readonly deliveries: Map<bigint, ConsumeMessage>;
  /** Deliveries handled (or dead-lettered, or handed to a retry queue) whose ack is not sent yet (flushAcks). */
  readonly acked: ConsumeMessage[];
  flushing: boolean;
  consumerTag?: string;
  open: boolean;
}

/** Publishes on a confirm channel and resolves when the broker confirmed (rejects if it nacked or the channel closed). */
function sendConfirmed(channel: ConfirmChannel, queue: string, content: Buffer, options: Options.Publish): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      channel.sendToQueue(queue, content, options, (err: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()));
    } catch (err) {
      reject(err as Error); // the channel is closed
    }
  });
}

/** Properties a retried copy keeps from the original. */
function keptProperties(m: ConsumeMessage): Options.Publish {
  const p = m.properties;
  const out: Options.Publish = {};
  if (p.contentType) out.contentType = p.contentType;
  if (p.contentEncoding) out.contentEncoding = p.contentEncoding;
  if (p.correlationId) out.correlationId = p.correlationId;
  if (p.messageId) out.messageId = p.messageId;
  if (p.timestamp) out.timestamp = p.timestamp;
  if (p.type) out.type = p.type;
  if (p.appId) out.appId = p.appId;
  if (p.replyTo) out.replyTo = p.replyTo;
  if (p.priority !== undefined) out.priority = p.priority;
  return out;
}

/** AMQP's timestamp is POSIX seconds, though many publishers put milliseconds in it; absent: the time of receipt. */
function timestampMs(m: ConsumeMessage): number {
  const t = m.properties.timestamp as unknown;
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) return Date.now();
  return t < 1e11 ? t * 1000 : t;
}

function isDeathHeader(name: string): boolean {
  return name === 'x-death' || name.startsWith('x-first-death-') || name.startsWith('x-last-death-');
}

function isAccessOrPrecondition(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 403 || code === 404 || code === 406;
}

export class RabbitSource {
  readonly spec: HandlerSpec;
  private readonly queue: QueueSpec;
  private readonly config: ConveyorConfig;
  private readonly deps: RabbitSourceDeps;
  private readonly log: Logger;
  private readonly levels: number;
  private readonly deadLetterQueue: string | null;
  private wrapper: ChannelWrapper | undefined;
  private current: Generation | undefined;
  private seq = 0n;
  private stopped = false;
  /** Consecutive channel re-creations that did not get a channel set up. */
  private recoveries = 0;
  private recoveryTimer: NodeJS.Timeout | undefined;
  /** The handler's concurrency (one lane per channel, so all of it goes to the current channel's lane). */
  private readonly slots: ConcurrencySlots;

  constructor(spec: HandlerSpec, config: ConveyorConfig, deps: RabbitSourceDeps) {
    if (!spec.queue) throw new TypeError(`handler ${spec.name} has no queue`);
    this.spec = spec;
    this.queue = spec.queue;
    this.config = config;
    this.deps = deps;
    this.log = deps.logger.child({ handler: spec.name, queue: spec.queue.name });
    this.deadLetterQueue = spec.deadLetterTopicFor(spec.queue.name);
    this.levels = retryLevels(this.deadLetterQueue === null ? null : spec.maxRetries, spec.backoff);
    this.slots = new ConcurrencySlots(spec.concurrency);
  }

  /** The consumer is registered on a live channel (false while RabbitMQ is unreachable or the channel is being replaced). */
  get consuming(): boolean {
    return this.current?.open === true && this.current.consumerTag !== undefined;
  }

  /** Messages the queue's lanes hold, not yet acked (for metrics; one entry per lane, partition -1). */
  laneDepths(): Array<{ topic: string; partition: number; depth: number }> {
    const driver = this.current?.driver;
    return driver ? [{ topic: this.queue.name, partition: -1, depth: driver.lane.size }] : [];
  }

  /** Resolves once the topology is declared and the consumer is registered; waits while RabbitMQ is unreachable. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.openChannel(resolve, reject);
    });
  }

  /**
   * A channel wrapper whose set-up runs on every (re)connect. `ready`/`failed` settle the first set-up: a topology
   * the broker refuses (a queue declared elsewhere with other arguments, no permission) fails the start.
   */
  private openChannel(ready?: () => void, failed?: (err: Error) => void): void {
    let settled = false;
    const wrapper = this.deps.connection.createChannel({
      name: this.spec.name,
      confirm: true,
      setup: async (channel: ConfirmChannel) => {
        await this.setup(channel);
        this.recoveries = 0;
        if (!settled) {
          settled = true;
          ready?.();
        }
      },
    });
    wrapper.on('error', (err: Error) => {
      const topology = isAccessOrPrecondition(err);
      this.log.error({ err }, topology ? 'RabbitMQ refused the queue set-up' : 'RabbitMQ channel set-up failed');
      if (!settled && topology && failed) {
        settled = true;
        failed(
          new ConveyorError(
            'conveyor.rabbitmq.topology',
            `RabbitMQ refused to set up queue ${this.queue.name} for handler ${this.spec.name}: ${err.message}. ` +
              'If the queue or exchange already exists with other settings, delete it or match its settings (Conveyor declares durable classic queues).',
            { context: { topic: this.queue.name, handler: this.spec.name, file: this.spec.file }, cause: err },
          ),
        );
      }
    });
    this.wrapper = wrapper;
  }

  private async setup(channel: ConfirmChannel): Promise<void> {
    const q = this.queue;
    const deliveries = new Map<bigint, ConsumeMessage>();
    let generation!: Generation;
    const driver = this.driver(() => generation);
    generation = { channel, driver, deliveries, acked: [], flushing: false, open: true };
    channel.on('close', () => this.onChannelClosed(generation));
    await channel.assertQueue(q.name, { durable: true });
    if (q.exchange !== undefined) {
      // the amq.* exchanges exist on every broker and may not be declared, only checked
      if (q.exchange.startsWith('amq.')) await channel.checkExchange(q.exchange);
      else await channel.assertExchange(q.exchange, q.exchangeType, { durable: true });
      await channel.bindQueue(q.name, q.exchange, q.routingKey);
    }
    for (const name of retryQueueNames(q.name, this.levels)) {
      // no consumer: a message waits its TTL, then RabbitMQ dead-letters it back to the handler's queue
      await channel.assertQueue(name, { durable: true, arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': q.name } });
    }
    if (this.deadLetterQueue !== null) await channel.assertQueue(this.deadLetterQueue, { durable: true });
    const prefetch = this.deps.memory.queuePrefetch(q.prefetch, this.spec.concurrency);
    await channel.prefetch(prefetch);
    await this.deps.workersWarm;
    if (!generation.open) throw new Error('the channel closed during its set-up');
    this.current = generation;
    const { consumerTag } = await channel.consume(q.name, (m) => this.onDelivery(generation, m), { noAck: false });
    generation.consumerTag = consumerTag;
    this.log.info(
      { exchange: q.exchange, routingKey: q.exchange !== undefined ? q.routingKey : undefined, ordering: this.spec.ordering, concurrency: this.spec.concurrency, prefetch, declaredPrefetch: q.prefetch, retryQueues: this.levels, deadLetterQueue: this.deadLetterQueue },
      'consumer started',
    );
  }

  /** The generation's lane and its driver (the generation is made around it: reached through `of`). */
  private driver(of: () => Generation): LaneDriver {
    const lane = new PartitionLane(this.queue.name, -1, UNBOUNDED_LANE, this.spec.ordering);
    return new LaneDriver(lane, this.spec, {
      pool: this.deps.pool,
      deadLetters: this.deadLetterSink(of),
      publishers: this.deps.publishers,
      events: this.deps.events,
      logger: this.deps.logger,
      maxBatch: this.config.pool.maxBatch,
      slots: this.slots,
      onDrained: () => {},
      acknowledge: (record) => this.ack(of(), record),
      retryLater: (record, nextAttempt, delayMs) => this.retryLater(of(), record, nextAttempt, delayMs),
    });
  }

  private onDelivery(generation: Generation, m: ConsumeMessage | null): void {
    if (m === null) {
      // the broker cancelled the consumer (the queue was deleted): start over on a new channel
      this.log.warn('RabbitMQ cancelled the consumer (queue deleted?); setting it up again');
      void generation.channel.close().catch(() => {});
      return;
    }
    if (!generation.open) return;
    if (this.stopped) {
      // not taken: stays unacked and is redelivered once this channel closes (held as outstanding, so that no
      // ack with `multiple` covers it)
      this.seq += 1n;
      generation.deliveries.set(this.seq, m);
      return;
    }
    const raw = m.properties.headers ?? {};
    const headers: Record<string, string> = {};
    // back from a retry queue: the x-death trail is Conveyor's own bookkeeping, not the handler's business
    const retried = raw[ATTEMPT_HEADER] !== undefined;
    let headerBytes = 0;
    for (const name in raw) {
      if (INTERNAL_HEADERS.has(name) || raw[name] === undefined || raw[name] === null) continue;
      if (retried && isDeathHeader(name)) continue;
      const text = headerText(raw[name]);
      headers[name] = text;
      headerBytes += name.length + text.length;
    }
    if (m.properties.messageId && headers['message-id'] === undefined) headers['message-id'] = String(m.properties.messageId);
    if (m.properties.correlationId && headers['correlation-id'] === undefined) headers['correlation-id'] = String(m.properties.correlationId);
    const exchange = typeof raw[EXCHANGE_HEADER] === 'string' ? (raw[EXCHANGE_HEADER] as string) : m.fields.exchange;
    const routingKey = typeof raw[ROUTING_KEY_HEADER] === 'string' ? (raw[ROUTING_KEY_HEADER] as string) : m.fields.routingKey;
    this.seq += 1n;
    const key = Buffer.from(routingKey, 'utf8');
    const record: LaneRecord = {
      offset: this.seq,
      key,
      value: m.content,
      headers,
      timestamp: String(timestampMs(m)),
      size: key.length + m.content.length + headerBytes,
      attempt: attemptOf(raw),
      exchange,
    };
    generation.deliveries.set(record.offset, m);
    generation.driver.lane.push(record);
    generation.driver.kick();
  }

  /**
   * Handled, dead-lettered or handed to a retry queue: ack it on the channel it came from, if that still lives. Acks
   * are sent together once the current burst of settlements is over (flushAcks).
   */
  private ack(generation: Generation, record: LaneRecord): void {
    const m = generation.deliveries.get(record.offset);
    generation.deliveries.delete(record.offset);
    if (!m || !generation.open) return; // its channel closed: RabbitMQ redelivers it
    generation.acked.push(m);
    if (generation.flushing) return;
    generation.flushing = true;
    queueMicrotask(() => this.flushAcks(generation));
  }

  /**
   * Sends the pending acks: one ack with `multiple` for every pending delivery below the oldest one still
   * outstanding (running, waiting, or not taken) — in order of delivery that is all of them, one frame instead of
   * one per message (measured: per-message acks were a quarter of the main thread's time) — and a single ack for
   * each of the others.
   */
  private flushAcks(generation: Generation): void {
    generation.flushing = false;
    const acked = generation.acked.splice(0);
    if (!generation.open || acked.length === 0) return;
    const oldest = generation.deliveries.values().next().value as ConsumeMessage | undefined;
    const below = oldest === undefined ? Number.POSITIVE_INFINITY : oldest.fields.deliveryTag;
    let upTo: ConsumeMessage | undefined;
    const single: ConsumeMessage[] = [];
    for (const m of acked) {
      if (m.fields.deliveryTag >= below) single.push(m);
      else if (upTo === undefined || m.fields.deliveryTag > upTo.fields.deliveryTag) upTo = m;
    }
    try {
      if (upTo) generation.channel.ack(upTo, true);
      for (const m of single) generation.channel.ack(m);
    } catch (err) {
      this.log.debug({ err, count: acked.length }, 'acks not sent: the channel closed; RabbitMQ redelivers the messages');
    }
  }

  /** A copy with the next attempt number goes to the retry queue, expiring after `delayMs`; resolves once confirmed. */
  private async retryLater(generation: Generation, record: LaneRecord, nextAttempt: number, delayMs: number): Promise<void> {
    const m = generation.deliveries.get(record.offset);
    if (!m || !generation.open) throw new BrokerFailure('the channel closed before the retry could be scheduled; RabbitMQ redelivers the message');
    const queue = retryQueueName(this.queue.name, nextAttempt - 1, this.levels);
    const kept: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(m.properties.headers ?? {})) if (!isDeathHeader(name)) kept[name] = value;
    const headers = {
      ...kept,
      [ATTEMPT_HEADER]: nextAttempt,
      [EXCHANGE_HEADER]: record.exchange ?? m.fields.exchange,
      [ROUTING_KEY_HEADER]: record.key?.toString('utf8') ?? m.fields.routingKey,
    };
    try {
      await sendConfirmed(generation.channel, queue, m.content, { ...keptProperties(m), headers, persistent: true, expiration: String(Math.max(0, Math.round(delayMs))) });
    } catch (err) {
      throw new BrokerFailure(`retry publish to ${queue} failed: ${(err as Error).message}`, {
        cause: err,
        context: { topic: this.queue.name, offset: record.offset.toString(), handler: this.spec.name },
      });
    }
  }

  private deadLetterSink(of: () => Generation): DeadLetterSink {
    return {
      publish: async (letter: DeadLetter) => {
        const generation = of();
        if (!generation.open) throw new BrokerFailure('the channel closed before the dead letter was sent; RabbitMQ redelivers the message');
        try {
          await sendConfirmed(generation.channel, letter.topic, Buffer.from(letter.value, 'utf8'), {
            persistent: true,
            contentType: 'application/json',
            messageId: randomUUID(),
            correlationId: letter.envelope.correlation_id,
            timestamp: Math.floor(Date.now() / 1000),
            headers: letter.headers,
          });
        } catch (err) {
          throw new BrokerFailure(`dead-letter publish to queue ${letter.topic} failed: ${(err as Error).message}`, {
            cause: err,
            context: { topic: letter.envelope.original_topic, offset: letter.envelope.original_message.offset },
          });
        }
      },
    };
  }

  private onChannelClosed(generation: Generation): void {
    if (!generation.open) return;
    generation.open = false;
    if (this.current === generation) this.current = undefined;
    // queued deliveries are dropped (RabbitMQ requeues them), a batch in flight finishes but is not acked
    void generation.driver.stop(0);
    generation.deliveries.clear();
    if (this.stopped) return;
    this.log.warn('RabbitMQ channel closed; unacknowledged messages will be redelivered');
    this.scheduleRecovery();
  }

  /**
   * After a lost connection, amqp-connection-manager reconnects and sets the channel up again by itself. A channel
   * closed on a live connection (a channel error, a cancelled consumer) it never reopens: then this opens a new one.
   */
  private scheduleRecovery(): void {
    clearTimeout(this.recoveryTimer);
    const delayMs = reconnectDelaySeconds(this.recoveries) * 1000;
    this.recoveryTimer = setTimeout(() => {
      if (this.stopped || this.current) return;
      if (!this.deps.connection.isConnected()) {
        // the connection is down: its reconnect will set the channel up; look again later in case it does not
        this.scheduleRecovery();
        return;
      }
      this.recoveries += 1;
      this.log.warn({ attempt: this.recoveries }, 'opening a new RabbitMQ channel');
      const old = this.wrapper;
      this.openChannel();
      void old?.close().catch(() => {});
      this.scheduleRecovery();
    }, Math.max(delayMs, 1000));
    this.recoveryTimer.unref();
  }

  /** Graceful stop: no new deliveries, in-flight batches finish and are acked (bounded), then the channel closes. */
  async stop(deadlineMs: number): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.recoveryTimer);
    const generation = this.current;
    if (generation?.consumerTag) await generation.channel.cancel(generation.consumerTag).catch(() => {});
    if (generation) {
      const finished = await generation.driver.stop(deadlineMs);
      if (!finished) this.log.warn({ deadlineMs }, 'in-flight work did not finish before the shutdown deadline; RabbitMQ redelivers it');
    }
    // closing the channel hands every unacked delivery back to the queue
    await this.wrapper?.close().catch(() => {});
    this.log.info('consumer stopped');
  }
}

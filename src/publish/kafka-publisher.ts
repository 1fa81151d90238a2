/**
 * Publishing to Kafka for applications (`createPublisher(config)`): idempotent producer, acks from the config,
 * compression, key → partition, headers. A publish is bounded by `publish.timeoutMs`: when the broker cannot be
 * reached it fails with `events.broker.unavailable` (seed 000) instead of waiting or buffering. librdkafka's own
 * message timeout is set to the same bound, so a message that failed is dropped by the client, never delivered
 * later behind the caller's back. A circuit breaker fails publishes at once after repeated failures.
 */
import { CompressionTypes, createKafka, kafkaClientOptions, type Producer } from '../kafka/client.ts';
import type { ConveyorConfig } from '../config/schema.ts';
import { BrokerFailure, ConveyorError } from '../failure/errors.ts';
import type { Logger } from '../ops/logger.ts';
import { publishBreaker, type CircuitStateName, type PublishCircuitBreaker } from './circuit-breaker.ts';
import { RabbitPublisher } from './rabbitmq-publisher.ts';

export interface PublishMessage {
  /** Same key, same partition: the order of one key's messages is kept. */
  readonly key?: string | Buffer | null;
  /** Objects are sent as JSON; strings and Buffers as they are. */
  readonly value: unknown;
  /** A repeated header: an array of its values, written in that order. */
  readonly headers?: Readonly<Record<string, string | Buffer | Array<string | Buffer>>>;
  readonly partition?: number;
}

export interface PublishedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset?: string;
}

const ACKS: Readonly<Record<ConveyorConfig['kafka']['acks'], number>> = { all: -1, '1': 1, '0': 0 };

function encode(value: unknown): string | Buffer | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || Buffer.isBuffer(value)) return value;
  return JSON.stringify(value);
}

/** Seed 004's layout: one topic per domain, `<prefix>.events.<domain>`. */
export function eventTopic(prefix: string, domain: string): string {
  return `${prefix}.events.${domain}`;
}

/** Seed 004's key: domain + aggregate root, so every event of one aggregate lands in one partition, in order. */
export function aggregateKey(domain: string, aggregateRoot: string): string {
  return `${domain}:${aggregateRoot}`;
}

export class KafkaPublisher {
  private readonly producer: Producer;
  private readonly breaker: PublishCircuitBreaker;
  private readonly timeoutMs: number;
  private readonly brokers: string;
  private connecting: Promise<void> | undefined;

  constructor(config: ConveyorConfig, options: { readonly logger?: Logger } = {}) {
    this.brokers = config.kafka.bootstrapServers;
    this.timeoutMs = config.publish.timeoutMs;
    const kafka = createKafka(kafkaClientOptions(config, `${config.app.name}-publisher`, options.logger));
    const acks = ACKS[config.kafka.acks];
    this.producer = kafka.producer({
      // idempotence needs acks=all; with acks 1 or 0 it is off whatever KAFKA_ENABLE_IDEMPOTENCE says
      'enable.idempotence': config.kafka.enableIdempotence && acks === -1,
      acks,
      'compression.type': config.publish.compression === 'none' ? CompressionTypes.None : config.publish.compression,
      'message.timeout.ms': this.timeoutMs,
      'request.timeout.ms': Math.min(this.timeoutMs, 30_000),
      'linger.ms': 5,
      'reconnect.backoff.ms': 100,
      'reconnect.backoff.max.ms': 30_000,
    } as never);
    this.breaker = publishBreaker(config, `Kafka at ${this.brokers}`, options.logger);
  }

  get circuitState(): CircuitStateName {
    return this.breaker.state;
  }

  /** Publishes and resolves once the broker acknowledged (per `kafka.acks`); fails within `publish.timeoutMs`. */
  publish(topic: string, messages: PublishMessage | readonly PublishMessage[]): Promise<PublishedRecord[]> {
    const list = Array.isArray(messages) ? (messages as readonly PublishMessage[]) : [messages as PublishMessage];
    return this.breaker.execute(async () => {
      try {
        await this.connected();
        const sent = await this.producer.send({
          topic,
          messages: list.map((m) => ({
            key: m.key ?? null,
            value: encode(m.value),
            ...(m.headers ? { headers: { ...m.headers } } : {}),
            ...(m.partition !== undefined ? { partition: m.partition } : {}),
          })),
        });
        return sent.map((r) => ({ topic: r.topicName, partition: r.partition, ...(r.baseOffset ?? r.offset ? { offset: r.baseOffset ?? r.offset } : {}) }));
      } catch (err) {
        if (err instanceof BrokerFailure) throw err;
        throw new BrokerFailure(
          `publish to ${topic} failed: Kafka at ${this.brokers} did not acknowledge within ${this.timeoutMs} ms (${(err as Error).message}). ` +
            'Nothing was buffered: retry (retryWithBackoff) or drop, as the event deserves.',
          { cause: err, context: { topic }, circuitState: this.breaker.state },
        );
      }
    });
  }

  /** The producer's connect, bounded: the client's own connect can wait 30 s for an unreachable broker. */
  private async connected(): Promise<void> {
    const attempt = (this.connecting ??= this.producer.connect().catch((err: unknown) => {
      this.connecting = undefined;
      throw err;
    }));
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        attempt,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new BrokerFailure(`Kafka at ${this.brokers} is unreachable: no connection within ${this.timeoutMs} ms; nothing was sent`, { circuitState: this.breaker.state })),
            this.timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (!this.connecting) return;
    await Promise.race([this.connecting.then(() => this.producer.disconnect()), new Promise((r) => setTimeout(r, this.timeoutMs))]).catch(() => {});
  }
}

/** What both brokers' publishers offer (`destination`: a Kafka topic, or a RabbitMQ exchange with `key` as routing key). */
export interface Publisher {
  publish(destination: string, messages: PublishMessage | readonly PublishMessage[]): Promise<PublishedRecord[]>;
  readonly circuitState: CircuitStateName;
  close(): Promise<void>;
}

export interface CreatePublisherOptions {
  /** Default 'kafka'. */
  readonly broker?: 'kafka' | 'rabbitmq';
  readonly logger?: Logger;
}

/** A publisher for applications, configured like the runner (docs/configuration.md): Kafka unless `broker: 'rabbitmq'`. */
export function createPublisher(config: ConveyorConfig, options: CreatePublisherOptions & { readonly broker: 'rabbitmq' }): RabbitPublisher;
export function createPublisher(config: ConveyorConfig, options?: CreatePublisherOptions & { readonly broker?: 'kafka' }): KafkaPublisher;
export function createPublisher(config: ConveyorConfig, options?: CreatePublisherOptions): Publisher;
export function createPublisher(config: ConveyorConfig, options: CreatePublisherOptions = {}): Publisher {
  const { broker = 'kafka', logger } = options;
  if (broker === 'rabbitmq') return new RabbitPublisher(config, logger ? { logger } : {});
  if (broker === 'kafka') return new KafkaPublisher(config, logger ? { logger } : {});
  throw new ConveyorError('conveyor.publisher.broker', `createPublisher: broker must be 'kafka' or 'rabbitmq', not ${JSON.stringify(broker)}`);
}

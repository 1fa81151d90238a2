/**
 * A consumer for reading at chosen offsets, or committing a group's offsets, without ever joining a consumer group:
 * the driver's low-level API, because the KafkaJS-shaped one has no manual assignment. It is used only with
 * `assign()` (never subscribe), so its group.id is only a name librdkafka insists on (or the group whose offsets
 * are committed on purpose); auto-commit and the offset store are off, so it never commits behind the caller's back.
 * The lag monitor (message-timestamps.ts) and the CLI (cli/kafka-tools.ts) read through it.
 */
import kafkaJavascript from '@confluentinc/kafka-javascript';
import type { KafkaConsumer } from '@confluentinc/kafka-javascript';

export type { KafkaConsumer };

export interface AssignedConsumerOptions {
  /** Comma-separated host:port list. */
  readonly brokers: string;
  readonly clientId: string;
  readonly groupId: string;
  /** librdkafka security properties (client.ts securityProperties). */
  readonly security: Readonly<Record<string, string>>;
  /** How long one consume call waits for messages. */
  readonly consumeTimeoutMs: number;
  /** More librdkafka properties: tuning, enable.partition.eof, ... */
  readonly properties?: Readonly<Record<string, unknown>>;
}

/** Builds the consumer; connect it with connectConsumer. */
export function assignedConsumer(options: AssignedConsumerOptions): KafkaConsumer {
  const consumer = new kafkaJavascript.KafkaConsumer(
    {
      'metadata.broker.list': options.brokers,
      'client.id': options.clientId,
      'group.id': options.groupId,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'allow.auto.create.topics': false,
      ...options.properties,
      ...options.security,
    } as never,
    { 'auto.offset.reset': 'earliest' },
  );
  consumer.setDefaultConsumeTimeout(options.consumeTimeoutMs);
  // errors surface as a failed connect, read or commit; without a listener they would only be dropped anyway
  consumer.on('event.error', () => {});
  return consumer;
}

/** Connects within `timeout` ms; `allTopics: false` skips loading every topic's metadata on connect. */
export function connectConsumer(consumer: KafkaConsumer, options: { readonly timeout: number; readonly allTopics?: boolean }): Promise<void> {
  return new Promise<void>((resolve, reject) => consumer.connect(options, (err) => (err ? reject(err) : resolve())));
}

/**
 * Reads the timestamp of the first message at or after given offsets: what the lag monitor needs to tell a
 * partition's lag in time (the age of the oldest message a group has not committed yet).
 *
 * A consumer of its own that never joins a group or commits (assigned-consumer.ts): `assign()` at the wanted
 * offsets, take one message per partition, `unassign()`.
 */
import { randomUUID } from 'node:crypto';
import type { EofEvent, Message } from '@confluentinc/kafka-javascript';
import { assignedConsumer, connectConsumer, type KafkaConsumer } from './assigned-consumer.ts';
import { BrokerFailure } from '../failure/errors.ts';
import type { KafkaClientOptions } from './client.ts';

export interface OffsetPosition {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
}

/** How long one consume call waits for messages before the deadline is checked again. */
const POLL_MS = 100;

export class MessageTimestampReader {
  readonly #options: KafkaClientOptions;
  #consumer: KafkaConsumer | undefined;
  /** One read at a time: the consumer's assignment is per read. */
  #busy: Promise<unknown> = Promise.resolve();

  constructor(options: KafkaClientOptions) {
    this.#options = options;
  }

  /**
   * For each position, the timestamp (epoch ms) of the first message at or after its offset, or null when the
   * partition ends before any message there (only transaction markers left) or the message carries no timestamp.
   * Rejects with BrokerFailure when not every position is answered within `timeoutMs`.
   */
  read(positions: readonly OffsetPosition[], timeoutMs: number): Promise<Array<number | null>> {
    const result = this.#busy.then(() => this.#read(positions, timeoutMs));
    this.#busy = result.catch(() => {});
    return result;
  }

  /** Disconnects; a later read connects again. */
  async close(): Promise<void> {
    await this.#busy;
    const consumer = this.#consumer;
    this.#consumer = undefined;
    if (consumer?.isConnected()) await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }

  async #read(positions: readonly OffsetPosition[], timeoutMs: number): Promise<Array<number | null>> {
    const deadline = Date.now() + timeoutMs;
    const answers = new Map<string, number | null>();
    // a consumer holds a partition once: two offsets of one partition (two groups on one topic) take two rounds
    for (const round of rounds(positions)) {
      const read = await this.#readRound(round, deadline, timeoutMs);
      round.forEach((p, i) => answers.set(key(p.topic, p.partition, p.offset), read[i]!));
    }
    return positions.map((p) => answers.get(key(p.topic, p.partition, p.offset)) ?? null);
  }

  /** Positions on distinct partitions, all at once. */
  async #readRound(positions: readonly OffsetPosition[], deadline: number, timeoutMs: number): Promise<Array<number | null>> {
    const consumer = await this.#connect(timeoutMs);
    const results: Array<number | null> = positions.map(() => null);
    const pending = new Map(positions.map((p, i) => [key(p.topic, p.partition), i]));
    const settle = (topic: string, partition: number, value: number | null): void => {
      const i = pending.get(key(topic, partition));
      if (i === undefined) return;
      results[i] = value;
      pending.delete(key(topic, partition));
      // stop fetching a partition that answered; what was fetched already is ignored
      consumer.pause([{ topic, partition }]);
    };
    // The client emits a batch's end-of-partition events before it hands over the batch's messages: keep them
    // until the messages of the same batch are settled.
    const ends: EofEvent[] = [];
    const onEof = (eof: EofEvent): void => void ends.push(eof);
    consumer.on('partition.eof', onEof);
    try {
      consumer.assign(positions.map((p) => ({ topic: p.topic, partition: p.partition, offset: Number(p.offset) })));
      // librdkafka keeps a partition's pause across unassign and assign: undo the pauses of an earlier read
      consumer.resume(positions.map(({ topic, partition }) => ({ topic, partition })));
      while (pending.size > 0) {
        if (Date.now() >= deadline) {
          const missing = positions.filter((p) => pending.has(key(p.topic, p.partition))).map((p) => `${p.topic}[${p.partition}]@${p.offset}`);
          throw new BrokerFailure(`could not read the oldest unprocessed message of ${missing.join(', ')} within ${timeoutMs} ms: is Kafka reachable?`);
        }
        for (const message of await consume(consumer, 100)) {
          settle(message.topic, message.partition, message.timestamp !== undefined && message.timestamp > 0 ? message.timestamp : null);
        }
        for (const eof of ends.splice(0)) settle(eof.topic, eof.partition, null);
      }
      consumer.unassign();
      return results;
    } catch (error) {
      // start afresh next time: a consumer that failed may be in any state
      await this.#drop(consumer);
      throw error instanceof BrokerFailure ? error : new BrokerFailure(`could not read message timestamps: ${(error as Error).message}`, { cause: error });
    } finally {
      consumer.off('partition.eof', onEof);
    }
  }

  async #connect(timeoutMs: number): Promise<KafkaConsumer> {
    if (this.#consumer) return this.#consumer;
    const { brokers, clientId, security } = this.#options;
    const consumer = assignedConsumer({
      brokers: brokers.join(','),
      clientId: `${clientId}-lag-reader`,
      groupId: `conveyor.lag-reader.${randomUUID()}`,
      security: security ?? {},
      consumeTimeoutMs: POLL_MS,
      properties: {
        'enable.partition.eof': true,
        // see the message at the committed offset even inside an open transaction: the end offset the lag is
        // counted to is the high watermark, which includes those messages too
        'isolation.level': 'read_uncommitted',
        // one record batch per partition is all a read needs; with so small a queue librdkafka would wait its
        // default 1 s before fetching again, and a read is short: no long waits anywhere
        'max.partition.fetch.bytes': 1024,
        'queued.min.messages': 1,
        'fetch.queue.backoff.ms': 10,
        'fetch.error.backoff.ms': 10,
        'fetch.wait.max.ms': 10,
      },
    });
    await connectConsumer(consumer, { allTopics: false, timeout: timeoutMs }).catch((error: Error) => {
      throw new BrokerFailure(`cannot reach Kafka at ${brokers.join(',')}: ${error.message}`, { cause: error });
    });
    this.#consumer = consumer;
    return consumer;
  }

  async #drop(consumer: KafkaConsumer): Promise<void> {
    if (this.#consumer === consumer) this.#consumer = undefined;
    await new Promise<void>((resolve) => {
      try {
        consumer.disconnect(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

const key = (topic: string, partition: number, offset?: bigint): string => `${topic}\u0000${partition}\u0000${offset ?? ''}`;

/** The distinct positions, split so that no round holds two offsets of one partition. */
function rounds(positions: readonly OffsetPosition[]): OffsetPosition[][] {
  const result: Array<{ partitions: Set<string>; positions: OffsetPosition[] }> = [];
  const seen = new Set<string>();
  for (const p of positions) {
    if (seen.has(key(p.topic, p.partition, p.offset))) continue;
    seen.add(key(p.topic, p.partition, p.offset));
    const partition = key(p.topic, p.partition);
    let round = result.find((r) => !r.partitions.has(partition));
    if (!round) {
      round = { partitions: new Set(), positions: [] };
      result.push(round);
    }
    round.partitions.add(partition);
    round.positions.push(p);
  }
  return result.map((r) => r.positions);
}

function consume(consumer: KafkaConsumer, count: number): Promise<Message[]> {
  return new Promise((resolve, reject) => consumer.consume(count, (error, messages) => (error ? reject(error) : resolve(messages))));
}

/**
 * The Kafka operations the CLI needs, each bounded by `kafka.timeoutSeconds` (KAFKA_TIMEOUT_SECONDS): an unreachable
 * cluster fails with `events.broker.unavailable` (exit 69) instead of hanging. Admin requests go through the
 * client's KafkaJS-shaped admin; reading partitions and committing a group's offsets use the driver's plain
 * consumer with manual assignment, so the CLI never joins a consumer group (it would trigger a rebalance).
 */
import { randomUUID } from 'node:crypto';
import type { Message, MessageHeader } from '@confluentinc/kafka-javascript';
import type { ConveyorConfig } from '../config/schema.ts';
import { BrokerFailure, ConveyorError } from '../failure/errors.ts';
import { assignedConsumer, connectConsumer, type KafkaConsumer as RdKafkaConsumer } from '../kafka/assigned-consumer.ts';
import { createKafka, kafkaClientOptions, securityProperties, type Admin } from '../kafka/client.ts';


/** librdkafka codes that mean "the cluster did not answer": transport failure, timeout, all brokers down. */
const UNREACHABLE = new Set([-195, -185, -187]);
const UNKNOWN_TOPIC = new Set([3, -188]);

export interface Watermarks {
  readonly partition: number;
  /** Log start offset: the first offset still stored. */
  readonly low: bigint;
  /** Log end offset: the offset the next message gets. */
  readonly high: bigint;
}

export interface PartitionRange {
  readonly partition: number;
  /** First offset to read. */
  readonly from: bigint;
  /** Read up to, not including, this offset. */
  readonly to: bigint;
}

/** A stored Kafka record as the CLI reads it. */
export interface TopicRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, string>;
  /** The headers as stored: in order, repeats included, values as bytes (null: no value). */
  readonly headerList: ReadonlyArray<readonly [string, Buffer | null]>;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
}

export interface GroupMember {
  readonly memberId: string;
  readonly clientId: string;
  readonly host: string;
  readonly instanceId?: string;
}

export interface GroupOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
}

export class CliKafka {
  readonly timeoutMs: number;
  private readonly config: ConveyorConfig;
  private readonly admin: Admin;
  private connected: Promise<void> | undefined;
  private readonly where: string;
  private readonly consumers = new Set<RdKafkaConsumer>();

  constructor(config: ConveyorConfig) {
    this.config = config;
    this.timeoutMs = config.kafka.timeoutSeconds * 1000;
    this.where = config.kafka.bootstrapServers;
    this.admin = createKafka(kafkaClientOptions(config, `${config.app.name}-cli`)).admin();
  }

  /** Every topic of the cluster; also the first sign of whether the cluster answers. */
  async topics(): Promise<Set<string>> {
    return new Set(await this.request('listing topics', () => this.admin.listTopics({ timeout: this.timeoutMs })));
  }

  /** Log start and end offset of every partition of `topic`. */
  async watermarks(topic: string): Promise<Watermarks[]> {
    const offsets = await this.request(`reading the offsets of ${topic}`, () => this.admin.fetchTopicOffsets(topic, { timeout: this.timeoutMs } as never), topic);
    return offsets.map((o) => ({ partition: o.partition, low: BigInt(o.low), high: BigInt(o.high) })).sort((a, b) => a.partition - b.partition);
  }

  /** Per partition: the first offset whose timestamp is at or after `timeMs` (the end offset when none is). */
  async offsetsForTime(topic: string, timeMs: number): Promise<Map<number, bigint>> {
    const offsets = await this.request(`looking up the offsets of ${topic} at ${new Date(timeMs).toISOString()}`, () =>
      this.admin.fetchTopicOffsetsByTimestamp(topic, timeMs, { timeout: this.timeoutMs } as never),
    topic);
    return new Map(offsets.map((o) => [o.partition, BigInt(o.offset)]));
  }

  /** The group's committed offsets for `topic` (-1n: none). */
  async committed(group: string, topic: string): Promise<Map<number, bigint>> {
    const [entry] = await this.request(`reading the committed offsets of group ${group}`, () =>
      this.admin.fetchOffsets({ groupId: group, topics: [topic], timeout: this.timeoutMs }),
    );
    return new Map((entry?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
  }

  /** The group's current members (empty when the group is empty or does not exist). */
  async members(group: string): Promise<GroupMember[]> {
    const { groups } = await this.request(`describing group ${group}`, () => this.admin.describeGroups([group], { timeout: this.timeoutMs }));
    const described = groups.find((g) => g.groupId === group);
    return (described?.members ?? []).map((m) => ({
      memberId: m.memberId,
      clientId: m.clientId,
      host: m.clientHost,
      ...(m.groupInstanceId ? { instanceId: m.groupInstanceId } : {}),
    }));
  }

  /** Creates a compacted single-partition topic unless it exists. */
  async ensureCompactedTopic(topic: string): Promise<void> {
    if ((await this.topics()).has(topic)) return;
    await this.request(`creating topic ${topic}`, () =>
      this.admin.createTopics({
        topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
        timeout: this.timeoutMs,
      }),
    );
  }

  /**
   * Reads each range of `topic` in offset order (partitions interleaved), calling `onRecord` for every record;
   * `onProgress` gets the number of offsets covered so far. Resolves once every range is read to its end.
   */
  async read(topic: string, ranges: readonly PartitionRange[], onRecord: (record: TopicRecord) => void, onProgress?: (covered: number) => void): Promise<void> {
    const open = ranges.filter((r) => r.from < r.to);
    if (open.length === 0) return;
    const consumer = await this.consumer(`conveyor-cli-reader-${randomUUID()}`, { 'enable.partition.eof': true });
    try {
      const pending = new Map(open.map((r) => [r.partition, r]));
      const reached = new Map(open.map((r) => [r.partition, r.from]));
      const covered = (): number => open.reduce((n, r) => n + Number((reached.get(r.partition) ?? r.from) - r.from), 0);
      consumer.on('partition.eof', (eof: { partition: number; offset: number }) => {
        // the end of what is stored: anything of the range not read by now does not exist (deleted meanwhile)
        if (pending.delete(eof.partition)) reached.set(eof.partition, open.find((r) => r.partition === eof.partition)!.to);
      });
      consumer.assign(open.map((r) => ({ topic, partition: r.partition, offset: Number(r.from) })));
      let idleSince = Date.now();
      while (pending.size > 0) {
        const messages = await new Promise<Message[]>((resolve, reject) => consumer.consume(500, (err, got) => (err ? reject(err) : resolve(got))));
        if (messages.length > 0) idleSince = Date.now();
        for (const m of messages) {
          const range = pending.get(m.partition);
          if (!range) continue;
          const offset = BigInt(m.offset);
          if (offset < range.to) onRecord(toRecord(m));
          reached.set(m.partition, offset + 1n > range.to ? range.to : offset + 1n);
          if (offset + 1n >= range.to) pending.delete(m.partition);
        }
        onProgress?.(covered());
        if (pending.size > 0 && Date.now() - idleSince > this.timeoutMs) {
          throw this.unavailable(`reading ${topic}`, new Error(`no records for ${this.timeoutMs} ms with partitions ${[...pending.keys()].join(', ')} not read to their end`));
        }
      }
    } catch (err) {
      throw this.failure(`reading ${topic}`, err);
    } finally {
      await this.release(consumer);
    }
  }

  /**
   * Commits these offsets for `group` without joining it (an offset commit outside any generation). Check that
   * the group has no members first: brokers do not always refuse such a commit from outside a live group (Kafka
   * 4.3 accepts it), and its members would overwrite it. Where a broker does refuse it, that is `events.group.active`.
   */
  async commit(group: string, offsets: readonly GroupOffset[]): Promise<void> {
    const consumer = await this.consumer(group, {});
    try {
      await this.bounded(
        `committing offsets for group ${group}`,
        new Promise<void>((resolve, reject) => {
          (consumer as unknown as { commitCb(toppars: unknown, cb: (err: Error | null) => void): void }).commitCb(
            offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: Number(o.offset) })),
            (err) => (err ? reject(err) : resolve()),
          );
        }),
      );
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      // 22 ILLEGAL_GENERATION, 25 UNKNOWN_MEMBER_ID, 27 REBALANCE_IN_PROGRESS: someone joined since we looked
      if (code === 22 || code === 25 || code === 27) {
        throw new ConveyorError('events.group.active', `group ${group} refused the new offsets: it has members now (${(err as Error).message}). Stop its consumers, then run this again.`, {
          context: { group },
          cause: err,
        });
      }
      throw this.failure(`committing offsets for group ${group}`, err);
    } finally {
      await this.release(consumer);
    }
  }

  async close(): Promise<void> {
    for (const consumer of this.consumers) await this.release(consumer);
    if (this.connected) await this.admin.disconnect().catch(() => {});
  }

  private async consumer(groupId: string, extra: Record<string, unknown>): Promise<RdKafkaConsumer> {
    const consumer = assignedConsumer({
      brokers: this.config.kafka.bootstrapServers,
      clientId: `${this.config.app.name}-cli`,
      groupId,
      security: securityProperties(this.config),
      consumeTimeoutMs: 200,
      properties: extra,
    });
    this.consumers.add(consumer);
    await this.bounded(
      'connecting',
      connectConsumer(consumer, { timeout: this.timeoutMs }),
    ).catch((err: unknown) => {
      this.consumers.delete(consumer);
      throw this.failure('connecting', err);
    });
    return consumer;
  }

  private async release(consumer: RdKafkaConsumer): Promise<void> {
    if (!this.consumers.delete(consumer)) return;
    await Promise.race([new Promise<void>((resolve) => consumer.disconnect(() => resolve())), new Promise((r) => setTimeout(r, this.timeoutMs))]).catch(() => {});
  }

  /** An admin request: connected first, bounded, its failure translated. `topic`: a missing topic is named. */
  private async request<T>(what: string, call: () => Promise<T>, topic?: string): Promise<T> {
    try {
      this.connected ??= this.admin.connect();
      await this.bounded(what, this.connected);
      return await this.bounded(what, call());
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (topic !== undefined && UNKNOWN_TOPIC.has(code as number)) {
        throw new ConveyorError('conveyor.kafka.unknown_topic', `topic ${topic} does not exist on Kafka at ${this.where}`, { context: { topic }, cause: err });
      }
      throw this.failure(what, err);
    }
  }

  private async bounded<T>(what: string, work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(this.unavailable(what, new Error(`no answer within ${this.timeoutMs} ms`))), this.timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private failure(what: string, err: unknown): ConveyorError {
    if (err instanceof ConveyorError) return err;
    if (UNREACHABLE.has((err as { code?: unknown }).code as number)) return this.unavailable(what, err);
    return new ConveyorError('conveyor.kafka.request_failed', `${what} on Kafka at ${this.where} failed: ${(err as Error).message}`, { cause: err });
  }

  private unavailable(what: string, err: unknown): BrokerFailure {
    return new BrokerFailure(
      `Kafka at ${this.where} did not answer (${what}: ${(err as Error).message}). Check kafka.bootstrapServers (KAFKA_BOOTSTRAP_SERVERS) ` +
        'and that the brokers are up; KAFKA_TIMEOUT_SECONDS sets how long to wait.',
      { cause: err },
    );
  }
}

function toRecord(m: Message): TopicRecord {
  const headers: Record<string, string> = {};
  const headerList: Array<readonly [string, Buffer | null]> = [];
  for (const header of (m.headers ?? []) as MessageHeader[]) {
    for (const [name, value] of Object.entries(header)) {
      headers[name] = Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
      headerList.push([name, value === null || value === undefined ? null : Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'utf8')]);
    }
  }
  const key = m.key === undefined || m.key === null ? null : Buffer.isBuffer(m.key) ? m.key : Buffer.from(String(m.key));
  return {
    topic: m.topic,
    partition: m.partition,
    offset: BigInt(m.offset),
    key,
    value: m.value ?? null,
    headers,
    headerList,
    timestamp: m.timestamp ?? 0,
  };
}

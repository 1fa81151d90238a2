/**
 * The Kafka operations the CLI needs, each bounded by `kafka.timeoutSeconds` (KAFKA_TIMEOUT_SECONDS): an unreachable
 * cluster fails with `events.broker.unavailable` (exit 69) instead of hanging. Everything goes through the admin
 * port (kafka/admin.ts, pure JavaScript): metadata and offsets, group descriptions, reading partitions with Fetch
 * requests and committing a group's offsets from outside it, so the CLI never joins a consumer group (it would
 * trigger a rebalance) and holds no native client (a never-seen group or a fresh cluster crashed the native one).
 */
import type { ConveyorConfig } from '../config/schema.ts';
import { KafkaAdmin, kafkaAdminOptions, type GroupMember, type StoredRecord, type PartitionRange, type TopicPartitionOffset, type Watermarks } from '../kafka/admin.ts';

export type { GroupMember, PartitionRange, Watermarks };
export type GroupOffset = TopicPartitionOffset;

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

export class CliKafka {
  readonly timeoutMs: number;
  private readonly admin: KafkaAdmin;

  constructor(config: ConveyorConfig) {
    this.admin = new KafkaAdmin(kafkaAdminOptions(config, `${config.app.name}-cli`));
    this.timeoutMs = this.admin.timeoutMs;
  }

  /** Every topic of the cluster; also the first sign of whether the cluster answers. */
  topics(): Promise<Set<string>> {
    return this.admin.topics();
  }

  /** Log start and end offset of every partition of `topic` (`conveyor.kafka.unknown_topic` when it does not exist). */
  watermarks(topic: string): Promise<Watermarks[]> {
    return this.admin.topicOffsets(topic);
  }

  /** Per partition: the first offset whose timestamp is at or after `timeMs` (the end offset when none is). */
  offsetsForTime(topic: string, timeMs: number): Promise<Map<number, bigint>> {
    return this.admin.offsetsByTimestamp(topic, timeMs);
  }

  /** The group's committed offsets for `topic`; partitions without one are absent (a never-seen group: none). */
  async committed(group: string, topic: string): Promise<Map<number, bigint>> {
    return (await this.admin.committedOffsets(group, [topic])).get(topic) ?? new Map();
  }

  /** The group's current members (empty when the group is empty or does not exist). */
  async members(group: string): Promise<GroupMember[]> {
    return [...(await this.admin.describeGroup(group)).members];
  }

  /** Creates a compacted single-partition topic unless it exists. */
  async ensureCompactedTopic(topic: string): Promise<void> {
    if ((await this.topics()).has(topic)) return;
    await this.admin.createTopic(topic, 1, { 'cleanup.policy': 'compact' });
  }

  /**
   * Reads each range of `topic` in offset order (partitions interleaved), calling `onRecord` for every record;
   * `onProgress` gets the number of offsets covered so far. Resolves once every range is read to its end.
   */
  async read(topic: string, ranges: readonly PartitionRange[], onRecord: (record: TopicRecord) => void, onProgress?: (covered: number) => void): Promise<void> {
    await this.admin.read(topic, ranges, (r) => onRecord(toRecord(r)), onProgress);
  }

  /**
   * Commits these offsets for `group` without joining it (an offset commit outside any generation). Check that
   * the group has no members first: brokers do not always refuse such a commit from outside a live group (Kafka
   * 4.3 accepts it), and its members would overwrite it. Where a broker does refuse it, that is `events.group.active`.
   */
  commit(group: string, offsets: readonly GroupOffset[]): Promise<void> {
    return this.admin.alterGroupOffsets(group, offsets);
  }

  async close(): Promise<void> {
    await this.admin.close();
  }
}

function toRecord(r: StoredRecord): TopicRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of r.headers) headers[name] = value === null ? '' : value.toString('utf8');
  // as stored: every header in its order, repeats included, bytes as they are
  return { topic: r.topic, partition: r.partition, offset: r.offset, key: r.key, value: r.value, headers, headerList: r.headers, timestamp: r.timestamp };
}

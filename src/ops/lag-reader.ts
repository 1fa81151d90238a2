/**
 * Measures consumer groups' lag from outside the groups: committed offsets and partition ends through the admin
 * API, the age of the oldest uncommitted message through a MessageTimestampReader. Nothing here joins the
 * measured groups or commits anything.
 *
 * - lag (events) = end offset (high watermark) − the offset the group resumes from: its committed offset, or —
 *   when it has none, or the committed offset is outside the partition (deleted by retention, topic recreated) —
 *   where kafka.autoOffsetReset sends it: the partition's start (earliest) or its end (latest, so no lag).
 * - lag (time) = now − timestamp of the first message at that offset (the oldest one not yet committed).
 *   Timestamps are cached per (topic, partition, offset): a partition whose committed offset did not move since
 *   the last measurement costs no read.
 */
import type { ConveyorConfig } from '../config/schema.ts';
import { BrokerFailure, ConveyorError } from '../failure/errors.ts';
import { kafkaClientOptions, type Admin, type Kafka } from '../kafka/client.ts';
import { MessageTimestampReader, type OffsetPosition } from '../kafka/message-timestamps.ts';

/** A consumer group and the topics to measure it on; without topics, every topic it has committed offsets for. */
export interface GroupTopics {
  readonly group: string;
  readonly topics?: readonly string[];
}

export interface PartitionLag {
  readonly topic: string;
  readonly partition: number;
  /** The group's committed offset (the next message it will read), or null when it has committed none. */
  readonly committed: bigint | null;
  /** First offset still in the partition (low watermark). */
  readonly start: bigint;
  /** Offset after the last message (high watermark). */
  readonly end: bigint;
  /** Where the group resumes: the committed offset, or where auto.offset.reset sends it. */
  readonly position: bigint;
  /** Messages from `position` to `end`. */
  readonly lag: number;
  /** Age of the oldest message not yet committed, in seconds; 0 without lag. */
  readonly lagSeconds: number;
  /** Timestamp (epoch ms) of that message; null without lag or when it has none. */
  readonly oldestTimestamp: number | null;
}

export interface GroupLag {
  readonly group: string;
  readonly partitions: readonly PartitionLag[];
  /** Topics asked for that do not exist (nothing measured for them). */
  readonly missingTopics: readonly string[];
  /** When the lag in time was computed (epoch ms). */
  readonly measuredAt: number;
}

export interface LagReaderOptions {
  readonly kafka: Kafka;
  readonly config: ConveyorConfig;
  /** Limit for each broker request and for reading timestamps; default kafka.timeoutSeconds. */
  readonly timeoutMs?: number;
  /** The clock; Date.now by default. */
  readonly now?: () => number;
}

/**
 * Where a group resumes reading a partition, the way the consumer would decide it: the committed offset when it
 * lies within [start, end], else the auto.offset.reset position.
 */
export function resumePosition(committed: bigint | null, start: bigint, end: bigint, autoOffsetReset: 'earliest' | 'latest'): bigint {
  if (committed !== null && committed >= start && committed <= end) return committed;
  return autoOffsetReset === 'earliest' ? start : end;
}

/** Whole milliseconds as seconds, never negative (a producer's clock may run ahead of ours). */
export function ageSeconds(timestamp: number, now: number): number {
  return Math.max(0, Math.round(now - timestamp)) / 1000;
}

const UNKNOWN_TOPIC = 'ERR_UNKNOWN_TOPIC_OR_PART';
/** librdkafka codes that mean "the cluster did not answer": transport failure, timeout, all brokers down. */
const UNREACHABLE = new Set([-195, -185, -187]);

export class LagReader {
  readonly #kafka: Kafka;
  readonly #config: ConveyorConfig;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #timestamps: MessageTimestampReader;
  #admin: Admin | undefined;
  /** Timestamp of the first message at (topic, partition, offset), from earlier measurements. */
  #cache = new Map<string, number>();

  constructor(options: LagReaderOptions) {
    this.#kafka = options.kafka;
    this.#config = options.config;
    this.#timeoutMs = options.timeoutMs ?? options.config.kafka.timeoutSeconds * 1000;
    this.#now = options.now ?? Date.now;
    this.#timestamps = new MessageTimestampReader(kafkaClientOptions(options.config, options.config.app.name));
  }

  /**
   * One measurement of every group. Rejects with BrokerFailure (events.broker.unavailable) when Kafka does not
   * answer in time, with a ConveyorError (conveyor.kafka.request_failed) when it refuses a request.
   */
  async measure(groups: readonly GroupTopics[]): Promise<GroupLag[]> {
    const admin = await this.#connect();
    const timeout = this.#timeoutMs;
    const committed = await Promise.all(
      groups.map(async ({ group, topics }) => {
        const entries = await admin
          .fetchOffsets({ groupId: group, ...(topics ? { topics: [...topics] } : {}), timeout } as never)
          .catch((error: unknown) => {
            throw this.#failure(`cannot read the committed offsets of group ${group}`, error);
          });
        const offsets = new Map<string, bigint>();
        for (const entry of entries) {
          for (const p of entry.partitions) {
            const offset = BigInt(p.offset);
            if (offset >= 0n) offsets.set(key(entry.topic, p.partition), offset);
          }
        }
        return { group, topics: topics ?? [...new Set(entries.map((e) => e.topic))].sort(), offsets };
      }),
    );

    const ends = new Map<string, Array<{ partition: number; start: bigint; end: bigint }> | null>();
    await Promise.all(
      [...new Set(committed.flatMap((c) => c.topics))].map(async (topic) => {
        try {
          const offsets = await admin.fetchTopicOffsets(topic, { timeout } as never);
          ends.set(topic, offsets.map((o) => ({ partition: o.partition, start: BigInt(o.low), end: BigInt(o.high) })).sort((a, b) => a.partition - b.partition));
        } catch (error) {
          if ((error as { type?: string }).type !== UNKNOWN_TOPIC) throw this.#failure(`cannot read the end offsets of topic ${topic}`, error);
          ends.set(topic, null);
        }
      }),
    );

    const reset = this.#config.kafka.autoOffsetReset;
    const measured = committed.map(({ group, topics, offsets }) => ({
      group,
      missingTopics: topics.filter((t) => ends.get(t) === null),
      partitions: topics.flatMap((topic) =>
        (ends.get(topic) ?? []).map(({ partition, start, end }) => {
          const committedOffset = offsets.get(key(topic, partition)) ?? null;
          const position = resumePosition(committedOffset, start, end, reset);
          return { topic, partition, committed: committedOffset, start, end, position, lag: Number(end - position) };
        }),
      ),
    }));

    const timestamps = await this.#oldestTimestamps(measured.flatMap((g) => g.partitions.filter((p) => p.lag > 0).map(({ topic, partition, position }) => ({ topic, partition, offset: position }))));
    const now = this.#now();
    return measured.map((g) => ({
      group: g.group,
      missingTopics: g.missingTopics,
      measuredAt: now,
      partitions: g.partitions.map((p) => {
        const oldestTimestamp = p.lag > 0 ? (timestamps.get(key(p.topic, p.partition, p.position)) ?? null) : null;
        return { ...p, oldestTimestamp, lagSeconds: oldestTimestamp === null ? 0 : ageSeconds(oldestTimestamp, now) };
      }),
    }));
  }

  /** Disconnects the admin client and the timestamp reader; a later measure() connects again. */
  async close(): Promise<void> {
    const admin = this.#admin;
    this.#admin = undefined;
    await Promise.all([admin?.disconnect().catch(() => {}), this.#timestamps.close()]);
  }

  /** Kafka did not answer: BrokerFailure (events.broker.unavailable); it answered with an error: that error. */
  #failure(what: string, error: unknown): ConveyorError {
    const reason = error instanceof Error ? error.message : String(error);
    const servers = this.#config.kafka.bootstrapServers;
    if (UNREACHABLE.has((error as { code?: unknown }).code as number)) {
      return new BrokerFailure(
        `${what}: Kafka at ${servers} did not answer within ${this.#timeoutMs / 1000} s (${reason}). Check kafka.bootstrapServers ` +
          '(KAFKA_BOOTSTRAP_SERVERS) and that the brokers are up; KAFKA_TIMEOUT_SECONDS sets how long to wait.',
        { cause: error },
      );
    }
    return new ConveyorError('conveyor.kafka.request_failed', `${what}: Kafka at ${servers} answered with an error: ${reason}`, { cause: error });
  }

  async #connect(): Promise<Admin> {
    if (this.#admin) return this.#admin;
    const admin = this.#kafka.admin();
    await admin.connect().catch((error: unknown) => {
      throw this.#failure('cannot connect to Kafka', error);
    });
    this.#admin = admin;
    return admin;
  }

  /** Timestamps of the first message at each position, from the cache or one read; the cache keeps only these. */
  async #oldestTimestamps(positions: readonly OffsetPosition[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    const toRead: OffsetPosition[] = [];
    for (const p of positions) {
      const cached = this.#cache.get(key(p.topic, p.partition, p.offset));
      if (cached === undefined) toRead.push(p);
      else found.set(key(p.topic, p.partition, p.offset), cached);
    }
    const read = await this.#timestamps.read(toRead, this.#timeoutMs);
    // an answer of null (nothing readable yet at that offset) is not cached: a message may arrive there later
    toRead.forEach((p, i) => {
      const timestamp = read[i];
      if (timestamp !== null && timestamp !== undefined) found.set(key(p.topic, p.partition, p.offset), timestamp);
    });
    this.#cache = new Map(found);
    return found;
  }
}

const key = (topic: string, partition: number, offset?: bigint): string => `${topic}\u0000${partition}\u0000${offset ?? ''}`;


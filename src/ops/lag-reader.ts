/**
 * Measures consumer groups' lag from outside the groups: committed offsets, partition ends and the age of the
 * oldest uncommitted message, all through the admin port (kafka/admin.ts). Nothing here joins the measured groups
 * or commits anything. A group the cluster has never seen has no committed offsets (it is not an error).
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
import { KafkaAdmin, kafkaAdminOptions } from '../kafka/admin.ts';

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
  readonly config: ConveyorConfig;
  /** The admin port to measure through; by default one of its own, from the configuration. */
  readonly admin?: KafkaAdmin;
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

export class LagReader {
  readonly #config: ConveyorConfig;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #admin: KafkaAdmin;
  /** Timestamp of the first message at (topic, partition, offset), from earlier measurements. */
  #cache = new Map<string, number>();

  constructor(options: LagReaderOptions) {
    this.#config = options.config;
    this.#timeoutMs = options.timeoutMs ?? options.config.kafka.timeoutSeconds * 1000;
    this.#now = options.now ?? Date.now;
    this.#admin = options.admin ?? new KafkaAdmin(kafkaAdminOptions(options.config, `${options.config.app.name}-lag`, this.#timeoutMs));
  }

  /**
   * One measurement of every group. Rejects with BrokerFailure (events.broker.unavailable) when Kafka does not
   * answer in time, with a ConveyorError (conveyor.kafka.request_failed) when it refuses a request.
   */
  async measure(groups: readonly GroupTopics[]): Promise<GroupLag[]> {
    const admin = this.#admin;
    const committed = await Promise.all(
      groups.map(async ({ group, topics }) => {
        const byTopic = await admin.committedOffsets(group, topics);
        const offsets = new Map<string, bigint>();
        for (const [topic, partitions] of byTopic) for (const [partition, offset] of partitions) offsets.set(key(topic, partition), offset);
        return { group, topics: topics ?? [...byTopic.keys()].sort(), offsets };
      }),
    );

    const ends = new Map<string, Array<{ partition: number; start: bigint; end: bigint }> | null>();
    await Promise.all(
      [...new Set(committed.flatMap((c) => c.topics))].map(async (topic) => {
        try {
          const offsets = await admin.topicOffsets(topic);
          ends.set(topic, offsets.map((o) => ({ partition: o.partition, start: o.low, end: o.high })));
        } catch (error) {
          if ((error as ConveyorError).code !== 'conveyor.kafka.unknown_topic') throw error;
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

    const timestamps = await this.#oldestTimestamps(measured.flatMap((g) => g.partitions.filter((p) => p.lag > 0).map(({ topic, partition, position, end }) => ({ topic, partition, offset: position, end }))));
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

  /** Closes the admin connections; a later measure() connects again. */
  async close(): Promise<void> {
    await this.#admin.close();
  }

  /** Timestamps of the first message at each position, from the cache or one read; the cache keeps only these. */
  async #oldestTimestamps(positions: ReadonlyArray<{ topic: string; partition: number; offset: bigint; end: bigint }>): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    const toRead = new Map<string, Array<{ partition: number; from: bigint; to: bigint }>>();
    for (const p of positions) {
      const cached = this.#cache.get(key(p.topic, p.partition, p.offset));
      if (cached !== undefined) {
        found.set(key(p.topic, p.partition, p.offset), cached);
        continue;
      }
      const ranges = toRead.get(p.topic) ?? [];
      // two groups at different offsets of one partition: each read on its own
      ranges.push({ partition: p.partition, from: p.offset, to: p.end });
      toRead.set(p.topic, ranges);
    }
    for (const [topic, ranges] of toRead) {
      for (const round of byPartition(ranges)) {
        const from = new Map(round.map((r) => [r.partition, r.from]));
        // the first record at or after the offset answers (then that partition is done); none before the end (only
        // transaction markers left) or no timestamp is no answer, and is not cached: a message may arrive there later
        await this.#admin.read(topic, round, (record) => {
          const offset = from.get(record.partition);
          if (offset !== undefined && record.timestamp > 0) found.set(key(topic, record.partition, offset), record.timestamp);
          return false;
        });
      }
    }
    this.#cache = new Map(found);
    return found;
  }
}

/** Ranges split so that no round holds two of one partition. */
function byPartition<T extends { partition: number }>(ranges: readonly T[]): T[][] {
  const rounds: T[][] = [];
  for (const r of ranges) {
    const round = rounds.find((x) => !x.some((y) => y.partition === r.partition));
    if (round) round.push(r);
    else rounds.push([r]);
  }
  return rounds;
}

const key = (topic: string, partition: number, offset?: bigint): string => `${topic}\u0000${partition}\u0000${offset ?? ''}`;

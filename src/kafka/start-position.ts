/**
 * Where a newly assigned partition starts reading. A committed offset always wins. Without one, the configured
 * `autoOffsetReset` applies only to the group's very first start on a topic; a partition that appeared after that
 * (partitions added to the topic, a topic created after start-up, a partition the group never committed while it
 * had committed others) is read from its beginning, so nothing produced to it meanwhile is skipped. When in doubt
 * (the facts could not be read), from the beginning: repeating is allowed, skipping is not.
 *
 * The consumer itself is configured with auto.offset.reset=earliest, so "earliest" needs no action; "latest" is
 * applied by assigning the partition at its end offset, read just then, and committing that offset at once, so
 * that every later owner of the partition finds a committed offset (the group's start is pinned).
 */
import type { CommittedPosition } from './admin.ts';

/** What is known about one assigned partition when it is assigned. */
export interface PartitionFacts {
  readonly partition: number;
  /** The group has a committed offset for this partition (undefined: could not be read). */
  readonly committed: boolean | undefined;
  /** Partitions the topic had when this member started (0: the topic did not exist; undefined: unknown). */
  readonly partitionsAtStart: number | undefined;
  /** The group has a committed offset for another partition of the same topic (undefined: could not be read). */
  readonly siblingsCommitted: boolean | undefined;
}

export type StartDecision =
  /** Resume from the committed offset (librdkafka reads it). */
  | { readonly start: 'committed' }
  /** From the beginning of the partition. */
  | { readonly start: 'earliest'; readonly reason: 'configured' | 'new-partition' | 'new-topic' | 'never-committed' | 'unknown' }
  /** From its end as of now, pinned by a commit: the group's first start with autoOffsetReset latest. */
  | { readonly start: 'latest' };

export function decideStart(facts: PartitionFacts, autoOffsetReset: 'earliest' | 'latest'): StartDecision {
  if (facts.committed === true) return { start: 'committed' };
  if (facts.committed === undefined || facts.partitionsAtStart === undefined || facts.siblingsCommitted === undefined) {
    return { start: 'earliest', reason: 'unknown' };
  }
  if (facts.partitionsAtStart === 0) return { start: 'earliest', reason: 'new-topic' };
  if (facts.partition >= facts.partitionsAtStart) return { start: 'earliest', reason: 'new-partition' };
  if (facts.siblingsCommitted) return { start: 'earliest', reason: 'never-committed' };
  return autoOffsetReset === 'latest' ? { start: 'latest' } : { start: 'earliest', reason: 'configured' };
}

/** What the source asks the cluster about its topics and group, outside its consumer (the admin port, admin.ts). */
export interface TopicInspector {
  /** Partitions each topic has now; 0 for a topic that does not exist. */
  partitionCounts(topics: readonly string[]): Promise<Map<string, number>>;
  /** The end offset (the offset the next message will get) of each given partition of a topic. */
  endOffsets(topic: string, partitions: readonly number[]): Promise<Map<number, bigint>>;
  /** The group's committed offsets and their metadata per topic and partition; only partitions with one appear. */
  committedPositions(group: string, topics: readonly string[]): Promise<Map<string, Map<number, CommittedPosition>>>;
}

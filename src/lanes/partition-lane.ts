/**
 * One lane per (group, topic, partition) — or per queue — holds the records received and not yet acknowledged:
 * waiting, running, or waiting for a retry. Pure bookkeeping (no I/O): how many records and bytes it holds (its
 * bound: the caller pauses the partition above it and resumes below the low-water mark), and, through the
 * handler's ordering strategy (src/scheduling/), which of them may start now.
 */
import type { IHeaders } from '../kafka/client.ts';
import { createOrdering } from '../scheduling/create-ordering.ts';
import type { Ordering, OrderingMode, Unit } from '../scheduling/ordering.ts';

export interface LaneRecord {
  readonly offset: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: IHeaders;
  /** Broker timestamp, ms since the epoch, as the client reports it (a decimal string). */
  readonly timestamp: string;
  /** Bytes the record holds in memory (key + value + headers), for the lane's byte bound. */
  readonly size: number;
  /** RabbitMQ: the attempt this delivery is (from Conveyor's attempt header); Kafka retries in-lane instead. */
  readonly attempt?: number;
  /** RabbitMQ: the exchange it was first published to ('' for the default exchange). */
  readonly exchange?: string;
}

export interface LaneLimits {
  /** Pause the partition above this many records held (waiting, running or in retry) ... */
  readonly maxMessages: number;
  /** ... or this many bytes. */
  readonly maxBytes: number;
  /** Resume once both are below this fraction of their limit. */
  readonly resumeRatio: number;
}

export class PartitionLane {
  readonly topic: string;
  readonly partition: number;
  /** Replaced when the source re-divides its memory among its partitions (a rebalance). */
  limits: LaneLimits;
  private readonly ordering: Ordering<LaneRecord>;
  private held = 0;
  private heldBytes = 0;
  /** The consumer was asked to pause this partition. */
  paused = false;
  /** Revoked or shut down: takes nothing new. */
  closed = false;

  constructor(topic: string, partition: number, limits: LaneLimits, ordering: OrderingMode = 'partition') {
    this.topic = topic;
    this.partition = partition;
    this.limits = limits;
    this.ordering = createOrdering<LaneRecord>(ordering);
  }

  /** Records held: received and not yet acknowledged. */
  get size(): number {
    return this.held;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  /** Records waiting to start (the rest of `size` is running or waiting for a retry). */
  get waiting(): number {
    return this.ordering.waiting;
  }

  push(record: LaneRecord): void {
    if (this.closed) return;
    this.held += 1;
    this.heldBytes += record.size;
    this.ordering.add(record);
  }

  /** Above a limit and not yet paused: the caller should pause the partition. */
  shouldPause(): boolean {
    return !this.paused && !this.closed && (this.held >= this.limits.maxMessages || this.heldBytes >= this.limits.maxBytes);
  }

  /** Paused and drained below the low-water mark: the caller should resume the partition. */
  shouldResume(): boolean {
    return (
      this.paused &&
      !this.closed &&
      this.held < this.limits.maxMessages * this.limits.resumeRatio &&
      this.heldBytes < this.limits.maxBytes * this.limits.resumeRatio
    );
  }

  /** Units of records that may start now (see Ordering.take); nothing once closed. */
  take(maxRecords: number, maxUnits: number, concurrency?: number): Array<Unit<LaneRecord>> {
    if (this.closed) return [];
    return this.ordering.take(maxRecords, maxUnits, concurrency);
  }

  /** A taken record left the lane: acknowledged (handled or dead-lettered, or handed to a delayed retry). */
  done(record: LaneRecord): void {
    if (this.closed) return;
    this.held -= 1;
    this.heldBytes -= record.size;
    this.ordering.done(record);
  }

  /** Taken records that must run (again): they wait once more, in their order. */
  giveBack(records: readonly LaneRecord[]): void {
    if (this.closed || records.length === 0) return;
    this.ordering.giveBack(records);
  }

  /** Drops everything held (revocation, shutdown): none of it is acknowledged, so none of it is committed. */
  close(): number {
    const dropped = this.held;
    this.closed = true;
    this.ordering.clear();
    this.held = 0;
    this.heldBytes = 0;
    return dropped;
  }
}

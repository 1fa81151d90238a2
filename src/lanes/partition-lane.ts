/**
 * One lane per (group, topic, partition): the queue of received messages waiting for the worker pool.
 * Pure bookkeeping (no I/O): what is queued, how many bytes, whether the partition should be paused or
 * resumed at the consumer, and which micro-batch to hand a worker next. At most one batch is out at a time.
 */
import type { IHeaders } from '../kafka/client.ts';

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
  /** Pause the partition above this many queued messages ... */
  readonly maxMessages: number;
  /** ... or this many queued bytes. */
  readonly maxBytes: number;
  /** Resume once both are below this fraction of their limit. */
  readonly resumeRatio: number;
}

export class PartitionLane {
  readonly topic: string;
  readonly partition: number;
  /** Replaced when the source re-divides its memory among its partitions (a rebalance). */
  limits: LaneLimits;
  private readonly queue: LaneRecord[] = [];
  private head = 0;
  private queuedBytes = 0;
  /** A batch is with a worker (or the lane is retrying / dead-lettering its head). */
  busy = false;
  /** The consumer was asked to pause this partition. */
  paused = false;
  /** Revoked or shut down: takes nothing new. */
  closed = false;

  constructor(topic: string, partition: number, limits: LaneLimits) {
    this.topic = topic;
    this.partition = partition;
    this.limits = limits;
  }

  get size(): number {
    return this.queue.length - this.head;
  }

  get bytes(): number {
    return this.queuedBytes;
  }

  push(record: LaneRecord): void {
    this.queue.push(record);
    this.queuedBytes += record.size;
  }

  /** Above a limit and not yet paused: the caller should pause the partition. */
  shouldPause(): boolean {
    return !this.paused && !this.closed && (this.size >= this.limits.maxMessages || this.queuedBytes >= this.limits.maxBytes);
  }

  /** Paused and drained below the low-water mark: the caller should resume the partition. */
  shouldResume(): boolean {
    return (
      this.paused &&
      !this.closed &&
      this.size < this.limits.maxMessages * this.limits.resumeRatio &&
      this.queuedBytes < this.limits.maxBytes * this.limits.resumeRatio
    );
  }

  /** Up to `max` consecutive records from the head, left in the queue until `release`d. */
  peekBatch(max: number): LaneRecord[] {
    return this.queue.slice(this.head, this.head + Math.max(1, max));
  }

  /** Removes the first `count` records (acknowledged, or dead-lettered). */
  release(count: number): void {
    const end = Math.min(this.head + count, this.queue.length);
    for (let i = this.head; i < end; i++) this.queuedBytes -= this.queue[i]!.size;
    this.head = end;
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Drops everything queued (revocation, shutdown): none of it is acknowledged, so none of it is committed. */
  close(): number {
    const dropped = this.size;
    this.closed = true;
    this.queue.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
    return dropped;
  }
}

/**
 * What may be committed for one partition. Offsets are registered in the order they were received and
 * acknowledged in any order; the committable watermark is the offset after the longest acknowledged prefix.
 * Kafka offsets need not be contiguous (compaction, transaction markers), so the tracker only ever relies
 * on the order of receipt, never on offset arithmetic beyond "+1 of the last acknowledged".
 */
export class OffsetTracker {
  /** Received offsets not yet below the watermark, in order of receipt. */
  private readonly pending: bigint[] = [];
  private readonly acked = new Set<bigint>();
  private head = 0;
  private watermark: bigint | undefined;
  private committed: bigint | undefined;

  /** Registers a received offset; offsets must arrive in increasing order. */
  track(offset: bigint): void {
    const last = this.lastTracked();
    if (last !== undefined && offset <= last) {
      throw new RangeError(`offset ${offset} tracked after ${last}: offsets of a partition must increase`);
    }
    this.pending.push(offset);
  }

  /** The last offset registered, if any (to skip a re-fetch of messages the lane already holds). */
  lastTracked(): bigint | undefined {
    return this.pending.length > this.head ? this.pending[this.pending.length - 1] : this.watermark === undefined ? undefined : this.watermark - 1n;
  }

  /** Marks an offset handled or dead-lettered. Unknown offsets (e.g. from a revoked assignment) are ignored. */
  ack(offset: bigint): void {
    if (this.head >= this.pending.length) return;
    const first = this.pending[this.head]!;
    if (offset < first) return;
    if (offset === first && this.acked.size === 0) {
      // the common case (a lane acknowledges in order): no set bookkeeping
      this.watermark = offset + 1n;
      this.head += 1;
      this.compact();
      return;
    }
    this.acked.add(offset);
    while (this.head < this.pending.length && this.acked.has(this.pending[this.head]!)) {
      const done = this.pending[this.head]!;
      this.acked.delete(done);
      this.watermark = done + 1n;
      this.head += 1;
    }
    this.compact();
  }

  /** Drops the acknowledged prefix now and then so the array does not grow without bound. */
  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
  }

  /** The next offset to commit (last contiguous acknowledged + 1), or undefined if nothing is acknowledged. */
  committable(): bigint | undefined {
    return this.watermark;
  }

  /** The watermark if it moved since the last `markCommitted`. */
  uncommitted(): bigint | undefined {
    return this.watermark !== undefined && this.watermark !== this.committed ? this.watermark : undefined;
  }

  markCommitted(offset: bigint): void {
    if (this.committed === undefined || offset > this.committed) this.committed = offset;
  }

  /** Tracked offsets not yet acknowledged (in flight, queued or failed). */
  get outstanding(): number {
    return this.pending.length - this.head;
  }
}

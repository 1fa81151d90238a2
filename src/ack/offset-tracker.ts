/**
 * What may be committed for one partition. Offsets are registered in the order they were received and
 * acknowledged in any order; the committable watermark is the offset after the longest acknowledged prefix.
 * Kafka offsets need not be contiguous (compaction, transaction markers), so the tracker only ever relies
 * on the order of receipt, never on offset arithmetic beyond "+1 of the last acknowledged".
 *
 * Offsets acknowledged beyond the watermark (`completedAhead`) travel in the commit's metadata
 * (completed-offsets.ts); the partition's next owner hands them to `restoreCompleted`, and `track` then reports
 * those offsets as done instead of to be handled (docs/commit-metadata.md).
 */
export class OffsetTracker {
  /** Received offsets not yet below the watermark, in order of receipt. */
  private readonly pending: bigint[] = [];
  private readonly acked = new Set<bigint>();
  private head = 0;
  private watermark: bigint | undefined;
  private committed: bigint | undefined;
  /** Bumped whenever the set of offsets acknowledged ahead of the watermark may have changed (not on the in-order path). */
  private aheadRevision = 0;
  private committedRevision = 0;
  /** Offsets a previous owner completed (ascending), from `restoredAt` on not yet received; undefined once all passed. */
  private restored: readonly bigint[] | undefined;
  private restoredAt = 0;

  /**
   * Registers a received offset; offsets must arrive in increasing order. Returns true when the message is to be
   * handled, false when a previous owner completed it (`restoreCompleted`): it is then acknowledged already.
   */
  track(offset: bigint): boolean {
    const last = this.lastTracked();
    if (last !== undefined && offset <= last) {
      throw new RangeError(`offset ${offset} tracked after ${last}: offsets of a partition must increase`);
    }
    this.pending.push(offset);
    if (this.restored === undefined) return true;
    return !this.passRestored(offset);
  }

  /**
   * Offsets the previous owner of the partition acknowledged beyond the committed offset this member resumes from
   * (ascending, as decoded from the commit's metadata): when they arrive, `track` reports them done. Only before
   * the first `track` — later, what this member received is what counts — returns false then and ignores them.
   */
  restoreCompleted(offsets: readonly bigint[]): boolean {
    if (this.pending.length > 0 || this.watermark !== undefined) return false;
    for (let i = 1; i < offsets.length; i++) if (offsets[i]! <= offsets[i - 1]!) return false;
    this.restored = offsets.length > 0 ? offsets : undefined;
    this.restoredAt = 0;
    return true;
  }

  /** Restored offsets are still to come (see `restoreCompleted`). */
  get restoring(): boolean {
    return this.restored !== undefined;
  }

  /** Moves the restored cursor up to `offset`; acknowledges `offset` and returns true when it is one of them. */
  private passRestored(offset: bigint): boolean {
    const restored = this.restored!;
    let at = this.restoredAt;
    while (at < restored.length && restored[at]! < offset) at += 1;
    const done = at < restored.length && restored[at] === offset;
    if (done) at += 1;
    this.restoredAt = at;
    if (at >= restored.length) this.restored = undefined;
    if (done) this.ack(offset);
    return done;
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
    this.aheadRevision += 1;
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

  /**
   * The offset to commit with `completedAhead()` in its metadata, if either changed since the last
   * `markCommitted`: the watermark, or before there is one (the first offset received is still in flight while
   * later ones completed) the first offset received, which this member resumed from.
   */
  uncommitted(): bigint | undefined {
    const offset = this.watermark ?? (this.acked.size > 0 ? this.pending[this.head] : undefined);
    if (offset === undefined) return undefined;
    return offset !== this.committed || this.aheadRevision !== this.committedRevision ? offset : undefined;
  }

  /**
   * Offsets completed beyond the commit offset (ascending): acknowledged ones, and restored ones not yet received
   * (the previous owner's claim is carried on until their records come). Allocates: call it per commit, not per message.
   */
  completedAhead(): bigint[] {
    const ahead = [...this.acked].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (this.restored === undefined) return ahead;
    const rest = this.restored.slice(this.restoredAt);
    if (ahead.length === 0) return rest;
    // every restored offset not yet received lies beyond every acknowledged one (they were all received)
    return ahead.concat(rest);
  }

  /** Where `completedAhead` stands: pass it to `markCommitted` along with the offset taken with it. */
  get revision(): number {
    return this.aheadRevision;
  }

  /** A commit of `offset` with the completed-ahead set of `revision` (default: now) was stored. */
  markCommitted(offset: bigint, revision = this.aheadRevision): void {
    if (this.committed === undefined || offset > this.committed) this.committed = offset;
    if (revision > this.committedRevision) this.committedRevision = revision;
  }

  /** Tracked offsets not yet acknowledged (in flight, queued or failed). */
  get outstanding(): number {
    return this.pending.length - this.head;
  }
}

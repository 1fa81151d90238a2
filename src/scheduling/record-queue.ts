/** A FIFO of records that also takes records back at its front (given back after a failed or interrupted run). */
export class RecordQueue<R> {
  private items: R[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  peek(): R | undefined {
    return this.items[this.head];
  }

  push(record: R): void {
    this.items.push(record);
  }

  /** Up to `max` records from the front. */
  shiftMany(max: number): R[] {
    const end = Math.min(this.items.length, this.head + max);
    const out = this.items.slice(this.head, end);
    for (let i = this.head; i < end; i++) this.items[i] = undefined as R;
    this.head = end;
    // drop the consumed front now and then, so the array does not grow without bound
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /** Puts `records` (in their order) back at the front. */
  unshiftAll(records: readonly R[]): void {
    if (records.length === 0) return;
    if (this.head >= records.length) {
      this.head -= records.length;
      for (let i = 0; i < records.length; i++) this.items[this.head + i] = records[i]!;
    } else {
      this.items = [...records, ...this.items.slice(this.head)];
      this.head = 0;
    }
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/**
 * `partition`: a lane runs one unit at a time — consecutive records from its head, one after another — and the
 * next unit starts only once every record of the previous one is done. A record in retry holds its whole lane.
 */
import type { Ordering, Schedulable, Unit } from './ordering.ts';
import { RecordQueue } from './record-queue.ts';

export class PartitionOrdering<R extends Schedulable> implements Ordering<R> {
  readonly mode = 'partition' as const;
  private readonly queue = new RecordQueue<R>();
  private taken = 0;

  get waiting(): number {
    return this.queue.length;
  }

  add(record: R): void {
    this.queue.push(record);
  }

  /** `concurrency` does not matter: a partition's records run one after another whatever the unit. */
  take(maxRecords: number, maxUnits: number): Array<Unit<R>> {
    if (this.taken > 0 || maxUnits < 1 || this.queue.length === 0) return [];
    const unit = this.queue.shiftMany(Math.max(1, maxRecords));
    this.taken = unit.length;
    return [unit];
  }

  done(_record: R): void {
    if (this.taken > 0) this.taken -= 1;
  }

  giveBack(records: readonly R[]): void {
    this.taken = Math.max(0, this.taken - records.length);
    this.queue.unshiftAll(records);
  }

  clear(): void {
    this.queue.clear();
    this.taken = 0;
  }
}

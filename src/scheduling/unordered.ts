/**
 * `unordered`: any waiting record may start at any time (oldest first, so the committed watermark keeps moving).
 * With fewer units allowed than records, records share units (they then run one after another). A record in retry
 * holds back nothing.
 */
import { byOffset, shareOfBacklog, splitIntoUnits, type Ordering, type Schedulable, type Unit } from './ordering.ts';
import { RecordQueue } from './record-queue.ts';

export class Unordered<R extends Schedulable> implements Ordering<R> {
  readonly mode = 'unordered' as const;
  private readonly queue = new RecordQueue<R>();

  get waiting(): number {
    return this.queue.length;
  }

  add(record: R): void {
    this.queue.push(record);
  }

  take(maxRecords: number, maxUnits: number, concurrency = maxUnits): Array<Unit<R>> {
    if (maxUnits < 1 || this.queue.length === 0) return [];
    const perUnit = shareOfBacklog(this.queue.length, concurrency);
    return splitIntoUnits(this.queue.shiftMany(Math.max(1, Math.min(maxRecords, maxUnits * perUnit))), maxUnits);
  }

  done(_record: R): void {}

  giveBack(records: readonly R[]): void {
    // oldest first again: given-back records were taken before anything still waiting
    this.queue.unshiftAll([...records].sort(byOffset));
  }

  clear(): void {
    this.queue.clear();
  }
}

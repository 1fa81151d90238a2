/**
 * `key`: records with the same key run one at a time, in offset order; records with different keys run at the same
 * time. Records without a key (null) are ordered among themselves as if they shared one key: nothing is reordered
 * that a producer may rely on. A record in retry holds back only its own key.
 *
 * Fairness: each key has at most one unit out, and units are handed out oldest key head first (a heap on the
 * offset of each ready key's first waiting record), so a hot key cannot starve the others and the partition's
 * committed watermark (held by its oldest record) moves first. With fewer units allowed than ready keys, a unit
 * carries several keys' records one after another (still one unit per key at a time, still in order per key).
 */
import { byOffset, shareOfBacklog, type Ordering, type Schedulable, type Unit } from './ordering.ts';
import { RecordQueue } from './record-queue.ts';

interface KeyState<R> {
  readonly id: string;
  readonly queue: RecordQueue<R>;
  /** Records of this key that are taken (running, or waiting for a retry). */
  taken: number;
}

/** Key of a record as a map key: latin1 maps bytes one to one (binary keys stay distinct) and costs no decoding. */
const NO_KEY = '\u0000conveyor:no-key';
function keyId(key: Buffer | null): string {
  return key === null ? NO_KEY : key.toString('latin1');
}

export class KeyOrdering<R extends Schedulable> implements Ordering<R> {
  readonly mode = 'key' as const;
  private readonly keys = new Map<string, KeyState<R>>();
  /** Keys with waiting records and none taken, as a binary min-heap on their first waiting record's offset. */
  private readonly ready: Array<KeyState<R>> = [];
  private waitingCount = 0;

  get waiting(): number {
    return this.waitingCount;
  }

  /** Keys with records waiting or taken (for tests and metrics). */
  get activeKeys(): number {
    return this.keys.size;
  }

  add(record: R): void {
    const id = keyId(record.key);
    let k = this.keys.get(id);
    if (!k) {
      k = { id, queue: new RecordQueue<R>(), taken: 0 };
      this.keys.set(id, k);
    }
    k.queue.push(record);
    this.waitingCount += 1;
    if (k.taken === 0 && k.queue.length === 1) this.pushReady(k);
  }

  take(maxRecords: number, maxUnits: number, concurrency = maxUnits): Array<Unit<R>> {
    if (maxUnits < 1 || this.ready.length === 0) return [];
    const budget = Math.max(1, Math.min(maxRecords, maxUnits * shareOfBacklog(this.waitingCount, concurrency)));
    // records per key this round: share the budget among the keys that can start
    const perKey = Math.max(1, Math.floor(budget / Math.min(this.ready.length, budget)));
    const units: Array<Unit<R>> = [];
    let records = 0;
    let keys = 0;
    while (this.ready.length > 0 && records < budget) {
      const k = this.popReady();
      const run = k.queue.shiftMany(Math.min(perKey, budget - records));
      k.taken += run.length;
      this.waitingCount -= run.length;
      records += run.length;
      // beyond maxUnits, keys share units round-robin: each key's records stay consecutive and in order
      if (units.length < maxUnits) units.push(run);
      else units[keys % maxUnits]!.push(...run);
      keys += 1;
    }
    return units;
  }

  done(record: R): void {
    const k = this.keys.get(keyId(record.key));
    if (!k) return;
    if (k.taken > 0) k.taken -= 1;
    this.settle(k);
  }

  giveBack(records: readonly R[]): void {
    const byKey = new Map<string, R[]>();
    for (const r of records) {
      const id = keyId(r.key);
      const list = byKey.get(id);
      if (list) list.push(r);
      else byKey.set(id, [r]);
    }
    for (const [id, list] of byKey) {
      const k = this.keys.get(id);
      if (!k) continue;
      k.taken = Math.max(0, k.taken - list.length);
      k.queue.unshiftAll(list.sort(byOffset));
      this.waitingCount += list.length;
      this.settle(k);
    }
  }

  clear(): void {
    this.keys.clear();
    this.ready.length = 0;
    this.waitingCount = 0;
  }

  /** After a key's taken count fell: ready again, or forgotten when it holds nothing. */
  private settle(k: KeyState<R>): void {
    if (k.taken > 0) return;
    if (k.queue.length > 0) this.pushReady(k);
    else this.keys.delete(k.id);
  }

  private headOffset(k: KeyState<R>): bigint {
    return k.queue.peek()!.offset;
  }

  private pushReady(k: KeyState<R>): void {
    const heap = this.ready;
    heap.push(k);
    let i = heap.length - 1;
    const at = this.headOffset(k);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.headOffset(heap[parent]!) <= at) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = k;
  }

  private popReady(): KeyState<R> {
    const heap = this.ready;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      const at = this.headOffset(last);
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= heap.length) break;
        const r = l + 1;
        const child = r < heap.length && this.headOffset(heap[r]!) < this.headOffset(heap[l]!) ? r : l;
        if (this.headOffset(heap[child]!) >= at) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}

/**
 * Which received messages of one lane (a partition, or a queue) may start now. Each handler declares an ordering;
 * the lane holds one strategy object of that ordering (partition-ordering.ts, key-ordering.ts, unordered.ts) and
 * asks it for work whenever it could start some. Pure bookkeeping, no I/O (Karafka's processing strategies and
 * Confluent Parallel Consumer's ordering modes are the anchors; DESIGN.md "Concurrency model").
 *
 * A record is *waiting* until the strategy hands it out, *taken* from then until it is done (acknowledged) or given
 * back (it did not run, or must run again after a retry delay). A taken record holds back what its ordering says
 * must wait for it, for as long as it is taken — a record in retry stays taken, so it stalls only its partition
 * (partition), only its key (key), or nothing (unordered).
 */

export type OrderingMode = 'partition' | 'key' | 'unordered';

export const ORDERING_MODES: readonly OrderingMode[] = ['partition', 'key', 'unordered'];

/** What a strategy needs of a record. */
export interface Schedulable {
  /** Order of receipt within the lane (Kafka offset; RabbitMQ receipt sequence). */
  readonly offset: bigint;
  readonly key: Buffer | null;
}

/**
 * Records that must run one after another, in this order, on one thread (a unit occupies one of the handler's
 * concurrency slots while it runs). Different units of one task run at the same time.
 */
export type Unit<R> = R[];

export interface Ordering<R extends Schedulable> {
  readonly mode: OrderingMode;
  /** Records waiting to be taken. */
  readonly waiting: number;
  /** A record was received; records arrive in increasing `offset`. */
  add(record: R): void;
  /**
   * Units that may start now, oldest first: at most `maxUnits` units holding at most `maxRecords` records in all.
   * Their records are taken. Empty when nothing may start. `concurrency` (the handler's) spreads a backlog: where
   * the ordering lets records share a unit, a unit carries about waiting / concurrency of them, so that records do
   * not queue behind each other in one unit while slots that free up later would have run them at once.
   */
  take(maxRecords: number, maxUnits: number, concurrency?: number): Array<Unit<R>>;
  /** A taken record is finished for good (handled, dead-lettered, or handed to a delayed retry elsewhere). */
  done(record: R): void;
  /** Taken records that must run (again): they wait again, ahead of everything received after them. */
  giveBack(records: readonly R[]): void;
  /** Forgets everything (the lane closed). */
  clear(): void;
}

/** Sorts records in order of receipt. */
export function byOffset(a: Schedulable, b: Schedulable): number {
  return a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0;
}

/** Records a unit may carry when `waiting` records share `concurrency` slots (at least 1). */
export function shareOfBacklog(waiting: number, concurrency: number): number {
  return Math.max(1, Math.ceil(waiting / Math.max(1, concurrency)));
}

/** Splits `records` (in order) into at most `units` consecutive runs of near-equal length. */
export function splitIntoUnits<R>(records: R[], units: number): Array<Unit<R>> {
  const n = Math.max(1, Math.min(units, records.length));
  if (n === 1) return [records];
  const out: Array<Unit<R>> = [];
  const size = Math.floor(records.length / n);
  let extra = records.length % n;
  let at = 0;
  for (let i = 0; i < n; i++) {
    const len = size + (extra > 0 ? 1 : 0);
    if (extra > 0) extra -= 1;
    out.push(records.slice(at, at + len));
    at += len;
  }
  return out;
}

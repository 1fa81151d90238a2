/** The strategy object for a handler's declared ordering. */
import { KeyOrdering } from './key-ordering.ts';
import type { Ordering, OrderingMode, Schedulable } from './ordering.ts';
import { PartitionOrdering } from './partition-ordering.ts';
import { Unordered } from './unordered.ts';

const STRATEGIES: Readonly<Record<OrderingMode, new <R extends Schedulable>() => Ordering<R>>> = {
  partition: PartitionOrdering,
  key: KeyOrdering,
  unordered: Unordered,
};

export function createOrdering<R extends Schedulable>(mode: OrderingMode): Ordering<R> {
  return new STRATEGIES[mode]<R>();
}

/**
 * What `conveyor offsets reset` will commit for each partition, and why it may refuse. Pure: the offsets come
 * from kafka-tools.ts.
 */
import { UsageError } from './exit-codes.ts';
import { looksLikeIsoTime, parseIsoTime } from './iso-time.ts';
import { formatTable } from './text-table.ts';

export type ResetTarget =
  | { readonly kind: 'earliest' }
  | { readonly kind: 'latest' }
  | { readonly kind: 'offset'; readonly offset: bigint }
  | { readonly kind: 'time'; readonly ms: number; readonly text: string };

/** `earliest`, `latest`, an offset (`1200`) or an ISO 8601 time with a zone (`2026-03-01T12:00:00Z`). */
export function parseResetTarget(text: string): ResetTarget {
  if (text === 'earliest' || text === 'latest') return { kind: text };
  if (/^\d{1,19}$/.test(text)) return { kind: 'offset', offset: BigInt(text) };
  if (looksLikeIsoTime(text)) return { kind: 'time', ms: parseIsoTime(text, '--to'), text };
  throw new UsageError(`--to ${JSON.stringify(text)}: write earliest, latest, an offset (e.g. 1200) or an ISO 8601 time (e.g. 2026-03-01T12:00:00Z)`);
}

export function describeTarget(target: ResetTarget): string {
  switch (target.kind) {
    case 'offset':
      return `offset ${target.offset}`;
    case 'time':
      return new Date(target.ms).toISOString();
    default:
      return target.kind;
  }
}

export interface PartitionOffsets {
  readonly partition: number;
  /** Log start offset. */
  readonly low: bigint;
  /** Log end offset. */
  readonly high: bigint;
  /** The group's committed offset; null when it has none. */
  readonly committed: bigint | null;
  /** time targets: the first offset at or after the time (high when there is none). */
  readonly atTime?: bigint;
  /** time targets: timestamp (ms) of the first retained message, when it was read (records before it were deleted). */
  readonly firstRetainedAt?: number;
}

export interface PlanRow {
  readonly partition: number;
  readonly current: bigint | null;
  readonly next: bigint;
  readonly low: bigint;
  readonly high: bigint;
}

export interface ResetPlan {
  readonly rows: readonly PlanRow[];
  /** offset targets outside [low, high] of a partition. */
  readonly outOfRange: readonly PlanRow[];
  /** time targets older than what a partition still holds: its records from that time were deleted. */
  readonly beyondRetention: ReadonlyArray<{ readonly partition: number; readonly low: bigint; readonly firstRetainedAt: number }>;
}

export function resetPlan(target: ResetTarget, partitions: readonly PartitionOffsets[]): ResetPlan {
  const rows: PlanRow[] = [];
  const outOfRange: PlanRow[] = [];
  const beyondRetention: Array<{ partition: number; low: bigint; firstRetainedAt: number }> = [];
  for (const p of partitions) {
    let next: bigint;
    if (target.kind === 'earliest') next = p.low;
    else if (target.kind === 'latest') next = p.high;
    else if (target.kind === 'offset') next = target.offset;
    else {
      const at = p.atTime ?? p.high;
      next = at < p.low ? p.low : at > p.high ? p.high : at;
      // the time falls before the oldest message still stored, and older ones were deleted: some are lost
      if (next === p.low && p.low > 0n && p.firstRetainedAt !== undefined && target.ms < p.firstRetainedAt) {
        beyondRetention.push({ partition: p.partition, low: p.low, firstRetainedAt: p.firstRetainedAt });
      }
    }
    const row = { partition: p.partition, current: p.committed, next, low: p.low, high: p.high };
    rows.push(row);
    if (next < p.low || next > p.high) outOfRange.push(row);
  }
  return { rows, outOfRange, beyondRetention };
}

export function planTable(rows: readonly PlanRow[]): string[] {
  return formatTable(rows, [
    { header: 'PARTITION', value: (r) => String(r.partition), right: true },
    { header: 'CURRENT', value: (r) => (r.current === null ? '-' : String(r.current)), right: true },
    { header: 'NEW', value: (r) => String(r.next), right: true },
    { header: 'LOG START', value: (r) => String(r.low), right: true },
    { header: 'LOG END', value: (r) => String(r.high), right: true },
    { header: 'TO READ', value: (r) => String(r.high - r.next), right: true },
  ]);
}

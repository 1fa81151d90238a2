import { describe, expect, it } from 'vitest';
import { looksLikeIsoTime, parseIsoTime } from '../../src/cli/iso-time.ts';
import { parseResetTarget, planTable, resetPlan, type PartitionOffsets } from '../../src/cli/offset-plan.ts';

describe('--to targets', () => {
  it('earliest, latest, an offset, or an ISO 8601 time with a zone', () => {
    expect(parseResetTarget('earliest')).toEqual({ kind: 'earliest' });
    expect(parseResetTarget('latest')).toEqual({ kind: 'latest' });
    expect(parseResetTarget('1200')).toEqual({ kind: 'offset', offset: 1200n });
    expect(parseResetTarget('2026-03-01T12:00:00Z')).toEqual({ kind: 'time', ms: Date.UTC(2026, 2, 1, 12), text: '2026-03-01T12:00:00Z' });
    expect(parseResetTarget('2026-03-01T14:00:00.250+02:00')).toMatchObject({ kind: 'time', ms: Date.UTC(2026, 2, 1, 12, 0, 0, 250) });
    expect(parseResetTarget('2026-03-01')).toMatchObject({ kind: 'time', ms: Date.UTC(2026, 2, 1) });
  });

  it('refuses what it would have to guess', () => {
    expect(() => parseResetTarget('2026-03-01T12:00:00')).toThrow(/has no time zone; add Z for UTC \(2026-03-01T12:00:00Z\)/);
    expect(() => parseResetTarget('2026-02-30T00:00:00Z')).toThrow(/not a valid date/);
    expect(() => parseResetTarget('-5')).toThrow(/write earliest, latest, an offset/);
    expect(() => parseResetTarget('yesterday')).toThrow(/write earliest, latest, an offset/);
  });

  it('tells times from offsets', () => {
    expect(looksLikeIsoTime('2026-03-01')).toBe(true);
    expect(looksLikeIsoTime('20260301')).toBe(false);
    expect(parseIsoTime('2026-03-01T12:00Z', '--since')).toBe(Date.UTC(2026, 2, 1, 12));
  });
});

describe('the reset plan', () => {
  const partitions: PartitionOffsets[] = [
    { partition: 0, low: 0n, high: 10n, committed: 7n, atTime: 5n },
    { partition: 1, low: 4n, high: 10n, committed: null, atTime: 4n, firstRetainedAt: 4_000 },
    { partition: 2, low: 3n, high: 3n, committed: 3n, atTime: 3n },
  ];

  it('earliest and latest are each partition\'s log start and end', () => {
    expect(resetPlan({ kind: 'earliest' }, partitions).rows.map((r) => r.next)).toEqual([0n, 4n, 3n]);
    expect(resetPlan({ kind: 'latest' }, partitions).rows.map((r) => r.next)).toEqual([10n, 10n, 3n]);
  });

  it('an offset outside a partition\'s log is out of range', () => {
    const plan = resetPlan({ kind: 'offset', offset: 3n }, partitions);
    expect(plan.rows.map((r) => r.next)).toEqual([3n, 3n, 3n]);
    expect(plan.outOfRange.map((r) => r.partition)).toEqual([1]);
    expect(resetPlan({ kind: 'offset', offset: 10n }, partitions.slice(0, 2)).outOfRange).toEqual([]);
    expect(resetPlan({ kind: 'offset', offset: 11n }, partitions.slice(0, 2)).outOfRange.map((r) => r.partition)).toEqual([0, 1]);
  });

  it('a time before the first retained message of a truncated partition is beyond retention', () => {
    const plan = resetPlan({ kind: 'time', ms: 1_000, text: 'x' }, partitions);
    expect(plan.rows.map((r) => r.next)).toEqual([5n, 4n, 3n]);
    expect(plan.beyondRetention).toEqual([{ partition: 1, low: 4n, firstRetainedAt: 4_000 }]);
    // at or after the first retained message: nothing was lost
    expect(resetPlan({ kind: 'time', ms: 4_000, text: 'x' }, partitions).beyondRetention).toEqual([]);
  });

  it('a partition that never lost a record is never beyond retention, however old the time', () => {
    const plan = resetPlan({ kind: 'time', ms: 0, text: 'x' }, [{ partition: 0, low: 0n, high: 10n, committed: null, atTime: 0n }]);
    expect(plan.beyondRetention).toEqual([]);
    expect(plan.rows[0]!.next).toBe(0n);
  });

  it('prints partition, current, new, log bounds and what is left to read', () => {
    const lines = planTable(resetPlan({ kind: 'earliest' }, partitions).rows);
    expect(lines[0]).toMatch(/^PARTITION\s+CURRENT\s+NEW\s+LOG START\s+LOG END\s+TO READ$/);
    expect(lines.slice(1).map((l) => l.trim().split(/\s+/))).toEqual([
      ['0', '7', '0', '0', '10', '10'],
      ['1', '-', '4', '4', '10', '6'],
      ['2', '3', '3', '3', '3', '0'],
    ]);
  });
});

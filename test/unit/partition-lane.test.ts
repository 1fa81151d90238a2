import { describe, expect, it } from 'vitest';
import { PartitionLane, type LaneRecord } from '../../src/lanes/partition-lane.ts';

const record = (offset: number, size = 100, key: string | null = null): LaneRecord => ({
  offset: BigInt(offset), key: key === null ? null : Buffer.from(key), value: Buffer.alloc(size), headers: {}, timestamp: '0', size,
});
const offsets = (units: LaneRecord[][]): number[][] => units.map((u) => u.map((r) => Number(r.offset)));

describe('PartitionLane', () => {
  const limits = { maxMessages: 10, maxBytes: 10_000, resumeRatio: 0.5 };

  it('hands out consecutive messages from the head, at most the batch cap, one unit at a time (partition ordering)', () => {
    const lane = new PartitionLane('t', 0, limits);
    for (let i = 0; i < 7; i++) lane.push(record(i));
    const first = lane.take(4, 8);
    expect(offsets(first)).toEqual([[0, 1, 2, 3]]);
    expect(lane.take(4, 8)).toEqual([]); // the unit is out: nothing else of the partition starts
    for (const r of first[0]!) lane.done(r);
    expect(offsets(lane.take(4, 8))).toEqual([[4, 5, 6]]);
  });

  it('gives a failed unit back in place: what did not run starts again first', () => {
    const lane = new PartitionLane('t', 0, limits);
    for (let i = 0; i < 5; i++) lane.push(record(i));
    const [unit] = lane.take(5, 1);
    lane.done(unit![0]!);
    lane.done(unit![1]!);
    lane.giveBack(unit!.slice(2)); // 2 failed (retry after its delay), 3 and 4 did not run
    expect(lane.size).toBe(3);
    expect(offsets(lane.take(5, 1))).toEqual([[2, 3, 4]]);
  });

  it('counts running and retrying records against its bound, not only waiting ones', () => {
    const lane = new PartitionLane('t', 0, limits, 'unordered');
    for (let i = 0; i < 10; i++) lane.push(record(i));
    lane.take(10, 10);
    expect(lane.waiting).toBe(0);
    expect(lane.size).toBe(10);
    expect(lane.shouldPause()).toBe(true);
  });

  it('asks to pause at the message limit and to resume below half of it', () => {
    const lane = new PartitionLane('t', 3, limits);
    for (let i = 0; i < 9; i++) lane.push(record(i));
    expect(lane.shouldPause()).toBe(false);
    lane.push(record(9));
    expect(lane.shouldPause()).toBe(true);
    lane.paused = true;
    expect(lane.shouldPause()).toBe(false);
    const [unit] = lane.take(6, 1);
    for (const r of unit!.slice(0, 5)) lane.done(r);
    expect(lane.shouldResume()).toBe(false); // 5 left: not below 5
    lane.done(unit![5]!);
    expect(lane.shouldResume()).toBe(true);
  });

  it('asks to pause at the byte limit too', () => {
    const lane = new PartitionLane('t', 0, limits);
    lane.push(record(0, 6000));
    expect(lane.shouldPause()).toBe(false);
    lane.push(record(1, 4000));
    expect(lane.bytes).toBe(10_000);
    expect(lane.shouldPause()).toBe(true);
  });

  it('drops what is held when closed, hands out nothing after, and wants neither pause nor resume', () => {
    const lane = new PartitionLane('t', 0, limits, 'key');
    for (let i = 0; i < 12; i++) lane.push(record(i, 100, `k${i % 3}`));
    lane.paused = true;
    expect(lane.close()).toBe(12);
    expect(lane.size).toBe(0);
    expect(lane.bytes).toBe(0);
    expect(lane.take(10, 10)).toEqual([]);
    expect(lane.shouldPause()).toBe(false);
    expect(lane.shouldResume()).toBe(false);
  });
});

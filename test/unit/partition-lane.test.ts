import { describe, expect, it } from 'vitest';
import { PartitionLane, type LaneRecord } from '../../src/lanes/partition-lane.ts';

const record = (offset: number, size = 100): LaneRecord => ({
  offset: BigInt(offset), key: null, value: Buffer.alloc(size), headers: {}, timestamp: '0', size,
});

describe('PartitionLane', () => {
  const limits = { maxMessages: 10, maxBytes: 10_000, resumeRatio: 0.5 };

  it('hands out consecutive messages from the head, at most the batch cap', () => {
    const lane = new PartitionLane('t', 0, limits);
    for (let i = 0; i < 7; i++) lane.push(record(i));
    expect(lane.peekBatch(4).map((r) => Number(r.offset))).toEqual([0, 1, 2, 3]);
    lane.release(4);
    expect(lane.peekBatch(4).map((r) => Number(r.offset))).toEqual([4, 5, 6]);
  });

  it('keeps a failed head in place: a batch is only removed as far as it was released', () => {
    const lane = new PartitionLane('t', 0, limits);
    for (let i = 0; i < 5; i++) lane.push(record(i));
    const batch = lane.peekBatch(5);
    lane.release(2); // 0 and 1 done, 2 failed
    expect(lane.peekBatch(5)[0]).toBe(batch[2]);
    expect(lane.size).toBe(3);
  });

  it('asks to pause at the message limit and to resume below half of it', () => {
    const lane = new PartitionLane('t', 3, limits);
    for (let i = 0; i < 9; i++) lane.push(record(i));
    expect(lane.shouldPause()).toBe(false);
    lane.push(record(9));
    expect(lane.shouldPause()).toBe(true);
    lane.paused = true;
    expect(lane.shouldPause()).toBe(false);
    lane.release(5);
    expect(lane.shouldResume()).toBe(false); // 5 left: not below 5
    lane.release(1);
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

  it('drops what is queued when closed, and wants neither pause nor resume after', () => {
    const lane = new PartitionLane('t', 0, limits);
    for (let i = 0; i < 12; i++) lane.push(record(i));
    lane.paused = true;
    expect(lane.close()).toBe(12);
    expect(lane.size).toBe(0);
    expect(lane.bytes).toBe(0);
    expect(lane.shouldPause()).toBe(false);
    expect(lane.shouldResume()).toBe(false);
  });

  it('stays consistent across its internal compaction', () => {
    const lane = new PartitionLane('t', 0, { maxMessages: 1e9, maxBytes: 1e12, resumeRatio: 0.5 });
    for (let i = 0; i < 20_000; i++) lane.push(record(i, 1));
    for (let i = 0; i < 19_990; i += 10) lane.release(10);
    expect(lane.size).toBe(10);
    expect(lane.bytes).toBe(10);
    expect(Number(lane.peekBatch(1)[0]!.offset)).toBe(19_990);
  });
});

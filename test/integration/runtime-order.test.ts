/** Invariant 2 on a real broker: per-partition order holds while partitions run in parallel on the pool. */
import { describe, expect, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { committedOffsets, produce, waitFor } from '../support/kafka.ts';
import { readRecords } from '../support/runner.ts';

const PARTITIONS = 12;
const PER_PARTITION = 60;

describe('runtime: order and parallelism', () => {
  const fx = useKafkaFixture();

  it('handles each partition in order while several partitions run at once', async () => {
    const { topic, group } = await fx.topic('order', PARTITIONS);
    // seq rises within each partition; random delays make out-of-order completion likely if order were not enforced
    const messages = [];
    for (let i = 0; i < PER_PARTITION; i++) {
      for (let p = 0; p < PARTITIONS; p++) messages.push({ partition: p, value: { seq: i, delayMs: Math.floor(Math.random() * 6) } });
    }
    await produce(fx.kafka, topic, messages);
    const runner = await fx.startRunner({ topic, group, env: { CONVEYOR_POOL_SIZE: '4', CONVEYOR_POOL_MAX_BATCH: '4' } });
    await waitFor('every message handled', () => readRecords(runner.recordFile).length >= PARTITIONS * PER_PARTITION, 60_000);
    await waitFor('offsets committed to the end', async () => {
      const c = await committedOffsets(fx.admin, group, topic);
      return [...Array(PARTITIONS).keys()].every((p) => c.get(p) === BigInt(PER_PARTITION));
    });
    const { code } = await runner.stop('SIGTERM');
    expect(code).toBe(0);

    const records = readRecords(runner.recordFile);
    expect(records).toHaveLength(PARTITIONS * PER_PARTITION);
    for (let p = 0; p < PARTITIONS; p++) {
      const mine = records.filter((r) => r.partition === p);
      // handled in offset order, each once, and never overlapping in time within the partition
      expect(mine.map((r) => r.seq), `partition ${p}`).toEqual([...Array(PER_PARTITION).keys()]);
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.started, `partition ${p} #${i}`).toBeGreaterThanOrEqual(mine[i - 1]!.ended);
    }
    // ... while different partitions did overlap: parallelism across lanes on several threads
    const sorted = [...records].sort((a, b) => a.started - b.started);
    let overlaps = 0;
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.partition !== sorted[i - 1]!.partition && sorted[i]!.started < sorted[i - 1]!.ended) overlaps += 1;
    }
    expect(overlaps).toBeGreaterThan(50);
    expect(new Set(records.map((r) => r.thread)).size).toBeGreaterThan(1);
  });
});

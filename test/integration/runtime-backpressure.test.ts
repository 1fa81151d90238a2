/**
 * Invariant 3 on a real broker through the real runner: a lane stuck retrying its head fills up to its bound,
 * its partition is paused at the consumer (memory stays bounded, nothing of it is committed), other partitions
 * run on untouched, and a shutdown does not wait for the retries.
 */
import { describe, expect, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { committedOffsets, produce, waitFor } from '../support/kafka.ts';
import { readRecords, type LogLine } from '../support/runner.ts';

const MAX_MESSAGES = 50;
const FETCH_BATCH = 20;
const P0_NORMAL = 3000;
const P1_NORMAL = 1000;
const SHUTDOWN_DEADLINE_MS = 5000;

describe('runtime: backpressure', () => {
  const fx = useKafkaFixture();

  it('pauses a partition whose lane is stuck retrying, keeps its queue bounded, runs the other partition, and stops on time', async () => {
    const { topic, group } = await fx.topic('backpressure', 2);
    await produce(fx.kafka, topic, [
      { partition: 0, value: { seq: 0, fail: 'always' } },
      ...Array.from({ length: P0_NORMAL }, (_, i) => ({ partition: 0, value: { seq: i + 1 } })),
      ...Array.from({ length: P1_NORMAL }, (_, i) => ({ partition: 1, value: { seq: i } })),
    ]);
    const runner = await fx.startRunner({
      topic,
      group,
      env: {
        CONVEYOR_LANE_MAX_MESSAGES: String(MAX_MESSAGES),
        KAFKA_MAX_BATCH_SIZE: String(FETCH_BATCH),
        CONVEYOR_POOL_MAX_BATCH: '10',
        TEST_RETRIES: '100',
        TEST_BACKOFF_MS: '500',
        CONVEYOR_SHUTDOWN_DEADLINE_MS: String(SHUTDOWN_DEADLINE_MS),
      },
    });
    const paused = (partition: number): LogLine[] => runner.logs.filter((l) => l.msg === 'partition paused (lane full)' && l.partition === partition);

    // partition 1 runs to the end, in order, while partition 0 is stuck on its first message
    await waitFor('partition 1 handled', () => readRecords(runner.recordFile).filter((r) => r.partition === 1).length >= P1_NORMAL, 30_000);
    await waitFor('partition 1 committed to its end', async () => (await committedOffsets(fx.admin, group, topic)).get(1) === BigInt(P1_NORMAL));
    await runner.waitForLog('partition paused (lane full)');
    await waitFor('a few retries of the stuck message', () => readRecords(runner.recordFile).filter((r) => r.partition === 0).length >= 3, 15_000);

    // for a few seconds more: partition 0 stays stuck, holds nothing beyond its bound, commits nothing
    const holdUntil = Date.now() + 3000;
    while (Date.now() < holdUntil) {
      const c = await committedOffsets(fx.admin, group, topic);
      expect(c.get(0) ?? -1n, 'partition 0 commits nothing').toBeLessThanOrEqual(0n);
      await new Promise((r) => setTimeout(r, 250));
    }
    const records = readRecords(runner.recordFile);
    const p0 = records.filter((r) => r.partition === 0);
    expect(p0.length).toBeGreaterThanOrEqual(3);
    expect(p0.every((r) => r.offset === '0' && !r.ok), 'only the stuck message of partition 0 ran').toBe(true);
    expect(p0.map((r) => r.attempt)).toEqual([...Array(p0.length).keys()].map((i) => i + 1));
    const p1 = records.filter((r) => r.partition === 1);
    expect(p1.map((r) => r.seq), 'partition 1 handled in order, each once').toEqual([...Array(P1_NORMAL).keys()]);

    // the stuck partition was paused at the consumer once, with at most the bound plus one fetch batch queued,
    // and never resumed: its lane cannot drain while its head is retrying
    const pauses0 = paused(0);
    expect(pauses0).toHaveLength(1);
    expect(pauses0[0]!.queued as number).toBeGreaterThanOrEqual(MAX_MESSAGES);
    expect(pauses0[0]!.queued as number).toBeLessThanOrEqual(MAX_MESSAGES + FETCH_BATCH);
    expect(runner.logs.filter((l) => l.msg === 'partition resumed' && l.partition === 0)).toEqual([]);
    // partition 1 kept going after partition 0 was paused: pausing is per partition
    const p0PausedAt = pauses0[0]!.time as number;
    expect(p1.filter((r) => r.started > p0PausedAt).length).toBeGreaterThan(0);
    // partition 1 is paused only by its own backlog (1000 messages waiting against a bound of 50), within the
    // same bound, and always resumed: it never stays paused because of partition 0
    const pauses1 = paused(1);
    for (const l of pauses1) {
      expect(l.queued as number).toBeGreaterThanOrEqual(MAX_MESSAGES);
      expect(l.queued as number).toBeLessThanOrEqual(MAX_MESSAGES + FETCH_BATCH);
    }
    expect(runner.logs.filter((l) => l.msg === 'partition resumed' && l.partition === 1)).toHaveLength(pauses1.length);

    // SIGTERM mid-retry: exits 0 within the shutdown deadline; the lane let go of what it held, still bounded
    const stopping = Date.now();
    const { code } = await runner.stop('SIGTERM');
    const stopMs = Date.now() - stopping;
    expect(code).toBe(0);
    expect(stopMs).toBeLessThan(SHUTDOWN_DEADLINE_MS);
    const closed = runner.logs.filter((l) => /^lane closed/.test(l.msg) && l.partition === 0);
    expect(closed).toHaveLength(1);
    expect(closed[0]!.dropped as number).toBeGreaterThanOrEqual(MAX_MESSAGES);
    expect(closed[0]!.dropped as number).toBeLessThanOrEqual(MAX_MESSAGES + FETCH_BATCH);
    expect(runner.has(/did not finish before the shutdown deadline/)).toBe(false);

    // at-least-once across the stop: partition 0 is still uncommitted, partition 1 complete
    const final = await committedOffsets(fx.admin, group, topic);
    expect(final.get(0) ?? -1n).toBeLessThanOrEqual(0n);
    expect(final.get(1)).toBe(BigInt(P1_NORMAL));
  });
});

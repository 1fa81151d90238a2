/**
 * Seed 000, Kafka down during consumption: the local broker is stopped mid-stream and started again. The runner
 * stays up, reconnects by itself, resumes from the last committed offset, and loses nothing.
 * This test stops and starts the broker, so it needs the one this checkout runs (`npm run brokers`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, inject, it } from 'vitest';
import { committedOffsets, produce, waitFor } from '../support/kafka.ts';
import { useKafkaFixture } from '../support/fixture.ts';
import { readRecords } from '../support/runner.ts';

function brokers(command: 'start' | 'stop'): void {
  execFileSync('bash', ['scripts/brokers.sh', command, 'kafka'], { stdio: 'pipe', timeout: 180_000 });
}

describe('runtime: Kafka outage during consumption', () => {
  const fx = useKafkaFixture();

  it('keeps running while the broker is down and resumes from the committed offset when it is back, losing nothing', async () => {
    expect(
      existsSync('.local/kafka/kafka.pid') && inject('kafkaBrokers') === '127.0.0.1:9092',
      'this test stops and restarts the local broker: run it against `npm run brokers` (npm test does)',
    ).toBe(true);
    const { topic, group } = await fx.topic('outage', 3);
    const total = 900;
    await produce(fx.kafka, topic, Array.from({ length: total }, (_, i) => ({ partition: i % 3, value: { seq: i, delayMs: 20 } })));
    // small lanes and fetches: little is held in memory, so the outage stops the flow for real
    const runner = await fx.startRunner({
      topic, group, env: { CONVEYOR_POOL_SIZE: '2', CONVEYOR_LANE_MAX_MESSAGES: '20', KAFKA_MAX_BATCH_SIZE: '10' },
    });
    await waitFor('a third handled', () => readRecords(runner.recordFile).length >= total / 3, 60_000);

    brokers('stop');
    try {
      await new Promise((r) => setTimeout(r, 5_000));
      expect(runner.child.exitCode, 'the runner is still running while Kafka is down').toBeNull();
      expect(readRecords(runner.recordFile).length, 'the outage really hit mid-stream').toBeLessThan(total);
    } finally {
      brokers('start');
    }

    await waitFor('every message handled after the broker came back', () => new Set(readRecords(runner.recordFile).map((r) => r.seq)).size >= total, 120_000);
    await waitFor('committed to the end', async () => {
      const c = await committedOffsets(fx.admin, group, topic);
      return [0, 1, 2].every((p) => c.get(p) === BigInt(total / 3));
    }, 60_000);
    expect((await runner.stop()).code).toBe(0);

    const records = readRecords(runner.recordFile);
    expect(new Set(records.map((r) => r.seq)).size).toBe(total); // nothing lost
    for (const p of [0, 1, 2]) {
      const offsets = records.filter((r) => r.partition === p).map((r) => Number(r.offset));
      // in order, each at least once; a re-delivery only goes back (to the committed offset), never skips
      for (let i = 1; i < offsets.length; i++) expect(offsets[i]! <= offsets[i - 1]! + 1, `partition ${p} skipped after ${offsets[i - 1]}`).toBe(true);
    }
  }, 300_000);
});

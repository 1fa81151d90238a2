/**
 * Many messages share a worker thread (pool.tasksPerThread): when a thread dies, each message in flight on it gets
 * its own outcome. The one that overran its timeout fails (an attempt); the others on the terminated thread run
 * again without counting an attempt. A crash beside others makes each running message a suspect that runs again
 * alone: the one that kills its thread again fails (WorkerCrashed), the innocent ones succeed at attempt 1.
 */
import { describe, expect, it } from 'vitest';
import type { DeadLetterEnvelope } from '../../src/failure/dead-letter.ts';
import { useKafkaFixture } from '../support/fixture.ts';
import { committedOffsets, produce, readTopic, waitFor } from '../support/kafka.ts';
import { readRecords } from '../support/runner.ts';

describe('runtime: messages sharing a thread that dies', () => {
  const fx = useKafkaFixture({ scope: 'test' });

  it.each([
    ['spin', 'HandlerTimeout'],
    ['exit', 'WorkerCrashed'],
  ] as const)('one thread, %s among messages awaiting beside it: only it is dead-lettered (%s); the others succeed at attempt 1', async (kind, errorType) => {
    const { topic, dlq, group } = await fx.topic(`shared-${kind}`, 1);
    const OTHERS = 12;
    await produce(fx.kafka, topic, [
      ...Array.from({ length: OTHERS / 2 }, (_, i) => ({ key: `k${i}`, value: { seq: i + 1, delayMs: 150 } })),
      { key: 'bad', value: { seq: 0, ...(kind === 'spin' ? { spin: true } : { exit: true }) } },
      ...Array.from({ length: OTHERS / 2 }, (_, i) => ({ key: `k${i + OTHERS / 2}`, value: { seq: i + 1 + OTHERS / 2, delayMs: 150 } })),
    ]);
    const runner = await fx.startRunner({
      topic,
      group,
      // one thread: every message runs on it; no retries: a counted attempt would dead-letter an innocent message
      env: { CONVEYOR_POOL_SIZE: '1', TEST_ORDERING: 'key', TEST_CONCURRENCY: '16', TEST_RETRIES: '0', TEST_TIMEOUT_MS: '300', CONVEYOR_TIMEOUT_GRACE_MS: '200' },
    });
    await waitFor('everything committed', async () => (await committedOffsets(fx.admin, group, topic)).get(0) === BigInt(OTHERS + 1), 30_000);
    const [letter] = await readTopic(dlq, 1);
    const envelope = JSON.parse(letter!.value) as DeadLetterEnvelope;
    expect(envelope).toMatchObject({ original_message: { key: 'bad', offset: String(OTHERS / 2) }, error_type: errorType, retry_count: 0 });

    const records = readRecords(runner.recordFile);
    const ok = records.filter((r) => r.ok);
    expect(new Set(ok.map((r) => r.seq))).toEqual(new Set(Array.from({ length: OTHERS }, (_, i) => i + 1)));
    // not one of them was charged an attempt for the death of the thread they shared
    expect(ok.every((r) => r.attempt === 1)).toBe(true);
    expect(runner.child.exitCode).toBeNull();
    expect((await runner.stop('SIGTERM')).code).toBe(0);
  });
});

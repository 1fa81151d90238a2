/**
 * Invariants 5 and 6 on a real broker through the real runner: a handler that blocks its thread is timed out
 * (its worker terminated and replaced), a worker that dies is replaced; both end in the dead-letter topic as
 * RuntimeFailures while other partitions run on, and the process survives. A handler that merely ignores its
 * deadline while awaiting is timed out without losing its worker.
 */
import { describe, expect, it } from 'vitest';
import type { DeadLetterEnvelope } from '../../src/failure/dead-letter.ts';
import { useKafkaFixture } from '../support/fixture.ts';
import { committedOffsets, produce, readTopic, waitFor } from '../support/kafka.ts';
import { readRecords } from '../support/runner.ts';

describe('runtime: handler timeouts and worker crashes', () => {
  const fx = useKafkaFixture({ scope: 'test' });

  async function storedCount(topic: string): Promise<number> {
    const offsets = await fx.admin.topicOffsets(topic);
    return offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  }

  async function waitAllCommitted(group: string, topic: string, expected: Record<number, bigint>): Promise<void> {
    await waitFor(`${group} committed ${JSON.stringify(expected, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`, async () => {
      const c = await committedOffsets(fx.admin, group, topic);
      return Object.entries(expected).every(([p, o]) => c.get(Number(p)) === o);
    });
  }

  it('dead-letters a thread-blocking handler and a dying worker while other partitions run on; the process survives', async () => {
    const { topic, dlq, group } = await fx.topic('timeout', 3);
    const NORMAL = 50;
    await produce(fx.kafka, topic, [
      { partition: 0, key: 'spin', value: { seq: 0, spin: true } },
      { partition: 0, value: { seq: 1 } },
      { partition: 1, key: 'exit', value: { seq: 0, exit: true } },
      { partition: 1, value: { seq: 1 } },
      ...Array.from({ length: NORMAL }, (_, i) => ({ partition: 2, value: { seq: i, delayMs: 5 } })),
    ]);
    const runner = await fx.startRunner({
      topic,
      group,
      env: { TEST_TIMEOUT_MS: '300', CONVEYOR_TIMEOUT_GRACE_MS: '300', TEST_RETRIES: '1', CONVEYOR_POOL_SIZE: '3', CONVEYOR_POOL_MAX_BATCH: '8' },
    });

    await waitAllCommitted(group, topic, { 0: 2n, 1: 2n, 2: BigInt(NORMAL) });
    const letters = await readTopic(dlq, 2);
    expect(await storedCount(dlq)).toBe(2);
    const byKey = new Map(letters.map((l) => [l.key, JSON.parse(l.value) as DeadLetterEnvelope]));
    const spin = byKey.get('spin')!;
    const exit = byKey.get('exit')!;

    // the blocked handler: timed out on both attempts, its worker terminated each time
    expect(spin).toMatchObject({
      original_topic: topic,
      original_message: { offset: '0', partition: 0 },
      retry_count: 1,
      error_type: 'HandlerTimeout',
      error_class: 'RuntimeFailure',
      error_code: 'conveyor.handler.timeout',
    });
    expect(spin.failure_reason).toMatch(/did not return within 300 ms \(\+300 ms grace\); its worker was terminated/);
    // the dying worker: crashed on both attempts
    expect(exit).toMatchObject({
      original_topic: topic,
      original_message: { offset: '0', partition: 1 },
      retry_count: 1,
      error_type: 'WorkerCrashed',
      error_class: 'RuntimeFailure',
      error_code: 'conveyor.worker.crashed',
    });
    expect(exit.failure_reason).toMatch(/died/);

    // each was retried once, logged with its class and type
    const retried = (offset: string, partition: number) =>
      runner.logs.filter((l) => /^attempt \d failed, retrying/.test(l.msg) && l.partition === partition && l.offset === offset).map((l) => [l.attempt, l.errorClass, l.errorType]);
    expect(retried('0', 0)).toEqual([[1, 'RuntimeFailure', 'HandlerTimeout']]);
    expect(retried('0', 1)).toEqual([[1, 'RuntimeFailure', 'WorkerCrashed']]);

    const records = readRecords(runner.recordFile);
    // partition 2 ran to the end while partition 0 was stuck on its first message (dead-lettered after all of them) ...
    const p2 = records.filter((r) => r.partition === 2);
    expect(p2.map((r) => r.seq)).toEqual([...Array(NORMAL).keys()]);
    expect(Math.max(...p2.map((r) => r.ended))).toBeLessThan(Date.parse(spin.failure_timestamp));
    // ... and did not wait for partition 1's crashing message to be settled either
    const exitSettled = runner.logs.find((l) => l.msg === 'message dead-lettered' && l.partition === 1)!.time as number;
    expect(Math.min(...p2.map((r) => r.started))).toBeLessThan(exitSettled);
    // the messages behind the failed ones ran afterwards, once each
    for (const [partition, letter] of [[0, spin], [1, exit]] as const) {
      const after = records.filter((r) => r.partition === partition);
      expect(after.map((r) => [r.offset, r.attempt, r.ok]), `partition ${partition}`).toEqual([['1', 1, true]]);
      expect(after[0]!.started, `partition ${partition}`).toBeGreaterThanOrEqual(Date.parse(letter.failure_timestamp));
    }

    // nothing escaped: the process is alive, and stops cleanly
    expect(runner.child.exitCode).toBeNull();
    expect(runner.has(/uncaught|unhandled/)).toBe(false);
    const { code } = await runner.stop('SIGTERM');
    expect(code).toBe(0);
  });

  it('times out a handler that awaits past its deadline without terminating its worker', async () => {
    const { topic, dlq, group } = await fx.topic('coop', 1);
    await produce(fx.kafka, topic, [{ value: { seq: 0 } }, { key: 'slow', value: { seq: 1, delayMs: 10_000 } }, { value: { seq: 2 } }]);
    // one worker thread: a replaced worker would show up as a new thread id
    const runner = await fx.startRunner({
      topic,
      group,
      env: { TEST_TIMEOUT_MS: '300', CONVEYOR_TIMEOUT_GRACE_MS: '300', TEST_RETRIES: '1', CONVEYOR_POOL_SIZE: '1' },
    });

    await waitAllCommitted(group, topic, { 0: 3n });
    const [letter] = await readTopic(dlq, 1);
    expect(await storedCount(dlq)).toBe(1);
    const envelope = JSON.parse(letter!.value) as DeadLetterEnvelope;
    expect(envelope).toMatchObject({
      original_message: { key: 'slow', offset: '1' },
      retry_count: 1,
      error_type: 'HandlerTimeout',
      error_class: 'RuntimeFailure',
      error_code: 'conveyor.handler.timeout',
      failure_reason: 'handler recorder passed its timeout of 300 ms',
    });
    expect(envelope.failure_reason).not.toMatch(/did not return|terminated/);

    const records = readRecords(runner.recordFile);
    const done = records.filter((r) => r.offset !== '1');
    expect(done.map((r) => [r.offset, r.ok])).toEqual([['0', true], ['2', true]]);
    // the same worker thread before and after the timeouts: it was never terminated
    expect(done[1]!.thread).toBe(done[0]!.thread);
    expect(done[1]!.started).toBeGreaterThanOrEqual(Date.parse(envelope.failure_timestamp));
    expect(runner.logs.filter((l) => /^attempt \d failed, retrying/.test(l.msg)).map((l) => [l.offset, l.errorType])).toEqual([['1', 'HandlerTimeout']]);

    const { code } = await runner.stop('SIGTERM');
    expect(code).toBe(0);
  });
});

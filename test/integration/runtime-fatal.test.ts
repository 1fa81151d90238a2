/**
 * A Kafka client that failed for good does not leave a runner that looks alive and handles nothing: a KIP-848
 * static member SIGKILLed and started again at once with the same POD_NAME is fenced by the broker
 * (UNRELEASED_INSTANCE_ID, a fatal error for the new consumer) until the old member's session ends; the runner
 * says so and exits 1, so that the orchestrator starts it afresh.
 */
import { describe, expect, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { waitFor } from '../support/kafka.ts';
import { newRecordFile, runnerConfigFile, spawnRunnerProcess } from '../support/runner.ts';

describe('runtime: a Kafka client that failed for good', () => {
  const fx = useKafkaFixture();

  it('exits 1 with the reason instead of idling for ever when its consumer is fenced', async () => {
    const { topic, group } = await fx.topic('fatal', 2);
    const env = { KAFKA_GROUP_PROTOCOL: 'consumer', POD_NAME: `pod-${group.slice(-8)}` };
    const first = await fx.startRunner({ topic, group, env });
    await waitFor('the first member assigned', () => first.assigned().size === 2, 30_000);
    await first.stop('SIGKILL');

    // not startRunner: it may be fenced (and exit) before it logs "running"
    const second = fx.track(spawnRunnerProcess(runnerConfigFile(), newRecordFile(), { TEST_TOPIC: topic, TEST_GROUP: group, ...env }));
    const exit = await Promise.race([
      second.exited,
      new Promise<'still running'>((r) => setTimeout(() => r('still running'), 40_000)),
    ]);
    expect(exit, 'the fenced runner exits rather than idling').toEqual({ code: 1, signal: null });
    expect(second.has('a Kafka client failed for good: stopping; start the process again (an orchestrator does)')).toBe(true);
  }, 120_000);
});

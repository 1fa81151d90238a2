/**
 * Seed 000, Kafka down during consumption: the broker is SIGKILLed mid-stream and started again. The runner stays
 * up, commits that cannot reach the coordinator fail within commit.timeoutMs and are logged (never pile up), the
 * runner is handling messages again within 30 s of the broker answering, resumes from the last committed offset,
 * loses nothing, and its commits catch up to the end. A throwaway broker of this file's own, so that killing it
 * disturbs nothing else.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { committedOffsets, produce, uniqueName, waitFor } from '../support/kafka.ts';
import { readRecords, startRunner } from '../support/runner.ts';
import { useThrowawayKafka } from '../support/throwaway-kafka.ts';

function portAnswers(hostPort: string): Promise<boolean> {
  const [host, port] = hostPort.split(':') as [string, string];
  return new Promise((r) => {
    const s = connect({ host, port: Number(port) });
    s.once('connect', () => (s.destroy(), r(true)));
    s.once('error', () => r(false));
  });
}

describe('runtime: Kafka outage during consumption', () => {
  const fx = useThrowawayKafka('conveyor-test-outage');

  it('keeps running while the broker is down, handles again within 30 s of its return, loses nothing and commits to the end', async () => {
    const topic = uniqueName('conveyor.test.outage');
    const group = `${topic}.group`;
    const { broker, kafka, admin } = fx;
    await admin.createTopic(topic, 3);
    const total = 300;
    // 100 ms a message on 2 threads: when the broker dies, the lanes still hold work for seconds, so commits are
    // attempted while no coordinator answers
    await produce(kafka, topic, Array.from({ length: total }, (_, i) => ({ partition: i % 3, value: { seq: i, delayMs: 100 } })));
    // small lanes and fetches: little is held in memory, so the outage stops the flow for real
    const runner = fx.track(await startRunner({
      topic,
      group,
      env: { KAFKA_BOOTSTRAP_SERVERS: broker.brokers, CONVEYOR_POOL_SIZE: '2', CONVEYOR_LANE_MAX_MESSAGES: '20', KAFKA_MAX_BATCH_SIZE: '10' },
    }));
    const logTail = (): string => runner.logs.filter((l) => l.level >= 30).slice(-15).map((l) => JSON.stringify(l).slice(0, 400)).join('\n');
    await waitFor('a fifth handled', () => readRecords(runner.recordFile).length >= total / 5, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}; the runner's last log lines:\n${logTail()}`);
    });

    const atKill = readRecords(runner.recordFile).length;
    const killedAt = Date.now();
    await broker.kill();
    await new Promise((r) => setTimeout(r, 15_000));
    expect(runner.child.exitCode, 'the runner is still running while Kafka is down').toBeNull();
    expect(runner.child.signalCode).toBeNull();
    const handledDuringOutage = readRecords(runner.recordFile).length;
    expect(handledDuringOutage, 'the outage really hit mid-stream').toBeLessThan(total);
    expect(runner.has('commit failed; the next commit carries the newest watermark'), `a commit the coordinator cannot answer fails within commit.timeoutMs and is logged (handled: ${atKill} at the kill, ${handledDuringOutage} after the outage; commits after the kill: ${JSON.stringify(runner.logs.filter((l) => l.time as number > killedAt && /commit/.test(l.msg)).map((l) => [(l.time as number) - killedAt, l.msg, l.offsets]))})`).toBe(true);

    const restarting = broker.resume();
    void restarting.catch(() => {});
    await waitFor('the broker answering again', () => portAnswers(broker.brokers), 180_000);
    const backAt = Date.now();
    await waitFor('a message handled after the broker came back', () => readRecords(runner.recordFile).some((r) => r.started >= backAt), 30_000);
    await restarting;

    await waitFor('every message handled after the broker came back', () => new Set(readRecords(runner.recordFile).map((r) => r.seq)).size >= total, 120_000);
    await waitFor('committed to the end', async () => {
      const c = await committedOffsets(admin, group, topic);
      return [0, 1, 2].every((p) => c.get(p) === BigInt(total / 3));
    }, 30_000);
    expect(runner.child.exitCode).toBeNull();
    expect((await runner.stop()).code).toBe(0);

    const records = readRecords(runner.recordFile);
    expect(new Set(records.map((r) => r.seq)).size).toBe(total); // nothing lost
    for (const p of [0, 1, 2]) {
      const offsets = records.filter((r) => r.partition === p).map((r) => Number(r.offset));
      // in order, each at least once; a re-delivery only goes back (to the committed offset), never skips
      for (let i = 1; i < offsets.length; i++) expect(offsets[i]! <= offsets[i - 1]! + 1, `partition ${p} skipped after ${offsets[i - 1]}`).toBe(true);
    }
  }, 400_000);
});

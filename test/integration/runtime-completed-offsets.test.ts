/**
 * docs/commit-metadata.md on a real broker: a commit carries the offsets completed ahead of its watermark in its
 * metadata, and the partition's next owner skips exactly those after a SIGKILL: nothing is lost, and only what
 * was in flight or not yet acknowledged is handled again.
 */
import { describe, expect, it } from 'vitest';
import { decodeCompletedOffsets, encodeCompletedOffsets } from '../../src/ack/completed-offsets.ts';
import type { KafkaAdmin } from '../../src/kafka/admin.ts';
import type { Kafka } from '../../src/kafka/client.ts';
import { useKafkaFixture } from '../support/fixture.ts';
import { produce, waitFor } from '../support/kafka.ts';
import { metricValue, opsBaseUrl, opsGet } from '../support/ops-http.ts';
import { readRecords, type RunnerProcess } from '../support/runner.ts';

/** Static membership: the restarted runner takes the dead one's partition over at once (no session to wait out). */
const STATIC = { POD_NAME: 'completed-offsets-pod' };
/** The slow message must not time out (and be retried) while it runs. */
const SLOW_OK = { ...STATIC, TEST_TIMEOUT_MS: '30000' };

/** The committed offset and decoded completed-ahead offsets of partition 0 (undefined: no usable metadata). */
async function committedPosition(admin: KafkaAdmin, group: string, topic: string): Promise<{ offset: bigint; completed: bigint[] | undefined } | undefined> {
  const at = (await admin.committedPositions(group, [topic])).get(topic)?.get(0);
  return at && { offset: at.offset, completed: decodeCompletedOffsets(at.metadata, at.offset) };
}

/** Commits `offset` with `metadata` for `group` as a member of another client would: through the Confluent client. */
async function commitWithMetadata(kafka: Kafka, admin: KafkaAdmin, group: string, topic: string, offset: bigint, metadata: string): Promise<void> {
  const consumer = kafka.consumer({ kafkaJS: { groupId: group, autoCommit: false } });
  await consumer.connect();
  try {
    await consumer.commitOffsets([{ topic, partition: 0, offset: offset.toString(), metadata }]);
    await waitFor('the seeded commit stored', async () => (await committedPosition(admin, group, topic))?.offset === offset);
  } finally {
    await consumer.disconnect();
  }
}

async function skippedMetric(runner: RunnerProcess, topic: string): Promise<number | undefined> {
  const { text } = await opsGet(opsBaseUrl(runner), '/metrics');
  return metricValue(text, `conveyor_messages_skipped_total{handler="recorder",topic="${topic}",reason="completed_before_restart"}`);
}

const handledOffsets = (runner: RunnerProcess): bigint[] => readRecords(runner.recordFile).filter((r) => r.ok).map((r) => BigInt(r.offset));

describe('runtime: completed offsets in the commit metadata', () => {
  const fx = useKafkaFixture();

  it('skips what the metadata records as completed, re-encodes it for its own watermark, and a SIGKILLed runner\'s successor skips it again', async () => {
    const { topic, group } = await fx.topic('completed-restore', 1);
    const TOTAL = 20;
    // offset 4 is slow: with partition ordering, nothing after it is handled while it runs
    await produce(fx.kafka, topic, Array.from({ length: TOTAL }, (_, seq) => ({ partition: 0, value: { seq, ...(seq === 4 ? { delayMs: 6000 } : {}) } })));
    // a previous owner handled 0..2 and, ahead of its watermark 3, offsets 5, 6, 7 and 12
    await commitWithMetadata(fx.kafka, fx.admin, group, topic, 3n, encodeCompletedOffsets(3n, [5n, 6n, 7n, 12n])!);

    const first = await fx.startRunner({ topic, group, env: SLOW_OK });
    await first.waitForLog('offsets completed ahead of the committed one restored from its metadata: their messages will be skipped');
    // 3 handled, 4 in flight, 5 6 7 12 restored as done: the commit is 4 with 5 6 7 12 in its metadata, for base 4
    await waitFor('offset 4 committed with 5, 6, 7 and 12 recorded ahead of it', async () => {
      const at = await committedPosition(fx.admin, group, topic);
      return at?.offset === 4n && at.completed?.join() === '5,6,7,12';
    });
    expect(handledOffsets(first)).toEqual([3n]);
    // skipped when fetched, not in the lane's order: 12 too, while 8 waits for 4
    await waitFor('4 messages skipped', async () => (await skippedMetric(first, topic)) === 4);
    await first.stop('SIGKILL');
    expect(handledOffsets(first)).toEqual([3n]);

    // the successor: 4 again (it was in flight), then everything but 5, 6, 7 and 12
    const second = await fx.startRunner({ topic, group, env: SLOW_OK });
    await waitFor('every offset after 4 handled or skipped', async () => (await committedPosition(fx.admin, group, topic))?.offset === BigInt(TOTAL), 30_000);
    const again = handledOffsets(second);
    expect(again).toEqual([4n, 8n, 9n, 10n, 11n, 13n, 14n, 15n, 16n, 17n, 18n, 19n]);
    expect(await skippedMetric(second, topic)).toBe(4);
    expect(second.logs.filter((l) => l.msg === 'messages completed by the previous owner skipped (commit metadata)').map((l) => l.skipped)).toEqual([4]);
    // the watermark passed every completed offset: nothing left to record
    expect((await committedPosition(fx.admin, group, topic))?.completed).toBeUndefined();
    const { code } = await second.stop('SIGTERM');
    expect(code).toBe(0);
  });

  it('restores nothing from metadata written for another offset: everything after the committed one is handled', async () => {
    const { topic, group } = await fx.topic('completed-foreign', 1);
    await produce(fx.kafka, topic, Array.from({ length: 10 }, (_, seq) => ({ partition: 0, value: { seq } })));
    // metadata that names base 2, committed with offset 3 (as a reset by another tool might leave it)
    await commitWithMetadata(fx.kafka, fx.admin, group, topic, 3n, encodeCompletedOffsets(2n, [5n, 6n])!);
    const runner = await fx.startRunner({ topic, group, env: STATIC });
    await waitFor('committed to the end', async () => (await committedPosition(fx.admin, group, topic))?.offset === 10n);
    expect(handledOffsets(runner)).toEqual([3n, 4n, 5n, 6n, 7n, 8n, 9n]);
    expect(await skippedMetric(runner, topic)).toBe(0);
    expect(runner.has(/restored from its metadata/)).toBe(false);
  });

  it('unordered: a SIGKILL while early messages are in flight and later ones are done; the successor handles only the unfinished ones', async () => {
    const { topic, group } = await fx.topic('completed-crash', 1);
    const TOTAL = 40;
    const SLOW = new Set([0, 10]);
    await produce(fx.kafka, topic, Array.from({ length: TOTAL }, (_, seq) => ({ partition: 0, value: { seq, delayMs: SLOW.has(seq) ? 5000 : 20 } })));
    // one worker thread: the slow messages share tasks with fast ones, whose units are acknowledged as soon as they
    // end (the worker reports each unit), not when the task's slowest unit returns
    const env = { ...SLOW_OK, TEST_ORDERING: 'unordered', CONVEYOR_POOL_SIZE: '1' };

    const first = await fx.startRunner({ topic, group, env });
    // everything but 0 and 10 done: the commit stays at 0, and its metadata records the rest as completed
    const done = Array.from({ length: TOTAL }, (_, o) => BigInt(o)).filter((o) => !SLOW.has(Number(o)));
    await waitFor('offset 0 committed with every fast offset recorded ahead of it', async () => {
      const at = await committedPosition(fx.admin, group, topic);
      return at?.offset === 0n && at.completed?.join() === done.join();
    }, 20_000);
    await first.stop('SIGKILL');
    const before = readRecords(first.recordFile).filter((r) => r.ok);
    const atKill = await committedPosition(fx.admin, group, topic);
    expect(atKill?.offset).toBe(0n);
    const recorded = new Set(atKill!.completed!);
    expect(before.some((r) => SLOW.has(r.seq)), 'the slow ones were still in flight').toBe(false);

    const second = await fx.startRunner({ topic, group, env });
    await waitFor('committed to the end', async () => (await committedPosition(fx.admin, group, topic))?.offset === BigInt(TOTAL), 30_000);
    const after = readRecords(second.recordFile).filter((r) => r.ok);
    // nothing lost
    expect(new Set([...before, ...after].map((r) => r.seq)).size).toBe(TOTAL);
    // nothing the metadata recorded is handled again: only what was in flight repeats
    expect(after.filter((r) => recorded.has(BigInt(r.offset)))).toEqual([]);
    expect(after.map((r) => r.seq).sort((a, b) => a - b)).toEqual([...SLOW]);
    expect(await skippedMetric(second, topic)).toBe(TOTAL - SLOW.size);
    const { code } = await second.stop('SIGTERM');
    expect(code).toBe(0);
  });
});

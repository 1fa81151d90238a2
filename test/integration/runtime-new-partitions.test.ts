/**
 * Never skip a message (issue 10 §3): a partition added to a topic while the group consumes, or a topic created after
 * the runner started, is noticed within kafka.metadataRefreshMs (10 s by default) and read from its beginning, even
 * with autoOffsetReset latest, which applies to a group's very first start only.
 */
import { Admin } from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { committedOffsets, deleteTopics, produce, uniqueName, waitFor } from '../support/kafka.ts';
import { readRecords } from '../support/runner.ts';

const LATEST = { KAFKA_AUTO_OFFSET_RESET: 'latest' };

describe('runtime: partitions and topics that appear while the group runs', () => {
  const fx = useKafkaFixture();
  let admin: Admin;
  beforeAll(() => {
    admin = new Admin({ clientId: 'conveyor-test-partitions', bootstrapBrokers: inject('kafkaBrokers').split(','), retries: 5, retryDelay: 200 });
  });
  afterAll(async () => {
    await admin.close();
  });

  const seqsOf = (file: string): Set<number> => new Set(readRecords(file).filter((r) => r.ok).map((r) => r.seq));

  it('reads partitions added to the topic from their beginning, within 30 s, although autoOffsetReset is latest', async () => {
    const { topic, group } = await fx.topic('new-partitions', 2);
    const runner = await fx.startRunner({ topic, group, env: LATEST });
    await waitFor('partitions 0 and 1 assigned', () => runner.assigned().size === 2, 30_000);
    await produce(fx.kafka, topic, Array.from({ length: 20 }, (_, i) => ({ partition: i % 2, value: { seq: i } })));
    await waitFor('the first 20 handled', () => seqsOf(runner.recordFile).size === 20, 30_000);

    await admin.createPartitions({ topics: [{ name: topic, count: 4 }] });
    const added = Date.now();
    // produced at once, long before the runner can have noticed the new partitions
    await produce(fx.kafka, topic, Array.from({ length: 200 }, (_, i) => ({ partition: 2 + (i % 2), value: { seq: 1000 + i } })));
    await waitFor('all 200 messages of the added partitions handled', () => [...seqsOf(runner.recordFile)].filter((s) => s >= 1000).length === 200, 45_000);
    const firstOnNew = Math.min(...readRecords(runner.recordFile).filter((r) => r.partition >= 2).map((r) => r.started));
    expect(firstOnNew - added, 'the added partitions were noticed within 30 s').toBeLessThan(30_000);
    expect(runner.has('partitions without a committed offset: start positions')).toBe(true);
    await waitFor('the added partitions committed to their end', async () => {
      const c = await committedOffsets(fx.admin, group, topic);
      return c.get(2) === 100n && c.get(3) === 100n;
    }, 20_000);
  }, 120_000);

  it('reads a topic created after start-up from its beginning, within 30 s, although autoOffsetReset is latest', async () => {
    const topic = uniqueName('conveyor.test.late-topic');
    const group = uniqueName('conveyor.test.late-topic-group');
    try {
      const runner = await fx.startRunner({ topic, group, env: LATEST });
      await new Promise((r) => setTimeout(r, 2_000));
      await admin.createTopics({ topics: [topic], partitions: 3, replicas: 1 });
      const created = Date.now();
      await produce(fx.kafka, topic, Array.from({ length: 150 }, (_, i) => ({ partition: i % 3, value: { seq: i } })));
      await waitFor('all 150 messages of the new topic handled', () => seqsOf(runner.recordFile).size === 150, 45_000);
      const first = Math.min(...readRecords(runner.recordFile).map((r) => r.started));
      expect(first - created, 'the new topic was noticed within 30 s').toBeLessThan(30_000);
      expect(runner.child.exitCode).toBeNull();
    } finally {
      await deleteTopics([topic, `${topic}.dlq`]);
    }
  }, 120_000);

  it('applies autoOffsetReset latest to the group\'s first start only, and pins it so a restart skips nothing', async () => {
    const { topic, group } = await fx.topic('first-start', 3);
    // produced before the group ever started: latest skips these
    await produce(fx.kafka, topic, Array.from({ length: 30 }, (_, i) => ({ partition: i % 3, value: { seq: i } })));
    const first = await fx.startRunner({ topic, group, env: LATEST });
    await waitFor('partitions assigned', () => first.assigned().size === 3, 30_000);
    // every partition gets a committed offset at once, its end at the start, even those nothing is handled on
    await waitFor('the start positions committed', async () => {
      const pinned = await committedOffsets(fx.admin, group, topic);
      return [0, 1, 2].every((p) => pinned.get(p) === 10n);
    }, 20_000);
    await produce(fx.kafka, topic, [{ partition: 0, value: { seq: 100 } }]);
    await waitFor('the message produced after the start handled', () => seqsOf(first.recordFile).has(100), 30_000);
    expect((await first.stop()).code).toBe(0);

    // while no member runs, partitions 1 and 2 (never written to since the start) get messages: not skipped
    await produce(fx.kafka, topic, Array.from({ length: 40 }, (_, i) => ({ partition: 1 + (i % 2), value: { seq: 200 + i } })));
    const second = await fx.startRunner({ topic, group, env: LATEST, recordFile: first.recordFile });
    await waitFor('the 40 produced while stopped handled', () => [...seqsOf(second.recordFile)].filter((s) => s >= 200).length === 40, 30_000);
    const handled = seqsOf(second.recordFile);
    expect([...handled].filter((s) => s < 30), 'messages from before the group\'s first start are not read').toEqual([]);
  }, 120_000);
});

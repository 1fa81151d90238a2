/**
 * KafkaSource's commit and restore of completed offsets (docs/commit-metadata.md), with a fake consumer and a fake
 * admin port standing in for the broker: what each commit sends, when a read-back confirms it, and which records of
 * a newly assigned partition reach its lane. The real broker: test/integration/runtime-completed-offsets.test.ts.
 */
import kafkaJavascript from '@confluentinc/kafka-javascript';
import { describe, expect, it } from 'vitest';
import { decodeCompletedOffsets, encodeCompletedOffsets } from '../../src/ack/completed-offsets.ts';
import type { OffsetTracker } from '../../src/ack/offset-tracker.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { HandlerSpec } from '../../src/handlers/discover.ts';
import type { CommittedPosition } from '../../src/kafka/admin.ts';
import type { KafkaMessage } from '../../src/kafka/client.ts';
import { KafkaSource } from '../../src/kafka/kafka-source.ts';
import type { TopicInspector } from '../../src/kafka/start-position.ts';
import { Instrumentation, type RuntimeEvents } from '../../src/lanes/instrumentation.ts';
import type { PartitionLane } from '../../src/lanes/partition-lane.ts';
import { createLogger } from '../../src/ops/logger.ts';

const { ERR__ASSIGN_PARTITIONS } = kafkaJavascript.CODES.ERRORS;
const TOPIC = 'shop.orders';

interface Sent {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly metadata?: string;
}

/** The private parts of KafkaSource these tests drive: the rebalance callback and the fetch path. */
interface Internals {
  onRebalance(err: { code: number }, assignment: Array<{ topic: string; partition: number }>): Promise<unknown>;
  onBatch(topic: string, partition: number, messages: KafkaMessage[]): PartitionLane | undefined;
  partitions: Map<string, { tracker: OffsetTracker; lane: PartitionLane }>;
}

function setUp(options: { env?: Record<string, string>; stored?: Map<number, CommittedPosition> } = {}) {
  const config = loadConfig({ env: { CONVEYOR_COMMIT_TIMEOUT_MS: '200', ...options.env } });
  /** What the coordinator holds for partitions of TOPIC; the Confluent client stores metadata with a NUL appended. */
  const stored = options.stored ?? new Map<number, CommittedPosition>();
  const sent: Sent[][] = [];
  const broker = { storing: true, failing: 0 };
  const consumer = {
    async commitOffsets(list: Sent[]): Promise<void> {
      sent.push(list);
      if (broker.failing > 0) {
        broker.failing -= 1;
        throw new Error('Local: Broker transport failure');
      }
      if (!broker.storing) return;
      for (const o of list) stored.set(o.partition, { offset: BigInt(o.offset), ...(o.metadata ? { metadata: `${o.metadata}\u0000` } : {}) });
    },
  };
  const topics: TopicInspector = {
    partitionCounts: async (ts) => new Map(ts.map((t) => [t, 4])),
    endOffsets: async () => new Map(),
    committedPositions: async () => new Map([[TOPIC, new Map(stored)]]),
  };
  const spec = { name: 'orders', group: 'prod.orders', topics: [TOPIC], url: 'file:///orders.ts', timeoutMs: 1000, ordering: 'partition', concurrency: 64 } as unknown as HandlerSpec;
  const events = new Instrumentation();
  const emitted: Array<{ event: keyof RuntimeEvents; payload: unknown }> = [];
  for (const event of ['messages.skipped', 'offsets.metadata_overflow', 'offsets.commit_failed', 'offsets.committed'] as const) {
    events.on(event, (payload: unknown) => emitted.push({ event, payload }));
  }
  const source = new KafkaSource(spec, config, {
    kafka: {} as never,
    // handlers never finish here: the tests acknowledge through the tracker, as a lane would
    pool: { run: () => new Promise(() => {}) } as never,
    deadLetters: {} as never,
    publishers: {} as never,
    events,
    logger: createLogger('test', 'silent'),
    topics,
    memory: { laneLimits: () => ({ maxMessages: 10_000, maxBytes: 1 << 24, resumeRatio: 0.5 }) } as never,
  });
  Object.assign(source, { consumer, connected: true });
  const internals = source as unknown as Internals;
  const assign = (partition: number): Promise<unknown> => internals.onRebalance({ code: ERR__ASSIGN_PARTITIONS }, [{ topic: TOPIC, partition }]);
  const fetch = (partition: number, from: number, to: number): void => {
    const messages = Array.from({ length: to - from + 1 }, (_, i) => ({ offset: String(from + i), key: null, value: Buffer.from('{}'), headers: {}, timestamp: '0' }));
    internals.onBatch(TOPIC, partition, messages as unknown as KafkaMessage[]);
  };
  const partition = (p: number) => internals.partitions.get(`${TOPIC}\u0000${p}`)!;
  const lastSent = (): Sent => sent[sent.length - 1]![0]!;
  return { source, sent, stored, broker, emitted, assign, fetch, partition, lastSent };
}

describe('KafkaSource: completed offsets in the commit metadata', () => {
  it('commits the watermark with the offsets completed ahead of it, and again when only those change', async () => {
    const t = setUp();
    await t.assign(0);
    t.fetch(0, 0, 5);
    const { tracker } = t.partition(0);
    tracker.ack(0n);
    tracker.ack(3n);
    await t.source.commit();
    expect(t.lastSent()).toEqual({ topic: TOPIC, partition: 0, offset: '1', metadata: encodeCompletedOffsets(1n, [3n]) });
    tracker.ack(5n);
    await t.source.commit();
    expect(t.lastSent()).toEqual({ topic: TOPIC, partition: 0, offset: '1', metadata: encodeCompletedOffsets(1n, [3n, 5n]) });
    expect(decodeCompletedOffsets(t.stored.get(0)!.metadata, 1n)).toEqual([3n, 5n]);
    const commits = t.sent.length;
    await t.source.commit();
    expect(t.sent).toHaveLength(commits); // nothing changed: nothing sent
    expect(t.emitted.filter((e) => e.event === 'offsets.commit_failed')).toEqual([]);
  });

  it('sends no metadata on the in-order path, and none once the watermark passed every completed offset', async () => {
    const t = setUp();
    await t.assign(0);
    t.fetch(0, 0, 3);
    const { tracker } = t.partition(0);
    tracker.ack(0n);
    await t.source.commit();
    expect(t.lastSent()).toEqual({ topic: TOPIC, partition: 0, offset: '1' });
    tracker.ack(2n);
    await t.source.commit();
    expect(t.lastSent().metadata).toBeDefined();
    tracker.ack(1n);
    await t.source.commit();
    expect(t.lastSent()).toEqual({ topic: TOPIC, partition: 0, offset: '3' });
    expect(t.stored.get(0)).toEqual({ offset: 3n });
  });

  it('counts a commit at an unchanged offset only once the read-back shows its metadata', async () => {
    const t = setUp();
    await t.assign(0);
    t.fetch(0, 0, 5);
    const { tracker } = t.partition(0);
    tracker.ack(0n);
    tracker.ack(3n);
    await t.source.commit();
    t.broker.storing = false; // the next commit is queued but never stored: the old metadata stays
    tracker.ack(5n);
    await t.source.commit();
    const failed = t.emitted.filter((e) => e.event === 'offsets.commit_failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.payload).toMatchObject({ offsets: [{ topic: TOPIC, partition: 0, offset: '1' }], timedOut: true });
    t.broker.storing = true;
    await t.source.commit(); // carried again
    expect(t.lastSent().metadata).toBe(encodeCompletedOffsets(1n, [3n, 5n]));
    expect(decodeCompletedOffsets(t.stored.get(0)!.metadata, 1n)).toEqual([3n, 5n]);
  });

  it('commits the first offset received when it is still in flight and later ones are done', async () => {
    const t = setUp({ stored: new Map([[0, { offset: 7n }]]) });
    await t.assign(0);
    t.fetch(0, 7, 9);
    t.partition(0).tracker.ack(9n);
    await t.source.commit();
    expect(t.lastSent()).toEqual({ topic: TOPIC, partition: 0, offset: '7', metadata: encodeCompletedOffsets(7n, [9n]) });
  });

  it('restores a newly assigned partition\'s completed offsets: their records are acknowledged without reaching the lane', async () => {
    const t = setUp({ stored: new Map([[2, { offset: 10n, metadata: `${encodeCompletedOffsets(10n, [12n, 13n, 16n])}\u0000` }]]) });
    await t.assign(2);
    t.fetch(2, 10, 14);
    const { tracker, lane } = t.partition(2);
    expect(lane.size).toBe(3); // 10, 11 and 14
    expect(t.emitted.filter((e) => e.event === 'messages.skipped').map((e) => e.payload)).toEqual([
      { handler: 'orders', group: 'prod.orders', topic: TOPIC, partition: 2, count: 2, reason: 'completed_before_restart' },
    ]);
    // 16 has not arrived yet: this member's commits carry it on
    tracker.ack(10n);
    await t.source.commit();
    expect(t.lastSent()).toEqual({ topic: TOPIC, partition: 2, offset: '11', metadata: encodeCompletedOffsets(11n, [12n, 13n, 16n]) });
    t.fetch(2, 15, 17);
    expect(lane.size).toBe(5); // and 15, 17
    expect(t.emitted.filter((e) => e.event === 'messages.skipped').map((e) => (e.payload as { count: number }).count)).toEqual([2, 1]);
  });

  it('restores nothing from metadata written for another offset, foreign metadata or none', async () => {
    const t = setUp({
      stored: new Map([
        [0, { offset: 10n, metadata: encodeCompletedOffsets(9n, [12n])! }],
        [1, { offset: 10n, metadata: 'written by another client' }],
        [3, { offset: 10n }],
      ]),
    });
    for (const p of [0, 1, 3]) {
      await t.assign(p);
      t.fetch(p, 10, 14);
      expect(t.partition(p).lane.size, `partition ${p}`).toBe(5);
    }
    expect(t.emitted.filter((e) => e.event === 'messages.skipped')).toEqual([]);
  });

  it('commits the watermark alone when the completed offsets do not fit, and counts it', async () => {
    const t = setUp({ env: { CONVEYOR_COMMIT_METADATA_MAX_BYTES: '16' } });
    await t.assign(0);
    t.fetch(0, 0, 100);
    const { tracker } = t.partition(0);
    for (let o = 2n; o <= 100n; o += 2n) tracker.ack(o);
    await t.source.commit();
    expect(t.lastSent()).toEqual({ topic: TOPIC, partition: 0, offset: '0' });
    expect(t.emitted.filter((e) => e.event === 'offsets.metadata_overflow').map((e) => e.payload)).toEqual([
      { group: 'prod.orders', topic: TOPIC, partition: 0, completedAhead: 50 },
    ]);
    expect(t.emitted.filter((e) => e.event === 'offsets.commit_failed')).toEqual([]);
  });

  it('after two failed commits in a row, commits the watermark without metadata until one is stored', async () => {
    const t = setUp();
    await t.assign(0);
    t.fetch(0, 0, 5);
    const { tracker } = t.partition(0);
    tracker.ack(0n);
    tracker.ack(3n);
    t.broker.failing = 2;
    await t.source.commit();
    await t.source.commit();
    expect(t.sent.map((s) => s[0]!.metadata)).toEqual([encodeCompletedOffsets(1n, [3n]), encodeCompletedOffsets(1n, [3n])]);
    await t.source.commit();
    expect(t.lastSent()).toEqual({ topic: TOPIC, partition: 0, offset: '1' });
    // stored: the metadata comes back with the next commit
    await t.source.commit();
    expect(t.lastSent()).toEqual({ topic: TOPIC, partition: 0, offset: '1', metadata: encodeCompletedOffsets(1n, [3n]) });
  });

  it('records nothing with commit.metadataMaxBytes 0', async () => {
    const t = setUp({ env: { CONVEYOR_COMMIT_METADATA_MAX_BYTES: '0' } });
    await t.assign(0);
    t.fetch(0, 0, 5);
    const { tracker } = t.partition(0);
    tracker.ack(0n);
    tracker.ack(3n);
    await t.source.commit();
    expect(t.lastSent()).toEqual({ topic: TOPIC, partition: 0, offset: '1' });
    const commits = t.sent.length;
    await t.source.commit();
    expect(t.sent).toHaveLength(commits);
  });
});

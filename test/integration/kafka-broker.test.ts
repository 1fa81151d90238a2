/**
 * The foundation's promise about Kafka, checked on a real broker: what is produced (idempotent, acks=all, zstd)
 * comes back once, in partition order, with its key and headers, and a consumer group resumes exactly
 * from what it committed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaAdmin } from '../../src/kafka/admin.ts';
import { CompressionTypes, driverFeatures, type Consumer, type Kafka } from '../../src/kafka/client.ts';
import { committedOffsets, createTopic, testAdmin, testKafka, uniqueName, waitFor } from '../support/kafka.ts';

const MESSAGES = 1_000;
const PARTITIONS = 6;
const KEYS = 40;
const BINARY_HEADER = Buffer.from([0x00, 0x01, 0xfe, 0xff]);

interface Received {
  readonly seq: number;
  readonly partition: number;
  readonly offset: bigint;
  readonly key: string | null;
  readonly headers: Record<string, Buffer>;
}

function decode(partition: number, message: { key: Buffer | null; value: Buffer | null; offset: string; headers?: unknown }): Received {
  const value = JSON.parse(message.value?.toString() ?? 'null') as { seq: number };
  const headers: Record<string, Buffer> = {};
  for (const [name, v] of Object.entries((message.headers ?? {}) as Record<string, Buffer | string>)) {
    headers[name] = Buffer.isBuffer(v) ? v : Buffer.from(String(v));
  }
  return { seq: value.seq, partition, offset: BigInt(message.offset), key: message.key?.toString() ?? null, headers };
}

describe('Kafka broker (real)', () => {
  const topic = uniqueName('conveyor.test.foundation');
  let kafka: Kafka;
  let admin: KafkaAdmin;
  const consumers: Consumer[] = [];

  beforeAll(async () => {
    kafka = testKafka();
    admin = testAdmin();
    await createTopic(admin, topic, PARTITIONS);
    const producer = kafka.producer({
      kafkaJS: { idempotent: true, acks: -1, compression: CompressionTypes.ZSTD },
    });
    await producer.connect();
    // Sent in order, in batches, so each key's messages land in its partition in sequence order.
    for (let start = 0; start < MESSAGES; start += 100) {
      await producer.send({
        topic,
        messages: Array.from({ length: 100 }, (_, i) => {
          const seq = start + i;
          return {
            key: `key-${seq % KEYS}`,
            value: JSON.stringify({ seq }),
            headers: { 'x-seq': String(seq), 'x-source': 'conveyor-test', 'x-binary': BINARY_HEADER },
          };
        }),
      });
    }
    await producer.disconnect();
  });

  afterAll(async () => {
    await Promise.all(consumers.map((c) => c.disconnect().catch(() => {})));
    await admin?.deleteTopics([topic]).catch(() => {});
    await admin?.close();
  });

  function consumer(groupId: string): Consumer {
    const c = kafka.consumer({ kafkaJS: { groupId, fromBeginning: true, autoCommit: false } });
    consumers.push(c);
    return c;
  }

  it('the Kafka client was built with zstd, SASL and SSL support', () => {
    expect(driverFeatures().features).toEqual(expect.arrayContaining(['zstd', 'ssl', 'sasl_scram', 'sasl_plain']));
  });

  it('delivers 1,000 keyed zstd messages once each, in partition order, with headers, and commits them', async () => {
    const groupId = uniqueName('conveyor.test.group');
    const c = consumer(groupId);
    await c.connect();
    await c.subscribe({ topics: [topic] });
    const received: Received[] = [];
    void c.run({
      eachMessage: async ({ partition, message }) => {
        received.push(decode(partition, message));
        // manual commit after the message is handled: the next offset to read
        await c.commitOffsets([{ topic, partition, offset: String(BigInt(message.offset) + 1n) }]);
      },
    });
    await waitFor(`${MESSAGES} messages`, () => received.length >= MESSAGES, 60_000);
    await c.disconnect();

    // every message exactly once
    expect(received).toHaveLength(MESSAGES);
    expect(new Set(received.map((r) => r.seq)).size).toBe(MESSAGES);

    // per-partition order: offsets consecutive from 0 and sequence numbers rising
    const byPartition = Map.groupBy(received, (r) => r.partition);
    expect(byPartition.size).toBe(PARTITIONS);
    for (const [partition, list] of byPartition) {
      list.forEach((r, i) => expect(r.offset, `partition ${partition} position ${i}`).toBe(BigInt(i)));
      const seqs = list.map((r) => r.seq);
      expect(seqs, `partition ${partition}`).toEqual([...seqs].sort((a, b) => a - b));
    }

    // one key, one partition; key and headers as produced
    const partitionOfKey = new Map<string, Set<number>>();
    for (const r of received) {
      expect(r.key).toBe(`key-${r.seq % KEYS}`);
      expect(r.headers['x-seq']?.toString()).toBe(String(r.seq));
      expect(r.headers['x-source']?.toString()).toBe('conveyor-test');
      expect(r.headers['x-binary']?.equals(BINARY_HEADER)).toBe(true);
      partitionOfKey.set(r.key!, (partitionOfKey.get(r.key!) ?? new Set()).add(r.partition));
    }
    for (const [key, partitions] of partitionOfKey) expect(partitions.size, key).toBe(1);

    // the group's committed offsets, seen through the admin API, are the partitions' ends
    const committed = await committedOffsets(admin, groupId, topic);
    const ends = await admin.topicOffsets(topic);
    expect(ends).toHaveLength(PARTITIONS);
    for (const end of ends) expect(committed.get(end.partition), `partition ${end.partition}`).toBe(end.high);
  });

  it('a member that stops and rejoins resumes from the committed offset, not before, not after', async () => {
    const groupId = uniqueName('conveyor.test.group');
    const COMMIT_FIRST = 400;

    // First member: handles and commits 400 messages, then sees more without committing them, then leaves.
    const first = consumer(groupId);
    await first.connect();
    await first.subscribe({ topics: [topic] });
    const committedSeqs = new Set<number>();
    let uncommittedSeen = 0;
    void first.run({
      eachMessage: async ({ partition, message }) => {
        if (committedSeqs.size >= COMMIT_FIRST) {
          uncommittedSeen += 1;
          return;
        }
        await first.commitOffsets([{ topic, partition, offset: String(BigInt(message.offset) + 1n) }]);
        committedSeqs.add(decode(partition, message).seq);
      },
    });
    await waitFor('400 committed and more delivered', () => committedSeqs.size >= COMMIT_FIRST && uncommittedSeen > 0, 60_000);
    await first.disconnect();

    const committed = await committedOffsets(admin, groupId, topic);
    const committedTotal = [...committed.values()].reduce((sum, o) => sum + (o > 0n ? o : 0n), 0n);
    expect(committedTotal).toBe(BigInt(COMMIT_FIRST));

    // Second member of the same group: must start each partition exactly at the committed offset.
    const second = consumer(groupId);
    await second.connect();
    await second.subscribe({ topics: [topic] });
    const resumed: Received[] = [];
    void second.run({
      eachMessage: async ({ partition, message }) => {
        resumed.push(decode(partition, message));
        await second.commitOffsets([{ topic, partition, offset: String(BigInt(message.offset) + 1n) }]);
      },
    });
    await waitFor('the rest of the topic', () => resumed.length >= MESSAGES - COMMIT_FIRST, 60_000);
    await second.disconnect();

    expect(resumed).toHaveLength(MESSAGES - COMMIT_FIRST);
    for (const [partition, list] of Map.groupBy(resumed, (r) => r.partition)) {
      const from = committed.get(partition) ?? -1n;
      expect(list[0]!.offset, `first offset read on partition ${partition}`).toBe(from >= 0n ? from : 0n);
    }
    // nothing handled twice, nothing lost
    for (const r of resumed) expect(committedSeqs.has(r.seq), `seq ${r.seq} re-delivered`).toBe(false);
    expect(new Set([...committedSeqs, ...resumed.map((r) => r.seq)]).size).toBe(MESSAGES);
  });
});

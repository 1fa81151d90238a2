import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { createKafka, type Admin, type Kafka } from '../../src/kafka/client.ts';

/** A topic or group name no other test run uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}.${randomUUID().slice(0, 8)}`;
}

export function testKafka(clientId = 'conveyor-test'): Kafka {
  return createKafka({ brokers: inject('kafkaBrokers').split(','), clientId });
}

export async function createTopic(admin: Admin, topic: string, numPartitions: number): Promise<void> {
  const created = await admin.createTopics({ topics: [{ topic, numPartitions }], timeout: 30_000 });
  if (!created) throw new Error(`topic ${topic} already existed`);
}

/**
 * Deletes the test's topics and makes sure they stay deleted. Right after a runner stopped or a reader disconnected,
 * the broker sometimes auto-creates a just-deleted topic again (a metadata request with auto-creation still on its
 * way: the Confluent client's KafkaJS-style consumers default to allow.auto.create.topics=true), so this checks
 * and deletes again. Uses its own admin client, so nothing the test looked up is refreshed meanwhile.
 */
export async function deleteTopics(kafka: Kafka, topics: readonly string[]): Promise<void> {
  if (topics.length === 0) return;
  const cleaner = kafka.admin();
  await cleaner.connect();
  try {
    for (let round = 0; round < 5; round++) {
      const existing = new Set(await cleaner.listTopics());
      const left = topics.filter((t) => existing.has(t));
      if (left.length === 0) return;
      await cleaner.deleteTopics({ topics: left, timeout: 30_000 }).catch(() => {});
      await new Promise((r) => setTimeout(r, 300));
    }
  } finally {
    await cleaner.disconnect();
  }
}

/** Resolves when `check` returns true, polling; rejects with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface TestMessage {
  readonly key?: string;
  readonly value: unknown;
  readonly partition?: number;
  readonly headers?: Record<string, string>;
}

/** Produces (idempotent, acks=all) and resolves when the broker acknowledged everything. */
export async function produce(kafka: Kafka, topic: string, messages: readonly TestMessage[]): Promise<void> {
  const producer = kafka.producer({ 'enable.idempotence': true, acks: -1, 'linger.ms': 5 } as never);
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 1000) {
      await producer.send({
        topic,
        messages: messages.slice(i, i + 1000).map((m) => ({
          key: m.key ?? null,
          value: typeof m.value === 'string' ? m.value : JSON.stringify(m.value),
          ...(m.partition !== undefined ? { partition: m.partition } : {}),
          ...(m.headers ? { headers: m.headers } : {}),
        })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

/** The group's committed offset per partition (-1 = nothing committed). */
export async function committedOffsets(admin: Admin, groupId: string, topic: string): Promise<Map<number, bigint>> {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return new Map((entry?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
}

/** A record as stored: key and value bytes, headers as text. */
export interface RawRecord {
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, string>;
}

/** Reads every record of a topic from the beginning (a throwaway group), bytes as stored, until `count` arrived. */
export async function readTopicRaw(kafka: Kafka, topic: string, count: number, timeoutMs = 30_000): Promise<RawRecord[]> {
  // allowAutoTopicCreation false: otherwise the reader's metadata requests re-create the topic after a test deleted it
  const consumer = kafka.consumer({
    kafkaJS: { groupId: uniqueName('conveyor.test.reader'), fromBeginning: true, autoCommit: false, allowAutoTopicCreation: false },
  });
  const got: RawRecord[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic] });
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(Array.isArray(v) ? v[v.length - 1] : v);
        got.push({ partition, offset: message.offset, key: message.key ?? null, value: message.value ?? null, headers });
      },
    });
    await waitFor(`${count} messages on ${topic}`, () => got.length >= count, timeoutMs);
  } finally {
    await consumer.disconnect();
  }
  return got;
}

/** Reads every message of a topic from the beginning (a throwaway group), until `count` arrived; key and value as text. */
export async function readTopic(kafka: Kafka, topic: string, count: number, timeoutMs = 30_000): Promise<Array<{ partition: number; offset: string; key: string | null; value: string; headers: Record<string, string> }>> {
  return (await readTopicRaw(kafka, topic, count, timeoutMs)).map((r) => ({
    ...r,
    key: r.key?.toString() ?? null,
    value: r.value?.toString() ?? '',
  }));
}

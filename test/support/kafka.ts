import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { KafkaAdmin } from '../../src/kafka/admin.ts';
import { createKafka, type Kafka } from '../../src/kafka/client.ts';

/** A topic or group name no other test run uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}.${randomUUID().slice(0, 8)}`;
}

export function testKafka(clientId = 'conveyor-test'): Kafka {
  return createKafka({ brokers: inject('kafkaBrokers').split(','), clientId });
}

/**
 * An admin client of the test brokers (or of `brokers`): Conveyor's admin port (pure JavaScript), so no test
 * process holds a native admin client — those crashed test processes (a never-seen group, a broker going away).
 */
export function testAdmin(clientId = 'conveyor-test', brokers = inject('kafkaBrokers')): KafkaAdmin {
  return new KafkaAdmin({ brokers: brokers.split(','), clientId, timeoutMs: 30_000 });
}

export async function createTopic(admin: KafkaAdmin, topic: string, numPartitions: number): Promise<void> {
  if (!(await admin.createTopic(topic, numPartitions))) throw new Error(`topic ${topic} already existed`);
}

/**
 * Deletes the test's topics and makes sure they stay deleted. Right after a runner stopped, the broker sometimes
 * auto-creates a just-deleted topic again (a metadata request with auto-creation still on its way: the Confluent
 * client's KafkaJS-style consumers default to allow.auto.create.topics=true), so this checks and deletes again.
 * Uses an admin client of its own, so nothing the test looked up is refreshed meanwhile.
 */
export async function deleteTopics(topics: readonly string[]): Promise<void> {
  if (topics.length === 0) return;
  const cleaner = testAdmin('conveyor-test-cleaner');
  try {
    for (let round = 0; round < 5; round++) {
      const existing = await cleaner.topics();
      const left = topics.filter((t) => existing.has(t));
      if (left.length === 0) return;
      await cleaner.deleteTopics(left).catch(() => {});
      await new Promise((r) => setTimeout(r, 300));
    }
  } finally {
    await cleaner.close();
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

/** The group's committed offset per partition; partitions without one are absent (a never-seen group: empty). */
export async function committedOffsets(admin: KafkaAdmin, groupId: string, topic: string): Promise<Map<number, bigint>> {
  return (await admin.committedOffsets(groupId, [topic])).get(topic) ?? new Map();
}

/** A record as stored: key and value bytes, headers as text. */
export interface RawRecord {
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, string>;
}

/**
 * Reads every record of a topic from its start to its end, bytes as stored, until `count` are there (re-reading
 * while fewer are); through the admin port's Fetch requests: no group, no native client. Headers as text, the
 * last of a repeated name.
 */
export async function readTopicRaw(topic: string, count: number, timeoutMs = 30_000): Promise<RawRecord[]> {
  const admin = testAdmin('conveyor-test-reader');
  let got: RawRecord[] = [];
  try {
    await waitFor(
      `${count} messages on ${topic}`,
      async () => {
        const marks = await admin.topicOffsets(topic).catch(() => []);
        const records: RawRecord[] = [];
        for (const m of marks) {
          await admin.read(topic, [{ partition: m.partition, from: m.low, to: m.high }], (r) => {
            const headers: Record<string, string> = {};
            for (const [k, v] of r.headers) headers[k] = v?.toString('utf8') ?? '';
            records.push({ partition: r.partition, offset: String(r.offset), key: r.key, value: r.value, headers });
          });
        }
        got = records;
        return got.length >= count;
      },
      timeoutMs,
    );
  } finally {
    await admin.close();
  }
  return got;
}

/** Reads every message of a topic from its start, until `count` are there; key and value as text. */
export async function readTopic(topic: string, count: number, timeoutMs = 30_000): Promise<Array<{ partition: number; offset: string; key: string | null; value: string; headers: Record<string, string> }>> {
  return (await readTopicRaw(topic, count, timeoutMs)).map((r) => ({
    ...r,
    key: r.key?.toString() ?? null,
    value: r.value?.toString() ?? '',
  }));
}

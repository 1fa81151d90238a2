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

/** Resolves when `check` returns true, polling; rejects with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

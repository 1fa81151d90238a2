/**
 * The TopicInspector of the Kafka sources (start-position.ts) over the pure-JavaScript client's admin API: partition
 * counts and end offsets, each request bounded by a timeout. Not the native client: its admin requests can crash
 * the process (DESIGN.md, "The second Kafka client").
 */
import { Admin } from '@platformatic/kafka';
import type { TopicInspector } from './start-position.ts';

export interface TopicInspectorOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
}

const LATEST = -1n;

export class PlatformaticTopicInspector implements TopicInspector {
  readonly #options: TopicInspectorOptions;
  #admin: Admin | undefined;

  constructor(options: TopicInspectorOptions) {
    this.#options = options;
  }

  #client(timeoutMs: number): Admin {
    this.#admin ??= new Admin({ clientId: this.#options.clientId, bootstrapBrokers: [...this.#options.brokers], timeout: timeoutMs, retries: 3, retryDelay: 250 });
    return this.#admin;
  }

  async partitionCounts(topics: readonly string[], timeoutMs: number): Promise<Map<string, number>> {
    const admin = this.#client(timeoutMs);
    const counts = new Map<string, number>();
    await Promise.all(
      topics.map(async (topic) => {
        try {
          const metadata = await bounded(admin.metadata({ topics: [topic], forceUpdate: true }), timeoutMs);
          counts.set(topic, metadata.topics.get(topic)?.partitionsCount ?? 0);
        } catch (err) {
          if (!/unknown topic/i.test((err as Error)?.message ?? '')) throw err;
          counts.set(topic, 0);
        }
      }),
    );
    return counts;
  }

  async endOffsets(topic: string, partitions: readonly number[], timeoutMs: number): Promise<Map<number, bigint>> {
    const admin = this.#client(timeoutMs);
    const listed = await bounded(admin.listOffsets({ topics: [{ name: topic, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp: LATEST })) }] }), timeoutMs);
    return new Map((listed[0]?.partitions ?? []).map((p) => [p.partitionIndex, p.offset]));
  }

  async close(): Promise<void> {
    const admin = this.#admin;
    this.#admin = undefined;
    await admin?.close().catch(() => {});
  }
}

function bounded<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

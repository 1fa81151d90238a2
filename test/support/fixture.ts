/**
 * The set-up the integration tests on Kafka share: a client, a connected admin, fresh topics that are deleted
 * afterwards, and runner processes that are killed after each test whatever its outcome.
 */
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import type { KafkaAdmin } from '../../src/kafka/admin.ts';
import type { Kafka } from '../../src/kafka/client.ts';
import { createTopic, deleteTopics, testAdmin, testKafka, uniqueName } from './kafka.ts';
import { startRunner, type RunnerOptions, type RunnerProcess } from './runner.ts';

export interface FreshTopic {
  readonly topic: string;
  /** The topic's default dead-letter topic; the runner creates it on first use. */
  readonly dlq: string;
  /** A consumer group no other test uses. */
  readonly group: string;
}

export interface KafkaFixture {
  /** The test client; set from `beforeAll` on. */
  readonly kafka: Kafka;
  /** An admin client (Conveyor's admin port); set from `beforeAll` on (from `beforeEach` on with `scope: 'test'`). */
  readonly admin: KafkaAdmin;
  /**
   * Creates `conveyor.test.<prefix>.<random>` with `partitions` partitions and names a fresh group for it. The
   * topic and its dead-letter topic are deleted after the test (`scope: 'test'`) or after the file.
   */
  topic(prefix: string, partitions: number): Promise<FreshTopic>;
  /** Has `runner` SIGKILLed after the current test (a no-op if it already exited); returns it. */
  track<R extends RunnerProcess>(runner: R): R;
  /** `startRunner` from support/runner.ts, tracked. */
  startRunner(options: RunnerOptions): Promise<RunnerProcess>;
}

export interface KafkaFixtureOptions {
  /**
   * 'file' (default): one admin client for the whole describe block, topics deleted after all its tests.
   * 'test': a fresh admin client for every test, and each test's topics deleted right after it.
   */
  readonly scope?: 'file' | 'test';
}

/** Registers the vitest hooks of the shared set-up; call it at the top of a `describe` block. */
export function useKafkaFixture(options: KafkaFixtureOptions = {}): KafkaFixture {
  const perTest = options.scope === 'test';
  let kafka: Kafka | undefined;
  let admin: KafkaAdmin | undefined;
  let topics: string[] = [];
  let runners: RunnerProcess[] = [];

  const connectAdmin = (): void => {
    admin = testAdmin();
  };
  // The admin goes first: deleteTopics checks with a client of its own that the topics stay deleted.
  const cleanUp = async (): Promise<void> => {
    const connected = admin;
    admin = undefined;
    try {
      await connected?.close();
    } finally {
      await deleteTopics(topics);
      topics = [];
    }
  };

  beforeAll(async () => {
    kafka = testKafka();
    if (!perTest) connectAdmin();
  });
  if (perTest) beforeEach(connectAdmin);

  afterEach(async () => {
    await Promise.all(runners.map((r) => r.stop('SIGKILL')));
    runners = [];
    if (perTest) await cleanUp();
  });
  if (!perTest) afterAll(cleanUp);

  const fixture: KafkaFixture = {
    get kafka(): Kafka {
      if (!kafka) throw new Error('the Kafka fixture is used before its beforeAll ran');
      return kafka;
    },
    get admin(): KafkaAdmin {
      if (!admin) throw new Error('the Kafka fixture admin is used outside the tests and their hooks');
      return admin;
    },
    async topic(prefix, partitions) {
      const topic = uniqueName(`conveyor.test.${prefix}`);
      const dlq = `${topic}.dlq`;
      topics.push(topic, dlq);
      await createTopic(fixture.admin, topic, partitions);
      return { topic, dlq, group: uniqueName(`conveyor.test.${prefix}-group`) };
    },
    track(runner) {
      runners.push(runner);
      return runner;
    },
    async startRunner(runnerOptions) {
      return fixture.track(await startRunner(runnerOptions));
    },
  };
  return fixture;
}

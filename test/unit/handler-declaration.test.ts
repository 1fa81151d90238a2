import { describe, expect, it } from 'vitest';
import { defineHandler } from '../../src/handlers/define-handler.ts';
import { declarationProblems, SHARED_CONSUMER, sharedConsumers, toSpec } from '../../src/handlers/discover.ts';
import type { ConveyorConfig } from '../../src/config/schema.ts';

const handle = async () => {};

describe('handler declarations', () => {
  it('accepts a minimal handler', () => {
    expect(declarationProblems(defineHandler({ topic: 'orders', handle }))).toEqual([]);
  });

  it('rejects a default export that is not defineHandler(...)', () => {
    expect(declarationProblems({ topic: 'orders', handle })[0]).toMatch(/default export is not a handler/);
    expect(declarationProblems(undefined)[0]).toMatch(/defineHandler/);
  });

  it('lists every problem of a nonsense declaration, one line each', () => {
    const problems = declarationProblems(
      defineHandler({
        topic: 'bad topic!',
        retry: { attempts: -1, backoffMs: 'soon' as unknown as number },
        timeoutMs: 0,
        deserialize: 'xml' as 'json',
        deadLetter: { topic: '' },
        handle: 'nope' as unknown as typeof handle,
      }),
    );
    expect(problems).toEqual([
      'handle must be a function: async handle(message, ctx)',
      'topic must be a Kafka topic name ([a-zA-Z0-9._-], 1-249 characters); got "bad topic!"',
      'retry.attempts must be an integer from 0 to 100 (retries after the first failure); got -1',
      'retry.backoffMs must be a number of milliseconds from 0 to 3600000; got "soon"',
      'timeoutMs must be an integer from 1 to 3600000; got 0',
      'deadLetter must be false or { topic: "<kafka topic name>" }',
      'deserialize must be one of json, string, buffer; got "xml"',
    ]);
  });

  it('needs exactly one of topic and topics', () => {
    expect(declarationProblems(defineHandler({ handle }))).toContain('declares no topic or queue: add topic: "<name>", topics: ["<name>", ...] or queue: "<name>"');
    expect(declarationProblems(defineHandler({ topic: 'a', topics: ['b'], handle }))).toContain('declare either topic or topics, not both');
    expect(declarationProblems(defineHandler({ topics: [], handle }))).toContain('topics must be a non-empty array of topic names');
  });

  it('fills defaults from the configuration', () => {
    const config = {
      kafka: { environment: 'prod', group: 'shop', deadLetterTopic: '' },
      retry: { maxAttempts: 3, backoffBaseSeconds: 1, backoffMaxSeconds: 30 },
      handlers: { timeoutMs: 30_000 },
    } as ConveyorConfig;
    const spec = toSpec(defineHandler({ topic: 'orders', handle }), '/h/orders-handler.ts', config);
    expect(spec).toMatchObject({
      name: 'orders-handler', topics: ['orders'], group: 'prod.shop.orders-handler', maxRetries: 3,
      backoff: { baseMs: 1000, maxMs: 30_000 }, timeoutMs: 30_000, deserialize: 'json', url: 'file:///h/orders-handler.ts',
    });
    expect(spec.deadLetterTopicFor('orders')).toBe('orders.dlq');
    const shared = toSpec(defineHandler({ topic: 'orders', handle }), '/h/x.ts', { ...config, kafka: { ...config.kafka, deadLetterTopic: 'dlq-events' } });
    expect(shared.deadLetterTopicFor('orders')).toBe('dlq-events');
    const own = toSpec(defineHandler({ topic: 'orders', deadLetter: { topic: 'orders.failed' }, retry: { attempts: 0, backoffMs: 5 }, handle }), '/h/x.ts', config);
    expect(own.deadLetterTopicFor('orders')).toBe('orders.failed');
    expect(own.maxRetries).toBe(0);
    expect(own.backoff.baseMs).toBe(5);
    expect(toSpec(defineHandler({ topic: 'orders', deadLetter: false, handle }), '/h/x.ts', config).deadLetterTopicFor('orders')).toBeNull();
  });
});

describe('RabbitMQ queue declarations', () => {
  const config = {
    kafka: { environment: 'prod', group: 'shop', deadLetterTopic: 'kafka-dlq' },
    retry: { maxAttempts: 3, backoffBaseSeconds: 1, backoffMaxSeconds: 30 },
    handlers: { timeoutMs: 30_000 },
  } as ConveyorConfig;

  it('accepts a queue, with or without an exchange binding', () => {
    expect(declarationProblems(defineHandler({ queue: 'billing.invoices', handle }))).toEqual([]);
    expect(declarationProblems(defineHandler({ queue: 'billing.invoices', exchange: 'shop', routingKey: 'order.*', concurrency: 4, prefetch: 8, handle }))).toEqual([]);
    expect(declarationProblems(defineHandler({ queue: 'q', exchange: 'amq.topic', exchangeType: 'topic', deadLetter: { queue: 'q.failed' }, handle }))).toEqual([]);
  });

  it('fills the RabbitMQ defaults: ordered (one at a time), prefetch enough to micro-batch, <queue>.dlq, bind everything', () => {
    const spec = toSpec(defineHandler({ queue: 'billing', exchange: 'shop', handle }), '/h/billing.ts', config);
    expect(spec).toMatchObject({
      broker: 'rabbitmq', topics: ['billing'], maxRetries: 3, ordering: 'partition', concurrency: 1,
      queue: { name: 'billing', exchange: 'shop', routingKey: '#', exchangeType: 'topic', prefetch: 250 },
    });
    // KAFKA_DEAD_LETTER_TOPIC names a Kafka topic: a queue keeps its own dead-letter queue
    expect(spec.deadLetterTopicFor('billing')).toBe('billing.dlq');
    const parallel = toSpec(defineHandler({ queue: 'q', concurrency: 8, deadLetter: { queue: 'q.failed' }, handle }), '/h/q.ts', config);
    expect(parallel).toMatchObject({ ordering: 'unordered', concurrency: 8, queue: { prefetch: 250 } });
    expect(toSpec(defineHandler({ queue: 'q', concurrency: 300, handle }), '/h/q.ts', config).queue).toMatchObject({ prefetch: 600 });
    expect(toSpec(defineHandler({ queue: 'q', concurrency: 8, ordering: 'key', handle }), '/h/q.ts', config)).toMatchObject({ ordering: 'key', concurrency: 8 });
    expect(parallel.deadLetterTopicFor('q')).toBe('q.failed');
    expect(toSpec(defineHandler({ queue: 'q', deadLetter: false, handle }), '/h/q.ts', config).deadLetterTopicFor('q')).toBeNull();
    expect(toSpec(defineHandler({ topic: 't', handle }), '/h/t.ts', config).broker).toBe('kafka');
  });

  it('lists every problem of a nonsense queue declaration, one line each', () => {
    expect(
      declarationProblems(
        defineHandler({
          queue: 'amq.mine',
          topic: 'orders',
          routingKey: 'x',
          concurrency: 0,
          prefetch: 70_000,
          deadLetter: { topic: 'orders.dlq' },
          handle,
        } as never),
      ),
    ).toEqual([
      'declare either a RabbitMQ queue or Kafka topics, not both (queue, topic given)',
      'queue must be a RabbitMQ queue name (1-200 letters, digits, \'.\', \'_\', \':\', \'/\' or \'-\', not starting with "amq."); got "amq.mine"',
      'routingKey needs an exchange to bind the queue to: add exchange: "<name>"',
      'prefetch must be an integer from 1 to 65535; got 70000',
      'deadLetter must be false or { queue: "<queue name>" } for a RabbitMQ handler',
      'concurrency must be an integer from 1 to 4096 (runs of this handler at once in the process); got 0',
    ]);
  });

  it('rejects a prefetch below the concurrency, and RabbitMQ options on a Kafka handler', () => {
    expect(declarationProblems(defineHandler({ queue: 'q', concurrency: 4, prefetch: 2, handle }))).toEqual([
      'prefetch (2) must be at least concurrency (4), or some of the parallel slots never get a message',
    ]);
    expect(declarationProblems(defineHandler({ topic: 't', concurrency: 2, exchange: 'x', handle }))).toEqual([
      'exchange applies to RabbitMQ handlers only (declare queue: "<name>")',
    ]);
  });

  it('refuses ordering "partition" with concurrency above 1 on a queue (one ordered stream: the slots would never be used)', () => {
    expect(declarationProblems(defineHandler({ queue: 'q', ordering: 'partition', concurrency: 4, handle }))).toEqual([
      'a queue is one ordered stream: ordering "partition" runs its messages one at a time, so concurrency 4 would never be used; declare ordering: "unordered" (any order) or "key" (in order per routing key), or leave concurrency out',
    ]);
  });
});

describe('ordering and concurrency declarations', () => {
  const config = {
    kafka: { environment: 'prod', group: 'shop', deadLetterTopic: '' },
    retry: { maxAttempts: 3, backoffBaseSeconds: 1, backoffMaxSeconds: 30 },
    handlers: { timeoutMs: 30_000 },
  } as ConveyorConfig;

  it('defaults a Kafka handler to partition ordering with concurrency 64', () => {
    expect(toSpec(defineHandler({ topic: 't', handle }), '/h/t.ts', config)).toMatchObject({ ordering: 'partition', concurrency: 64 });
    expect(toSpec(defineHandler({ topic: 't', ordering: 'key', concurrency: 256, handle }), '/h/t.ts', config)).toMatchObject({ ordering: 'key', concurrency: 256 });
  });

  it('names the allowed values of a wrong ordering or concurrency', () => {
    expect(declarationProblems(defineHandler({ topic: 't', ordering: 'random' as never, concurrency: 5000, handle }))).toEqual([
      'ordering must be one of "partition", "key", "unordered"; got "random"',
      'concurrency must be an integer from 1 to 4096 (runs of this handler at once in the process); got 5000',
    ]);
    expect(declarationProblems(defineHandler({ topic: 't', concurrency: 1.5, handle }))).toHaveLength(1);
  });
});

describe('handler files that would share their messages', () => {
  const config = {
    kafka: { environment: 'prod', group: 'shop', deadLetterTopic: '' },
    retry: { maxAttempts: 3, backoffBaseSeconds: 1, backoffMaxSeconds: 30 },
    handlers: { timeoutMs: 30_000 },
  } as ConveyorConfig;

  it('refuses two files with the same explicit group and topic, naming both, with a stable code', () => {
    const audit = toSpec(defineHandler({ topic: 'orders', group: 'orders-group', handle }), '/h/orders-audit.ts', config);
    const billing = toSpec(defineHandler({ topics: ['payments', 'orders'], group: 'orders-group', handle }), '/h/orders-billing.ts', config);
    const errors = sharedConsumers([audit, billing]);
    expect(errors.map((e) => [e.code, e.context.file])).toEqual([
      [SHARED_CONSUMER, '/h/orders-audit.ts'],
      [SHARED_CONSUMER, '/h/orders-billing.ts'],
    ]);
    expect(SHARED_CONSUMER).toBe('conveyor.handler.shared_consumer');
    expect(errors[0]!.problems).toEqual([
      'conveyor.handler.shared_consumer: group "orders-group" on topic "orders" is also used by /h/orders-billing.ts (handler "orders-billing"): ' +
        "the handlers would split the topic's partitions between them, each seeing only part of it; give each handler its own group " +
        '(or leave group out: it defaults to one per handler name), or consume the topic in one handler file',
    ]);
    expect(errors[1]!.message).toContain('is also used by /h/orders-audit.ts (handler "orders-audit")');
  });

  it('refuses a group equal to another handler’s derived group on its topic, and two files on one queue', () => {
    const derived = toSpec(defineHandler({ topic: 'orders', handle }), '/h/orders.ts', config);
    const explicit = toSpec(defineHandler({ topic: 'orders', group: 'prod.shop.orders', handle }), '/h/copy.ts', config);
    expect(sharedConsumers([derived, explicit])).toHaveLength(2);
    const a = toSpec(defineHandler({ queue: 'receipts', handle }), '/h/a.ts', config);
    const b = toSpec(defineHandler({ queue: 'receipts', concurrency: 4, handle }), '/h/b.ts', config);
    expect(sharedConsumers([a, b]).map((e) => e.problems[0])).toEqual([
      'conveyor.handler.shared_consumer: queue "receipts" is also consumed by /h/b.ts (handler "b"): the handlers would compete for its messages, each getting only some of them; consume the queue in one handler file',
      'conveyor.handler.shared_consumer: queue "receipts" is also consumed by /h/a.ts (handler "a"): the handlers would compete for its messages, each getting only some of them; consume the queue in one handler file',
    ]);
  });

  it('accepts one group on different topics, different groups on one topic, and a topic that is also a queue name', () => {
    const specs = [
      toSpec(defineHandler({ topic: 'orders', group: 'g', handle }), '/h/a.ts', config),
      toSpec(defineHandler({ topic: 'payments', group: 'g', handle }), '/h/b.ts', config),
      toSpec(defineHandler({ topic: 'orders', handle }), '/h/c.ts', config),
      toSpec(defineHandler({ topic: 'orders', handle }), '/h/d.ts', config),
      toSpec(defineHandler({ queue: 'orders', handle }), '/h/e.ts', config),
    ];
    expect(sharedConsumers(specs)).toEqual([]);
  });
});

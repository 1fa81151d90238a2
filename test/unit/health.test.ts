import { describe, expect, it } from 'vitest';
import { eventBusHealth, readiness, type HealthSnapshot, type KafkaSourceHealth } from '../../src/ops/health.ts';

const kafkaSource = (over: Partial<KafkaSourceHealth> = {}): KafkaSourceHealth => ({
  handler: 'orders',
  group: 'prod.shop.orders',
  topics: ['shop.events.orders'],
  connected: true,
  assigned: true,
  partitions: 3,
  ...over,
});

const running = (over: Partial<HealthSnapshot> = {}): HealthSnapshot => ({
  started: true,
  stopping: false,
  kafka: { up: true, sources: [kafkaSource()] },
  circuits: { kafka: 'closed', rabbitmq: 'closed' },
  ...over,
});

const identity = { environment: 'prod', group: 'shop', bootstrapServers: 'k1:9092,k2:9092', subscriberCount: 2, topicCount: 2 };

describe('readiness', () => {
  it('is ready once started with every Kafka consumer connected and assigned and Kafka reachable', () => {
    expect(readiness(running())).toEqual({ ready: true, reasons: [] });
  });

  it('is ready with an empty assignment: a group with more members than partitions leaves some members idle', () => {
    expect(readiness(running({ kafka: { up: true, sources: [kafkaSource({ partitions: 0 })] } })).ready).toBe(true);
  });

  it('is not ready before start-up finished', () => {
    const r = readiness(running({ started: false, kafka: { up: undefined, sources: [kafkaSource({ connected: false, assigned: false, partitions: 0 })] } }));
    expect(r.ready).toBe(false);
    expect(r.reasons).toEqual(['starting: not every consumer is connected yet', 'handler orders: Kafka consumer (group prod.shop.orders) not connected']);
  });

  it('waits for the first assignment of every group after connecting', () => {
    const r = readiness(running({ kafka: { up: true, sources: [kafkaSource(), kafkaSource({ handler: 'users', group: 'prod.shop.users', assigned: false, partitions: 0 })] } }));
    expect(r).toEqual({ ready: false, reasons: ['handler users: waiting for the first partition assignment of group prod.shop.users'] });
  });

  it('does not wait for the first reachability check when the consumers are assigned', () => {
    expect(readiness(running({ kafka: { up: undefined, sources: [kafkaSource()] } })).ready).toBe(true);
  });

  it('is not ready while Kafka is unreachable, even with partitions assigned, and says why', () => {
    const r = readiness(running({ kafka: { up: false, reason: 'Local: Timed out', sources: [kafkaSource()] } }));
    expect(r).toEqual({ ready: false, reasons: ['Kafka unreachable: Local: Timed out'] });
  });

  it('needs every RabbitMQ consumer set up and the connection up', () => {
    const rabbit = (consuming: boolean, up: boolean) => ({ up, sources: [{ handler: 'receipts', queue: 'shop.receipts', consuming }] });
    expect(readiness(running({ rabbitmq: rabbit(true, true) })).ready).toBe(true);
    expect(readiness(running({ rabbitmq: rabbit(false, true) })).reasons).toEqual(['handler receipts: RabbitMQ consumer of queue shop.receipts not set up']);
    expect(readiness(running({ rabbitmq: { ...rabbit(false, false), reason: 'the connection is down' } })).reasons).toEqual([
      'RabbitMQ unreachable: the connection is down',
      'handler receipts: RabbitMQ consumer of queue shop.receipts not set up',
    ]);
  });

  it('is not ready while shutting down', () => {
    expect(readiness(running({ stopping: true }))).toEqual({ ready: false, reasons: ['shutting down'] });
  });

  it('does not depend on the publish circuit breakers', () => {
    expect(readiness(running({ circuits: { kafka: 'open', rabbitmq: 'half_open' } })).ready).toBe(true);
  });
});

describe('event-bus health (seed 001 health_check)', () => {
  it("reports seed 001's fields: healthy, started, environment, group, bootstrap servers, circuit state, counts", () => {
    const h = eventBusHealth(
      running({
        kafka: { up: true, sources: [kafkaSource(), kafkaSource({ handler: 'users', group: 'prod.shop.users', partitions: 0 })] },
        rabbitmq: { up: true, sources: [{ handler: 'receipts', queue: 'shop.receipts', consuming: true }] },
      }),
      { ...identity, subscriberCount: 3, topicCount: 3 },
    );
    expect(h).toEqual({
      healthy: true,
      started: true,
      environment: 'prod',
      group: 'shop',
      bootstrap_servers: 'k1:9092,k2:9092',
      circuit_state: 'closed',
      rabbitmq_circuit_state: 'closed',
      subscriber_count: 3,
      topic_count: 3,
      consumer_count: 3,
      assigned_partitions: 3,
      brokers: { kafka: { up: true }, rabbitmq: { up: true } },
      reasons: [],
    });
  });

  it('is unhealthy when a publish circuit is open, though ready', () => {
    const h = eventBusHealth(running({ circuits: { kafka: 'open', rabbitmq: 'closed' } }), identity);
    expect(h.healthy).toBe(false);
    expect(h.circuit_state).toBe('open');
    expect(h.reasons).toEqual(['the Kafka publish circuit breaker is open']);
  });

  it('is unhealthy and counts only live consumers while Kafka is down; shows the broker down with the reason', () => {
    const h = eventBusHealth(running({ kafka: { up: false, reason: 'Local: Timed out', sources: [kafkaSource()] } }), identity);
    expect(h.healthy).toBe(false);
    expect(h.started).toBe(true);
    expect(h.brokers).toEqual({ kafka: { up: false, reason: 'Local: Timed out' } });
  });

  it('shows a broker not checked yet as up: null, and only the brokers handlers consume from', () => {
    const h = eventBusHealth(running({ started: false, kafka: { up: undefined, sources: [kafkaSource({ connected: false, assigned: false, partitions: 0 })] } }), identity);
    expect(h.brokers).toEqual({ kafka: { up: null } });
    expect(h.started).toBe(false);
    expect(h.consumer_count).toBe(0);
    expect(h.healthy).toBe(false);
  });

  it('started is false again once shutting down', () => {
    expect(eventBusHealth(running({ stopping: true }), identity).started).toBe(false);
  });
});

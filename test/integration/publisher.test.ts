/** Publishing (seed 000/001/004) against the real broker, and against an address where no broker answers. */
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { BrokerFailure } from '../../src/failure/errors.ts';
import { aggregateKey, createPublisher, eventTopic } from '../../src/publish/kafka-publisher.ts';
import { readTopic } from '../support/kafka.ts';
import { useKafkaFixture } from '../support/fixture.ts';
import { getFreePort } from '../support/free-port.ts';

describe('publisher', () => {
  const fx = useKafkaFixture();

  it('publishes keyed JSON events with headers; one aggregate keeps one partition (seed 004 layout)', async () => {
    const { topic } = await fx.topic('publish', 6);
    const config = loadConfig({ env: { KAFKA_BOOTSTRAP_SERVERS: inject('kafkaBrokers'), KAFKA_COMPRESSION: 'zstd' } });
    const publisher = createPublisher(config);
    try {
      const events = Array.from({ length: 30 }, (_, i) => ({
        key: aggregateKey('orders', `order-${i % 5}`),
        value: { type: 'OrderPlaced', seq: i },
        headers: { 'x-correlation-id': `corr-${i}` },
      }));
      const sent = await publisher.publish(topic, events);
      expect(sent.length).toBeGreaterThan(0);
      expect(publisher.circuitState).toBe('closed');
    } finally {
      await publisher.close();
    }
    const got = await readTopic(topic, 30);
    expect(got).toHaveLength(30);
    const partitionsOf = new Map<string, Set<number>>();
    for (const m of got) partitionsOf.set(m.key!, (partitionsOf.get(m.key!) ?? new Set()).add(m.partition));
    expect([...partitionsOf.keys()].sort()).toEqual([0, 1, 2, 3, 4].map((i) => `orders:order-${i}`));
    for (const partitions of partitionsOf.values()) expect(partitions.size).toBe(1);
    for (const [, list] of Map.groupBy(got, (m) => m.key!)) {
      const seqs = list.map((m) => (JSON.parse(m.value) as { seq: number }).seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b)); // an aggregate's events in order
    }
    const first = got.find((m) => (JSON.parse(m.value) as { seq: number }).seq === 7)!;
    expect(first.headers['x-correlation-id']).toBe('corr-7');
    expect(eventTopic('shop', 'orders')).toBe('shop.events.orders');
  });

  it('fails fast with events.broker.unavailable when no broker answers and opens the breaker', async () => {
    const port = await getFreePort(); // nothing listens there
    const config = loadConfig({
      env: {
        KAFKA_BOOTSTRAP_SERVERS: `127.0.0.1:${port}`,
        KAFKA_PUBLISH_TIMEOUT_MS: '500',
        KAFKA_CIRCUIT_BREAKER_THRESHOLD: '2',
        KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT: '60',
      },
    });
    const publisher = createPublisher(config);
    try {
      for (let i = 0; i < 2; i++) {
        const started = Date.now();
        const attempt = publisher.publish('conveyor.test.nowhere', { key: 'k', value: { i } });
        await expect(attempt).rejects.toBeInstanceOf(BrokerFailure);
        await expect(attempt).rejects.toMatchObject({ code: 'events.broker.unavailable', retriable: true });
        await expect(attempt).rejects.toThrow(/unreachable|did not acknowledge/);
        expect(Date.now() - started, 'bounded by publish.timeoutMs').toBeLessThan(2_500);
      }
      expect(publisher.circuitState).toBe('open');
      const started = Date.now();
      await expect(publisher.publish('conveyor.test.nowhere', { value: 'x' })).rejects.toMatchObject({
        code: 'events.broker.unavailable',
        circuitState: 'open',
      });
      expect(Date.now() - started, 'an open circuit fails at once').toBeLessThan(100);
    } finally {
      await publisher.close();
    }
  });
});

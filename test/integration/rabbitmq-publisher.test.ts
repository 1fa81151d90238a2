/**
 * Publishing to RabbitMQ (issue 5, items 3 and 4) against the real broker: persistent messages confirmed before
 * `publish` resolves, unroutable messages refused, fail-fast when RabbitMQ is unreachable or stopped with nothing
 * buffered and sent later, and the circuit breaker on a real connection whose network is cut and restored.
 */
import { afterAll, describe, expect, it } from 'vitest';
import amqpManager from 'amqp-connection-manager';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import { BrokerFailure } from '../../src/failure/errors.ts';
import { createPublisher, type Publisher } from '../../src/publish/kafka-publisher.ts';
import { PublishRefused, RabbitPublisher } from '../../src/publish/rabbitmq-publisher.ts';
import { getFreePort } from '../support/free-port.ts';
import { waitFor } from '../support/kafka.ts';
import { deleteExchanges, deleteQueues, drainQueue, openChannel, rabbitApp, startTcpProxy, testAmqpUrl, uniqueQueue } from '../support/rabbitmq.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function rabbitConfig(env: Record<string, string> = {}) {
  return loadConfig({ env: { AMQP_URL: testAmqpUrl(), ...env } });
}

describe('RabbitMQ publisher', () => {
  const queues: string[] = [];
  const exchanges: string[] = [];
  const queue = (prefix: string): string => {
    const name = uniqueQueue(`conveyor.test.${prefix}`);
    queues.push(name);
    return name;
  };
  const exchange = (prefix: string): string => {
    const name = uniqueQueue(`conveyor.test.${prefix}`);
    exchanges.push(name);
    return name;
  };

  afterAll(async () => {
    await deleteQueues(queues);
    await deleteExchanges(exchanges);
  });

  it('publishes persistent JSON, text and binary messages with headers to the default exchange, confirmed before publish resolves', async () => {
    const target = queue('publish');
    const { channel, close } = await openChannel();
    const publisher = createPublisher(rabbitConfig(), { broker: 'rabbitmq' });
    try {
      await channel.assertQueue(target, { durable: true });
      const before = Math.floor(Date.now() / 1000);
      const records = await publisher.publish('', [
        { key: target, value: { type: 'OrderPlaced', orderId: 'o-1' }, headers: { 'x-correlation-id': 'corr-1', 'x-raw': Buffer.from([1, 2, 3]) } },
        { key: target, value: 'plain text' },
        { key: Buffer.from(target), value: Buffer.from([0xde, 0xad, 0xbe, 0xef]) },
      ]);
      // confirmed means stored: the queue holds all three the moment publish resolved
      expect((await channel.checkQueue(target)).messageCount).toBe(3);
      expect(records).toHaveLength(3);
      for (const r of records) expect(r).toMatchObject({ topic: '', partition: -1, routingKey: target, messageId: expect.stringMatching(UUID) });
      expect(publisher.circuitState).toBe('closed');

      const got = await drainQueue(channel, target, { count: 3, timeoutMs: 5_000 });
      expect(got.map((m) => m.properties.deliveryMode), 'persistent').toEqual([2, 2, 2]);
      expect(got.map((m) => m.properties.messageId)).toEqual(records.map((r) => r.messageId));
      expect(JSON.parse(got[0]!.content.toString())).toEqual({ type: 'OrderPlaced', orderId: 'o-1' });
      expect(got[0]!.properties.contentType).toBe('application/json');
      expect(got[0]!.properties.headers?.['x-correlation-id']).toBe('corr-1');
      expect(Buffer.from(got[0]!.properties.headers?.['x-raw'] as Buffer)).toEqual(Buffer.from([1, 2, 3]));
      expect(got[1]!.content.toString()).toBe('plain text');
      expect(got[2]!.content).toEqual(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
      for (const m of got) {
        expect(m.fields.routingKey).toBe(target);
        expect(m.properties.timestamp).toBeGreaterThanOrEqual(before);
        expect(m.properties.timestamp).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
      }
    } finally {
      await publisher.close();
      await close();
    }
  });

  it('routes by key through a bound topic exchange and a direct exchange; concurrent publishes all land', async () => {
    const orders = queue('orders');
    const invoices = queue('invoices');
    const topicExchange = exchange('topic');
    const directExchange = exchange('direct');
    const { channel, close } = await openChannel();
    const publisher: Publisher = createPublisher(rabbitConfig(), { broker: 'rabbitmq' });
    try {
      await channel.assertQueue(orders, { durable: true });
      await channel.assertQueue(invoices, { durable: true });
      await channel.assertExchange(topicExchange, 'topic', { durable: true });
      await channel.assertExchange(directExchange, 'direct', { durable: true });
      await channel.bindQueue(orders, topicExchange, 'orders.*');
      await channel.bindQueue(invoices, directExchange, 'invoice');

      await publisher.publish(topicExchange, [
        { key: 'orders.placed', value: { seq: 1 } },
        { key: 'orders.paid', value: { seq: 2 } },
      ]);
      await Promise.all(Array.from({ length: 20 }, (_, i) => publisher.publish(directExchange, { key: 'invoice', value: { seq: i } })));
      expect((await channel.checkQueue(orders)).messageCount).toBe(2);
      expect((await channel.checkQueue(invoices)).messageCount).toBe(20);

      const fromTopic = await drainQueue(channel, orders, { count: 2, timeoutMs: 5_000 });
      expect(fromTopic.map((m) => [m.fields.exchange, m.fields.routingKey, JSON.parse(m.content.toString()).seq])).toEqual([
        [topicExchange, 'orders.placed', 1],
        [topicExchange, 'orders.paid', 2],
      ]);
      const fromDirect = await drainQueue(channel, invoices, { count: 20, timeoutMs: 5_000 });
      expect(fromDirect.map((m) => JSON.parse(m.content.toString()).seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(fromDirect.every((m) => m.properties.deliveryMode === 2)).toBe(true);
    } finally {
      await publisher.close();
      await close();
    }
  });

  it('refuses unroutable messages and a missing exchange with events.publish.unroutable, without opening the breaker, and keeps publishing', async () => {
    const unbound = exchange('unbound');
    const target = queue('after-unroutable');
    const { channel, close } = await openChannel();
    // threshold 2: three refusals would open the circuit if they counted as broker failures
    const publisher = createPublisher(rabbitConfig({ KAFKA_CIRCUIT_BREAKER_THRESHOLD: '2' }), { broker: 'rabbitmq' });
    try {
      await channel.assertExchange(unbound, 'direct', { durable: true });
      await channel.assertQueue(target, { durable: true });

      const noBinding = publisher.publish(unbound, { key: 'nobody.listens', value: { lost: true } });
      await expect(noBinding).rejects.toBeInstanceOf(PublishRefused);
      await expect(noBinding).rejects.toMatchObject({ code: 'events.publish.unroutable', retriable: false, context: { topic: unbound } });
      await expect(noBinding).rejects.toThrow(new RegExp(`exchange '${unbound.replaceAll('.', '\\.')}' with routing key 'nobody\\.listens'.*bind it`));

      const noQueue = publisher.publish('', { key: 'conveyor.test.no-such-queue', value: 'x' });
      await expect(noQueue).rejects.toMatchObject({ code: 'events.publish.unroutable' });
      await expect(noQueue).rejects.toThrow(/default exchange the key is the queue name/);

      const noExchange = publisher.publish('conveyor.test.no-such-exchange', { key: 'k', value: 'x' });
      await expect(noExchange).rejects.toMatchObject({ code: 'events.publish.unroutable', retriable: false });
      await expect(noExchange).rejects.toThrow(/exchange does not exist.*NOT_FOUND/);

      expect(publisher.circuitState, 'RabbitMQ answered every time: not an outage').toBe('closed');
      // the broker closed the channel over the missing exchange; the next publish gets a new one
      await publisher.publish('', { key: target, value: 'still publishing' });
      const got = await drainQueue(channel, target, { count: 1, timeoutMs: 5_000 });
      expect(got.map((m) => m.content.toString())).toEqual(['still publishing']);
    } finally {
      await publisher.close();
      await close();
    }
  });

  it('fails fast with events.broker.unavailable when nothing listens, and never shows the password', async () => {
    const port = await getFreePort(); // nothing listens there
    const config = loadConfig({ env: { AMQP_URL: `amqp://conveyor:s3cret-pw@127.0.0.1:${port}`, KAFKA_PUBLISH_TIMEOUT_MS: '500' } });
    const publisher = createPublisher(config, { broker: 'rabbitmq' });
    try {
      for (let i = 0; i < 2; i++) {
        const started = Date.now();
        const attempt = publisher.publish('conveyor.test.nowhere', { key: 'k', value: { i } });
        await expect(attempt).rejects.toBeInstanceOf(BrokerFailure);
        await expect(attempt).rejects.toMatchObject({ code: 'events.broker.unavailable', retriable: true, circuitState: 'closed' });
        await expect(attempt).rejects.toThrow(new RegExp(`127\\.0\\.0\\.1:${port}.*within 500 ms.*nothing was sent and nothing is buffered`));
        expect(((await attempt.catch((e: unknown) => e)) as Error).message).not.toContain('s3cret-pw');
        expect(Date.now() - started, 'bounded by publish.timeoutMs').toBeLessThan(1_500);
      }
    } finally {
      const started = Date.now();
      await publisher.close();
      expect(Date.now() - started, 'close is bounded too').toBeLessThan(1_500);
    }
  });

  it('RabbitMQ stopped: publish fails within the timeout, the failed message is never delivered later, and the publisher recovers by itself', async () => {
    const target = queue('outage');
    const { channel, close } = await openChannel();
    await channel.assertQueue(target, { durable: true });
    await close();
    const publisher = createPublisher(rabbitConfig({ KAFKA_PUBLISH_TIMEOUT_MS: '1000', KAFKA_CIRCUIT_BREAKER_THRESHOLD: '100' }), { broker: 'rabbitmq' });
    let last = '';
    try {
      await publisher.publish('', { key: target, value: 'before' });

      rabbitApp('stop');
      try {
        // let the client see its connection closed: a publish racing the stop may have been written to the dying
        // socket, and fails with "may or may not have been stored" instead
        await new Promise((r) => setTimeout(r, 500));
        const started = Date.now();
        const lost = publisher.publish('', { key: target, value: 'lost' });
        await expect(lost).rejects.toMatchObject({ code: 'events.broker.unavailable', retriable: true });
        await expect(lost).rejects.toThrow(/nothing was sent and nothing is buffered/);
        expect(Date.now() - started, 'bounded by publish.timeoutMs').toBeLessThan(2_000);
      } finally {
        rabbitApp('start');
      }

      // no help from the test: the publisher's own connection reconnects on its schedule (100 ms, 1 s, 10 s ...)
      let attempt = 0;
      await waitFor(
        'a publish to succeed after RabbitMQ started again',
        async () => {
          const value = `after-${++attempt}`;
          try {
            await publisher.publish('', { key: target, value });
            last = value;
            return true;
          } catch (err) {
            expect(err).toMatchObject({ code: 'events.broker.unavailable' });
            return false;
          }
        },
        40_000,
      );
      expect(publisher.circuitState).toBe('closed');
    } finally {
      await publisher.close();
    }
    const reader = await openChannel();
    try {
      // 'before' survived the restart (persistent, durable queue); 'lost' was never sent, not even after reconnecting
      const got = await drainQueue(reader.channel, target, { count: 3, timeoutMs: 1_000 });
      expect(got.map((m) => m.content.toString())).toEqual(['before', last]);
    } finally {
      await reader.close();
    }
  });

  it('circuit breaker on a real connection: opens after 2 failures, fails at once while open, half-opens after 1 s and closes on a success', async () => {
    const target = queue('breaker');
    const { channel, close } = await openChannel();
    await channel.assertQueue(target, { durable: true });
    const proxy = await startTcpProxy();
    // a connection shared with the publisher (as the runtime's), retrying every 100 ms so the test need not wait
    const connection = amqpManager.connect([proxy.url], { reconnectTimeInSeconds: 0.1, heartbeatIntervalInSeconds: 5 });
    const lines: Array<{ circuitState?: string; msg: string }> = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const config = loadConfig({
      env: { AMQP_URL: proxy.url, KAFKA_PUBLISH_TIMEOUT_MS: '500', KAFKA_CIRCUIT_BREAKER_THRESHOLD: '2', KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT: '1' },
    });
    const publisher = new RabbitPublisher(config, { connection, logger });
    try {
      await publisher.publish('', { key: target, value: 'first' });

      await proxy.cut();
      await waitFor('the connection to notice the cut', () => !connection.isConnected(), 5_000);
      for (let i = 0; i < 2; i++) {
        const started = Date.now();
        await expect(publisher.publish('', { key: target, value: `failed-${i}` })).rejects.toMatchObject({ code: 'events.broker.unavailable', circuitState: 'closed' });
        expect(Date.now() - started, 'bounded by publish.timeoutMs').toBeLessThan(1_500);
      }
      expect(publisher.circuitState).toBe('open');
      const openedAt = Date.now();
      const refused = publisher.publish('', { key: target, value: 'refused' });
      await expect(refused).rejects.toMatchObject({ code: 'events.broker.unavailable', circuitState: 'open', retriable: true });
      await expect(refused).rejects.toThrow(/circuit breaker is open/);
      expect(Date.now() - openedAt, 'an open circuit fails at once').toBeLessThan(100);

      await proxy.restore();
      await waitFor('the shared connection to reconnect', () => connection.isConnected(), 10_000);
      await new Promise((r) => setTimeout(r, Math.max(0, openedAt + 1_100 - Date.now())));
      await publisher.publish('', { key: target, value: 'recovered' });
      expect(publisher.circuitState).toBe('closed');
      expect(lines.filter((l) => l.msg.startsWith('publish circuit breaker')).map((l) => l.circuitState)).toEqual(['open', 'half_open', 'closed']);
    } finally {
      await publisher.close();
    }
    try {
      expect(connection.isConnected(), 'closing the publisher leaves a shared connection alone').toBe(true);
      const got = await drainQueue(channel, target, { count: 5, timeoutMs: 1_000 });
      expect(got.map((m) => m.content.toString())).toEqual(['first', 'recovered']);
    } finally {
      await connection.close();
      await proxy.close();
      await close();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { attemptOf, headerText, retryLevels, retryQueueName, retryQueueNames } from '../../src/rabbitmq/retry-queues.ts';
import { reconnectDelaySeconds } from '../../src/rabbitmq/connection.ts';
import { backoffCeiling } from '../../src/failure/backoff.ts';

describe('RabbitMQ retry queues', () => {
  it('has one queue per retry until the backoff reaches its cap, then retries share the last', () => {
    const policy = { baseMs: 1000, maxMs: 30_000 };
    // ceilings 1 s, 2 s, 4 s, 8 s, 16 s, 30 s (capped): six distinct ranges
    expect(retryLevels(10, policy)).toBe(6);
    expect(retryLevels(3, policy)).toBe(3);
    expect(retryLevels(0, policy)).toBe(0);
    expect(retryLevels(null, policy)).toBe(6); // no dead-letter queue: retries without end
    expect(retryQueueNames('orders', 3)).toEqual(['orders.retry.1', 'orders.retry.2', 'orders.retry.3']);
    expect(retryQueueName('orders', 1, 6)).toBe('orders.retry.1');
    expect(retryQueueName('orders', 9, 6)).toBe('orders.retry.6');
  });

  it('puts in one queue only delays of one range, so no message waits past its ceiling behind another', () => {
    const policy = { baseMs: 100, maxMs: 5_000 };
    const levels = retryLevels(20, policy);
    for (let retry = 1; retry <= 20; retry++) {
      const queue = retryQueueName('q', retry, levels);
      const level = Number(queue.split('.').pop());
      // every retry sharing this queue draws its delay below the same ceiling
      expect(backoffCeiling(retry - 1, policy)).toBe(backoffCeiling(level - 1, policy));
    }
  });

  it('never needs more than 32 queues, however small the base', () => {
    expect(retryLevels(null, { baseMs: 0.001, maxMs: 3_600_000 })).toBe(32);
    expect(retryLevels(null, { baseMs: 0, maxMs: 10 })).toBe(32);
  });

  it('reads the attempt number from the header, 1 when absent or nonsense', () => {
    expect(attemptOf(undefined)).toBe(1);
    expect(attemptOf({})).toBe(1);
    expect(attemptOf({ 'x-conveyor-attempt': 3 })).toBe(3);
    expect(attemptOf({ 'x-conveyor-attempt': '4' })).toBe(4);
    expect(attemptOf({ 'x-conveyor-attempt': 'x' })).toBe(1);
    expect(attemptOf({ 'x-conveyor-attempt': 0 })).toBe(1);
    expect(attemptOf({ 'x-conveyor-attempt': 2.5 })).toBe(1);
  });

  it('shows AMQP header values as text', () => {
    expect(headerText('a')).toBe('a');
    expect(headerText(Buffer.from('bytes'))).toBe('bytes');
    expect(headerText(42)).toBe('42');
    expect(headerText(true)).toBe('true');
    expect(headerText([{ count: 1, queue: 'q' }])).toBe('[{"count":1,"queue":"q"}]');
  });
});

describe('RabbitMQ reconnect schedule (seed 000)', () => {
  it('waits 100 ms, then 1 s, then 10 s, then 30 s between attempts', () => {
    expect([0, 1, 2, 3, 4, 50].map(reconnectDelaySeconds)).toEqual([0.1, 1, 10, 30, 30, 30]);
  });
});

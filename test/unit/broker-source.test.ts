import { describe, expect, it } from 'vitest';
import { BrokersUnavailableError, chooseBrokerSources, redactUrl } from '../support/broker-source.ts';

describe('where the integration tests get their brokers', () => {
  const both = { KAFKA_BROKERS: '127.0.0.1:9092', AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672' };

  it('uses the brokers named in the environment, with or without Docker', () => {
    for (const docker of [true, false]) {
      expect(chooseBrokerSources(both, docker)).toEqual({
        kafka: { from: 'environment', address: '127.0.0.1:9092' },
        rabbitmq: { from: 'environment', address: 'amqp://guest:guest@127.0.0.1:5672' },
      });
    }
  });

  it('starts containers for what the environment does not name when Docker answers', () => {
    expect(chooseBrokerSources({ KAFKA_BROKERS: 'k:9092' }, true)).toEqual({
      kafka: { from: 'environment', address: 'k:9092' },
      rabbitmq: { from: 'container' },
    });
  });

  it('fails, never skips, without brokers or Docker, and says how to start them', () => {
    const attempt = () => chooseBrokerSources({ AMQP_URL: ' ' }, false);
    expect(attempt).toThrow(BrokersUnavailableError);
    expect(attempt).toThrow(/No Kafka \(KAFKA_BROKERS\) and RabbitMQ \(AMQP_URL\)/);
    expect(attempt).toThrow(/npm run brokers/);
  });

  it('names only the missing broker', () => {
    expect(() => chooseBrokerSources({ KAFKA_BROKERS: 'k:9092' }, false)).toThrow(/No RabbitMQ \(AMQP_URL\) for/);
  });

  it('keeps passwords out of messages', () => {
    expect(redactUrl('amqp://user:s3cret@host:5672/vhost')).toBe('amqp://user:***@host:5672/vhost');
    expect(redactUrl('amqp://host:5672')).toBe('amqp://host:5672');
  });
});

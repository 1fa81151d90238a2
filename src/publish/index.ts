// `conveyor/publish`: publishing for applications (loads the Kafka and AMQP clients; handler files use ctx.publish instead).
export {
  aggregateKey,
  createPublisher,
  eventTopic,
  KafkaPublisher,
  type CreatePublisherOptions,
  type PublishedRecord,
  type Publisher,
  type PublishMessage,
} from './kafka-publisher.ts';
export { PublishRefused, RabbitPublisher, type RabbitPublishedRecord } from './rabbitmq-publisher.ts';
export { CIRCUIT_STATE_VALUE, PublishCircuitBreaker, type CircuitStateName } from './circuit-breaker.ts';
export { retryWithBackoff, type RetryWithBackoffOptions } from './retry-with-backoff.ts';
export { loadConfig } from '../config/load.ts';

/**
 * vitest globalSetup of the integration project: finds or starts the brokers, proves they answer,
 * and provides their addresses to the tests (`inject('kafkaBrokers')`, `inject('amqpUrl')`, and the SASL listener's
 * `inject('kafkaSaslBrokers')`, empty when there is none: see sasl-listener.ts).
 */
import type { TestProject } from 'vitest/node';
import amqp from 'amqplib';
import { KafkaAdmin } from '../../src/kafka/admin.ts';
import { chooseBrokerSources, redactUrl, BrokersUnavailableError, type BrokerSources } from './broker-source.ts';
import { saslBrokersFor } from './sasl-listener.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    amqpUrl: string;
    /** host:port of a SASL_PLAINTEXT listener of the same cluster with the user of sasl-listener.ts; '' when none. */
    kafkaSaslBrokers: string;
  }
}

const PROBE_TIMEOUT_MS = 10_000;

async function dockerAvailable(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

interface Started {
  readonly kafkaBrokers: string;
  readonly amqpUrl: string;
  stop(): Promise<void>;
}

/** Brokers from the environment as given; the others in containers, for users with a Docker engine (none runs on the project's CI machines). */
async function obtainBrokers(sources: BrokerSources): Promise<Started> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const stops: Array<() => Promise<unknown>> = [];
  let kafkaBrokers = sources.kafka.from === 'environment' ? sources.kafka.address : '';
  let amqpUrl = sources.rabbitmq.from === 'environment' ? sources.rabbitmq.address : '';
  if (sources.kafka.from === 'container') {
    // The advertised listener must name the host port, so bind a fixed free one.
    const { getFreePort } = await import('./free-port.ts');
    const port = await getFreePort();
    const kafka = await new GenericContainer('apache/kafka:4.1.1')
      .withExposedPorts({ container: 9092, host: port })
      .withEnvironment({
        KAFKA_NODE_ID: '1',
        KAFKA_PROCESS_ROLES: 'broker,controller',
        KAFKA_LISTENERS: 'PLAINTEXT://:9092,CONTROLLER://:9093',
        KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${port}`,
        KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
        KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
        KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
      })
      .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
      .start();
    stops.push(() => kafka.stop());
    kafkaBrokers = `127.0.0.1:${port}`;
  }
  if (sources.rabbitmq.from === 'container') {
    const rabbit = await new GenericContainer('rabbitmq:4')
      .withExposedPorts(5672)
      .withWaitStrategy(Wait.forLogMessage(/Server startup complete/))
      .start();
    stops.push(() => rabbit.stop());
    amqpUrl = `amqp://guest:guest@${rabbit.getHost()}:${rabbit.getMappedPort(5672)}`;
  }
  return { kafkaBrokers, amqpUrl, stop: async () => { await Promise.all(stops.map((s) => s())); } };
}

async function withTimeout<T>(what: string, work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function probeKafka(brokers: string): Promise<void> {
  // the admin port (pure JavaScript): a native admin client here could crash the test run's main process
  const admin = new KafkaAdmin({ brokers: brokers.split(','), clientId: 'conveyor-test-probe', timeoutMs: PROBE_TIMEOUT_MS });
  try {
    await withTimeout(`Kafka at ${brokers}`, admin.topics(), PROBE_TIMEOUT_MS);
  } catch (err) {
    throw new BrokersUnavailableError(
      `Kafka at ${brokers} is not reachable (${(err as Error).message}). ` +
        'Start the local brokers with `npm run brokers` (or run `npm test`, which starts them).',
    );
  } finally {
    await admin.close();
  }
}

async function probeRabbitMq(url: string): Promise<void> {
  try {
    const conn = await withTimeout(`RabbitMQ at ${redactUrl(url)}`, amqp.connect(url, { timeout: PROBE_TIMEOUT_MS }), PROBE_TIMEOUT_MS);
    await conn.close();
  } catch (err) {
    throw new BrokersUnavailableError(
      `RabbitMQ at ${redactUrl(url)} is not reachable (${(err as Error).message}). ` +
        'Start the local brokers with `npm run brokers` (or run `npm test`, which starts them).',
    );
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const env = process.env;
  const needsDocker = !env.KAFKA_BROKERS?.trim() || !env.AMQP_URL?.trim();
  const sources = chooseBrokerSources(env, needsDocker && (await dockerAvailable()));
  const started = await obtainBrokers(sources);
  await Promise.all([probeKafka(started.kafkaBrokers), probeRabbitMq(started.amqpUrl)]);
  project.provide('kafkaBrokers', started.kafkaBrokers);
  project.provide('amqpUrl', started.amqpUrl);
  // containers have no SASL listener; the security tests then fail saying so
  project.provide('kafkaSaslBrokers', sources.kafka.from === 'environment' ? saslBrokersFor(env, started.kafkaBrokers) : '');
  return () => started.stop();
}

/**
 * Where the tests' brokers come from, decided once per run and never by skipping:
 * the environment first (KAFKA_BROKERS, AMQP_URL), else containers where a Docker engine answers,
 * else a failure that says how to start them.
 */
export type BrokerName = 'kafka' | 'rabbitmq';

export type BrokerSource =
  | { readonly from: 'environment'; readonly address: string }
  | { readonly from: 'container' };

export interface BrokerSources {
  readonly kafka: BrokerSource;
  readonly rabbitmq: BrokerSource;
}

const VARIABLE: Record<BrokerName, string> = { kafka: 'KAFKA_BROKERS', rabbitmq: 'AMQP_URL' };

export class BrokersUnavailableError extends Error {
  readonly code = 'conveyor.test.brokers_unavailable';
}

export function chooseBrokerSources(
  env: Readonly<Record<string, string | undefined>>,
  dockerAvailable: boolean,
): BrokerSources {
  const pick = (name: BrokerName): BrokerSource | undefined => {
    const address = env[VARIABLE[name]]?.trim();
    if (address) return { from: 'environment', address };
    return dockerAvailable ? { from: 'container' } : undefined;
  };
  const kafka = pick('kafka');
  const rabbitmq = pick('rabbitmq');
  if (kafka && rabbitmq) return { kafka, rabbitmq };
  const missing = (['kafka', 'rabbitmq'] as const).filter((n) => !(n === 'kafka' ? kafka : rabbitmq));
  throw new BrokersUnavailableError(
    `No ${missing.map((n) => `${n === 'kafka' ? 'Kafka' : 'RabbitMQ'} (${VARIABLE[n]})`).join(' and ')} for the integration tests, ` +
      'and no Docker engine to start one in a container.\n' +
      'Run `npm test` (it starts the local brokers), or start them with `npm run brokers` and set ' +
      'KAFKA_BROKERS=127.0.0.1:9092 AMQP_URL=amqp://guest:guest@127.0.0.1:5672.',
  );
}

/** The AMQP URL with its password replaced, fit for a log line or an error message. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):([^@]*)@/, '//$1:***@');
}

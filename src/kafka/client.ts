import kafkaJavascript from '@confluentinc/kafka-javascript';
import type { KafkaJS as KafkaTypes } from '@confluentinc/kafka-javascript';
import type { ConveyorConfig } from '../config/schema.ts';
import type { Logger } from '../ops/logger.ts';
import { SecurityFailureWatch } from './security-failures.ts';

const { KafkaJS } = kafkaJavascript;

export type Kafka = KafkaTypes.Kafka;
export type Producer = KafkaTypes.Producer;
export type Consumer = KafkaTypes.Consumer;
export type IHeaders = KafkaTypes.IHeaders;
export type KafkaMessage = KafkaTypes.KafkaMessage;
export type ConsumerConstructorConfig = KafkaTypes.ConsumerConstructorConfig;
export const CompressionTypes = KafkaJS.CompressionTypes;

export interface KafkaClientOptions {
  /** host:port list, e.g. `127.0.0.1:9092`. */
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** Where the client's own log lines go; silent when absent. */
  readonly logger?: Logger;
  /** librdkafka security properties (security.protocol, sasl.*, ssl.*), for every client made from this one. */
  readonly security?: Readonly<Record<string, string>>;
  /**
   * Called once when a client made from this one reports a fatal error (librdkafka's ERR__FATAL: say, a static
   * member fenced by a newer one with its group.instance.id). The driver then retries for ever without consuming.
   */
  readonly onFatal?: (message: string) => void;
}

/**
 * Builds a client of the Confluent driver's KafkaJS-shaped API, logging through pino. The security properties
 * are top-level librdkafka properties of the Kafka instance: the driver merges them into the configuration of
 * every producer and consumer made from it (admin requests go through admin.ts instead: the native admin client
 * crashed the process, see there). A login the broker refuses, or a TLS handshake that
 * fails, fails those clients' connect() at once with a KafkaSecurityFailure (security-failures.ts).
 */
export function createKafka(options: KafkaClientOptions): Kafka {
  const security = options.security ?? {};
  const watch = new SecurityFailureWatch({
    brokers: options.brokers.join(','),
    securityProtocol: security['security.protocol'] ?? 'plaintext',
    ...(security['sasl.mechanisms'] ? { saslMechanism: security['sasl.mechanisms'] } : {}),
    ...(security['sasl.username'] ? { saslUsername: security['sasl.username'] } : {}),
  });
  const kafka = new KafkaJS.Kafka({
    kafkaJS: {
      brokers: [...options.brokers],
      clientId: options.clientId,
      // without a logger the driver's errors are still read (for the watch), just not written
      logLevel: options.logger ? KafkaJS.logLevel.WARN : KafkaJS.logLevel.ERROR,
      logger: driverLogger(options.logger, watch, options.onFatal),
    },
    ...security,
  } as never);
  const producer = kafka.producer.bind(kafka);
  const consumer = kafka.consumer.bind(kafka);
  kafka.producer = (config) => watch.guard(producer(config));
  kafka.consumer = (config) => watch.guard(consumer(config));
  // no admin clients from here: every admin request goes through the pure-JavaScript admin port (admin.ts)
  kafka.admin = () => {
    throw new Error('the native admin client is not used: use KafkaAdmin (src/kafka/admin.ts)');
  };
  return kafka;
}

/** The client options the configuration gives: brokers and security. Every client Conveyor makes comes from here. */
export function kafkaClientOptions(config: ConveyorConfig, clientId: string, logger?: Logger): KafkaClientOptions {
  return {
    brokers: config.kafka.bootstrapServers.split(',').map((s) => s.trim()),
    clientId,
    ...(logger ? { logger } : {}),
    security: securityProperties(config),
  };
}

/** librdkafka's names for the configured TLS/SASL settings; nothing for plaintext. */
export function securityProperties(config: ConveyorConfig): Record<string, string> {
  const k = config.kafka;
  if (k.securityProtocol === 'plaintext') return {};
  const props: Record<string, string> = { 'security.protocol': k.securityProtocol };
  if (k.securityProtocol.startsWith('sasl_')) {
    props['sasl.mechanisms'] = k.saslMechanism;
    props['sasl.username'] = k.saslUsername;
    props['sasl.password'] = k.saslPassword;
  }
  if (k.securityProtocol === 'ssl' || k.securityProtocol === 'sasl_ssl') {
    if (k.sslCaLocation) props['ssl.ca.location'] = k.sslCaLocation;
    if (k.sslCertificateLocation) props['ssl.certificate.location'] = k.sslCertificateLocation;
    if (k.sslKeyLocation) props['ssl.key.location'] = k.sslKeyLocation;
    if (k.sslKeyPassword) props['ssl.key.password'] = k.sslKeyPassword;
  }
  return props;
}

/** The names librdkafka reports about itself: its version and compiled-in features (codecs, SASL, SSL). */
export function driverFeatures(): { librdkafkaVersion: string; features: readonly string[] } {
  return { librdkafkaVersion: kafkaJavascript.librdkafkaVersion, features: kafkaJavascript.features };
}

/** The same driver line at most once per this period; the count of repeats goes with the next one logged. */
const DRIVER_LINE_PERIOD_MS = 10_000;

/** How the driver words librdkafka's ERR__FATAL, in the lines it logs about it. */
const FATAL = /Local: Fatal error/;

function driverLogger(logger: Logger | undefined, watch: SecurityFailureWatch, onFatal?: (message: string) => void): KafkaTypes.Logger {
  let fatal = false;
  const observe = (message: string): void => {
    watch.observe(message);
    if (!fatal && onFatal && FATAL.test(message)) {
      fatal = true;
      onFatal(message.slice(0, 2000));
    }
  };
  // librdkafka repeats a failure per broker thread and attempt (hundreds of "all broker connections are down" in a
  // second when it gives up): identical lines are rate-limited, never the first of its kind
  const seen = new Map<string, { at: number; repeats: number }>();
  const limited = (write: (extra: object, message: string) => void, message: string, extra: object | undefined): void => {
    const now = Date.now();
    const last = seen.get(message);
    if (last && now - last.at < DRIVER_LINE_PERIOD_MS) {
      last.repeats += 1;
      return;
    }
    if (seen.size > 1000) seen.clear();
    seen.set(message, { at: now, repeats: 0 });
    write(last && last.repeats > 0 ? { ...extra, repeatedSinceLast: last.repeats } : (extra ?? {}), message);
  };
  const adapter = (log: Logger | undefined): KafkaTypes.Logger => ({
    info: (message, extra) => log?.info(extra ?? {}, message),
    warn: (message, extra) => {
      observe(message);
      if (log) limited((e, m) => log.warn(e, m), message, extra);
    },
    error: (message, extra) => {
      observe(message);
      if (log) limited((e, m) => log.error(e, m), message, extra);
    },
    debug: (message, extra) => log?.debug(extra ?? {}, message),
    namespace: (namespace) => adapter(log?.child({ namespace })),
    setLogLevel: () => {},
  });
  return adapter(logger?.child({ component: 'kafka-driver' }));
}

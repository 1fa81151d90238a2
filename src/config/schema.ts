/**
 * Every Conveyor setting: its path, environment variable, default, allowed values and meaning.
 * docs/configuration.md is the same table for people; a unit test keeps the two in step.
 *
 * Each setting's `format` is a named convict format registered here. The names carry their ranges
 * (`conveyor:int[0..10]`) so one schema entry reads as a complete specification, and each format states its
 * expectation in words, so a rejection reads `must be an integer from 0 to 10; got 11`. Named formats also get
 * our own string coercion: convict's built-in one would read KAFKA_MAX_RETRY_ATTEMPTS=10abc as 10 (parseInt)
 * and KAFKA_ENABLE_IDEMPOTENCE=0 as true (anything but "false" is true).
 */
import convict from 'convict';
import { redactUrl } from '../ops/redact.ts';

export interface ConveyorConfig {
  app: {
    /** Used in client ids. */
    name: string;
  };
  kafka: {
    /** Comma-separated host:port list. */
    bootstrapServers: string;
    /** First part of default consumer group names: `<environment>.<group>.<handler name>`. */
    environment: string;
    /** Second part of default consumer group names. */
    group: string;
    /** Broker operation timeout. */
    timeoutSeconds: number;
    /** Where a group with no committed offset starts. */
    autoOffsetReset: 'earliest' | 'latest';
    /** Acknowledgements for application publishing; dead-letter publishing always uses all. */
    acks: 'all' | '1' | '0';
    enableIdempotence: boolean;
    /** Empty: each handler's dead-letter topic is `<topic>.dlq`. */
    deadLetterTopic: string;
    /** Static membership `group.instance.id`; empty: dynamic membership. */
    instanceId: string;
    /** Session timeout with static membership (instanceId set). */
    sessionTimeoutMs: number;
    /** Session timeout without static membership. */
    dynamicSessionTimeoutMs: number;
    assignmentStrategy: 'cooperative-sticky' | 'range' | 'roundrobin';
    /** Messages per fetch batch handed to the runtime (js.consumer.max.batch.size). */
    maxBatchSize: number;
    /** Consumer group protocol: classic (JoinGroup/SyncGroup), consumer (KIP-848), or auto (consumer unless static membership). */
    groupProtocol: 'auto' | 'classic' | 'consumer';
    /** How often consumers refresh topic metadata: the most it takes to notice a new partition or topic. */
    metadataRefreshMs: number;
    /** Longest wait between two reconnection attempts of the Kafka consumers to a broker. */
    reconnectBackoffMaxMs: number;
    /** How the clients talk to the brokers: TLS and/or SASL. */
    securityProtocol: 'plaintext' | 'ssl' | 'sasl_plaintext' | 'sasl_ssl';
    saslMechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
    saslUsername: string;
    /** Secret: redacted wherever configuration is shown. */
    saslPassword: string;
    /** PEM file of the CA that signed the brokers' certificates; empty: the system's CAs. */
    sslCaLocation: string;
    /** Client certificate and key (PEM) for mutual TLS; empty: none. */
    sslCertificateLocation: string;
    sslKeyLocation: string;
    /** Secret. */
    sslKeyPassword: string;
  };
  retry: {
    /** Retries after the first failed attempt: 1 + maxAttempts tries in all. */
    maxAttempts: number;
    /** Delay before retry n (n = 0, 1, …) is random(0, base · 2^n), capped at backoffMaxSeconds. */
    backoffBaseSeconds: number;
    backoffMaxSeconds: number;
  };
  publish: {
    /** How long a publish may wait for the broker before it fails with events.broker.unavailable. */
    timeoutMs: number;
    /** Codec of published batches. */
    compression: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';
    /** Consecutive failed publishes that open the circuit. */
    circuitBreakerThreshold: number;
    /** Seconds an open circuit waits before it lets one publish through (half_open). */
    circuitBreakerResetSeconds: number;
  };
  rabbitmq: {
    /** amqp:// or amqps:// URL, credentials included (redacted in logs). */
    url: string;
    /** AMQP heartbeat: a dead connection is noticed within about twice this. */
    heartbeatSeconds: number;
    /** PEM file of the CA for amqps:// connections; empty: the system's CAs. */
    caFile: string;
  };
  ops: {
    /** Serve /metrics and the health endpoints. */
    enabled: boolean;
    /** Address the ops server binds to. */
    host: string;
    /** Port of the ops server; 0: any free port (logged). */
    port: number;
  };
  lag: {
    /** How often consumer lag is measured. */
    intervalSeconds: number;
    /** Lag in events at or above which a partition is at least at warning level. */
    alertThreshold: number;
    /** Lag in time (age of the oldest unprocessed message) above which the level is info / warning / critical. */
    infoSeconds: number;
    warningSeconds: number;
    criticalSeconds: number;
    /** A lag spike that is already decreasing (bulk import) suppresses warnings for this long. */
    suppressMinutes: number;
    /** POST each level change here (JSON); empty: no webhook. Secret (URLs often carry tokens). */
    webhookUrl: string;
  };
  handlers: {
    /** Directory of handler files, relative to the process's working directory. */
    directory: string;
    /** Default handler timeout. */
    timeoutMs: number;
  };
  pool: {
    /** Worker threads; 0: os.availableParallelism(). */
    size: number;
    /** Most messages in one worker task. */
    maxBatch: number;
    /** Tasks one worker thread runs at once (their handlers interleave while they await). */
    tasksPerThread: number;
    /** After a handler's timeout, how long it may take to return before its worker is terminated. */
    timeoutGraceMs: number;
  };
  lanes: {
    /** Queued messages per partition before the partition is paused. */
    maxMessages: number;
    /** Queued bytes per partition before the partition is paused. */
    maxBytes: number;
    /** A paused partition resumes below resumeRatio × both limits. */
    resumeRatio: number;
  };
  memory: {
    /** The process's memory budget in MiB, from which prefetch, lane limits and worker heap limits are derived; 0: none. */
    budgetMb: number;
  };
  commit: {
    intervalMs: number;
    /** A commit not answered within this is counted as failed; the next one carries the newest watermark. */
    timeoutMs: number;
    /** Bound of the commit metadata that records offsets completed ahead of the watermark; 0: none recorded. */
    metadataMaxBytes: number;
  };
  shutdown: {
    deadlineMs: number;
    revokeDeadlineMs: number;
  };
  log: {
    level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  };
}

/** How one kind of value is checked and described. */
interface SettingFormat {
  /** What a valid value is, in words: "an integer from 0 to 10". */
  readonly expected: string;
  /** Undefined when `value` is valid, else the rejection: `must be …; got …`. */
  readonly check: (value: unknown) => string | undefined;
}

const formats = new Map<string, SettingFormat>();

/**
 * Registers a format with convict (once per name: convict's format registry is process-wide) and returns its name.
 * `coerce` reads an environment variable or a file's string, returning the text unchanged when it does not parse,
 * so the rejection shows what was given.
 */
function registered(
  name: string,
  expected: string,
  accepts: (value: unknown) => boolean | string,
  coerce?: (text: string) => unknown,
  show: (value: unknown) => string = describeValue,
): string {
  if (formats.has(name)) return name;
  const check = (value: unknown): string | undefined => {
    const verdict = accepts(value);
    if (verdict === true) return undefined;
    return `must be ${expected}; got ${show(value)}${typeof verdict === 'string' ? ` (${verdict})` : ''}`;
  };
  formats.set(name, { expected, check });
  convict.addFormat({
    name,
    validate(value: unknown) {
      const problem = check(value);
      if (problem !== undefined) throw new Error(problem);
    },
    ...(coerce === undefined ? {} : { coerce }),
  });
  return name;
}

/** A value as it should appear after "got": strings quoted, long ones shortened. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') {
    return value.length > 60 ? `${JSON.stringify(value.slice(0, 40))}… (${value.length} characters)` : JSON.stringify(value);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}

const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const readNumber = (text: string): unknown => (DECIMAL.test(text.trim()) ? Number(text.trim()) : text);

const BOOLEAN_WORDS: Readonly<Record<string, boolean>> = { true: true, '1': true, false: false, '0': false };
const readBoolean = (text: string): unknown => BOOLEAN_WORDS[text.trim().toLowerCase()] ?? text;

function integer(min: number, max: number): string {
  return registered(
    `conveyor:int[${min}..${max}]`,
    `an integer from ${min} to ${max}`,
    (x) => typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max,
    readNumber,
  );
}

function decimal(min: number, max: number): string {
  return registered(
    `conveyor:number[${min}..${max}]`,
    `a number from ${min} to ${max}`,
    (x) => typeof x === 'number' && Number.isFinite(x) && x >= min && x <= max,
    readNumber,
  );
}

function oneOf(...choices: readonly string[]): string {
  return registered(`conveyor:one-of[${choices.join(',')}]`, `one of ${choices.join(', ')}`, (x) => typeof x === 'string' && choices.includes(x));
}

const BOOLEAN = registered('conveyor:boolean', 'true or false (or 1 or 0)', (x) => typeof x === 'boolean', readBoolean);

const NON_EMPTY_TEXT = registered('conveyor:non-empty-text', 'a non-empty string', (x) => typeof x === 'string' && x.length > 0);

const ANY_TEXT = registered('conveyor:text', 'a string', (x) => typeof x === 'string');

const NAME_PART = /^[a-zA-Z0-9._-]+$/;
const NAME = registered('conveyor:name', 'one or more letters, digits, ".", "_" or "-"', (x) => typeof x === 'string' && NAME_PART.test(x));

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
/** Kafka's own rule for topic names. */
function isTopicName(name: string): boolean {
  return TOPIC_NAME.test(name) && name !== '.' && name !== '..';
}
const TOPIC_OR_EMPTY = registered(
  'conveyor:topic-or-empty',
  'empty or a Kafka topic name (1 to 249 letters, digits, ".", "_" or "-"; not "." or "..")',
  (x) => typeof x === 'string' && (x === '' || isTopicName(x)),
);

/** An amqp:// or amqps:// URL with a host. */
function isAmqpUrl(x: string): boolean {
  try {
    const u = new URL(x);
    return (u.protocol === 'amqp:' || u.protocol === 'amqps:') && u.hostname.length > 0;
  } catch {
    return false;
  }
}
const AMQP_URL = registered(
  'conveyor:amqp-url',
  'an amqp:// or amqps:// URL (amqp://user:password@host:5672/vhost)',
  (x) => typeof x === 'string' && isAmqpUrl(x),
  undefined,
  // the password never appears in an error message
  (x) => describeValue(typeof x === 'string' ? redactUrl(x) : x),
);

const HTTP_URL_OR_EMPTY = registered(
  'conveyor:http-url-or-empty',
  'empty or an http:// or https:// URL',
  (x) => {
    if (x === '') return true;
    if (typeof x !== 'string') return false;
    try {
      const u = new URL(x);
      return u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
      return false;
    }
  },
  undefined,
  (x) => describeValue(typeof x === 'string' ? redactUrl(x) : x),
);

const HOST_PORT = /^(?<host>\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9_][a-zA-Z0-9._-]*):(?<port>\d{1,5})$/;
function isHostPort(entry: string): boolean {
  const port = HOST_PORT.exec(entry)?.groups?.port;
  return port !== undefined && Number(port) >= 1 && Number(port) <= 65535;
}
const HOST_PORT_LIST = registered(
  'conveyor:host-port-list',
  'a comma-separated list of host:port with ports from 1 to 65535',
  (x) => {
    if (typeof x !== 'string') return false;
    const bad = x.split(',').map((entry) => entry.trim()).filter((entry) => !isHostPort(entry));
    return bad.length === 0 || `bad entries: ${bad.map((entry) => JSON.stringify(entry)).join(', ')}`;
  },
);

export const conveyorSchema: convict.Schema<ConveyorConfig> = {
  app: {
    name: { doc: 'Application name, used in client ids.', format: NON_EMPTY_TEXT, default: 'conveyor', env: 'CONVEYOR_APP_NAME' },
  },
  kafka: {
    bootstrapServers: {
      doc: 'Kafka brokers to bootstrap from: a comma-separated host:port list.',
      format: HOST_PORT_LIST,
      default: 'localhost:9092',
      env: 'KAFKA_BOOTSTRAP_SERVERS',
    },
    environment: {
      doc: 'First part of default consumer group names (<environment>.<group>.<handler name>).',
      format: NAME,
      default: 'local',
      env: 'KAFKA_ENVIRONMENT',
    },
    group: {
      doc: 'Second part of default consumer group names (<environment>.<group>.<handler name>).',
      format: NAME,
      default: 'default',
      env: 'KAFKA_GROUP',
    },
    timeoutSeconds: { doc: 'Broker operation timeout, in seconds.', format: decimal(1, 300), default: 30, env: 'KAFKA_TIMEOUT_SECONDS' },
    autoOffsetReset: {
      doc: 'Where a consumer group starts reading on its very first start on a topic; a partition or topic that appears later is read from its beginning whatever this says.',
      format: oneOf('earliest', 'latest'),
      default: 'latest',
      env: 'KAFKA_AUTO_OFFSET_RESET',
    },
    acks: {
      doc: 'Acknowledgements required when handlers publish; dead-letter publishing always uses all.',
      format: oneOf('all', '1', '0'),
      default: 'all',
      env: 'KAFKA_ACKS',
    },
    enableIdempotence: { doc: 'Idempotent producer for application publishing.', format: BOOLEAN, default: true, env: 'KAFKA_ENABLE_IDEMPOTENCE' },
    deadLetterTopic: {
      doc: 'One dead-letter topic for every handler; empty: each handler uses <topic>.dlq.',
      format: TOPIC_OR_EMPTY,
      default: '',
      env: 'KAFKA_DEAD_LETTER_TOPIC',
    },
    instanceId: {
      doc: 'Static membership group.instance.id (set it to the pod name); empty: dynamic membership.',
      format: ANY_TEXT,
      default: '',
      env: 'POD_NAME',
    },
    sessionTimeoutMs: {
      doc: 'Consumer session timeout with static membership (POD_NAME set), in milliseconds: a member restarting within it keeps its partitions without a rebalance.',
      format: integer(6000, 1_800_000),
      default: 300_000,
      env: 'KAFKA_SESSION_TIMEOUT_MS',
    },
    dynamicSessionTimeoutMs: {
      doc: 'Consumer session timeout without static membership, in milliseconds: how long the partitions of a crashed member wait before another member takes them.',
      format: integer(6000, 1_800_000),
      default: 45_000,
      env: 'KAFKA_DYNAMIC_SESSION_TIMEOUT_MS',
    },
    assignmentStrategy: {
      doc: 'Partition assignment strategy.',
      format: oneOf('cooperative-sticky', 'range', 'roundrobin'),
      default: 'cooperative-sticky',
      env: 'KAFKA_PARTITION_ASSIGNMENT_STRATEGY',
    },
    maxBatchSize: {
      doc: 'Messages per fetch batch handed to the runtime (librdkafka js.consumer.max.batch.size).',
      format: integer(1, 100_000),
      default: 1000,
      env: 'KAFKA_MAX_BATCH_SIZE',
    },
    groupProtocol: {
      doc: 'Consumer group protocol: consumer (KIP-848: the broker assigns and keeps the session; Kafka 4.0+), classic (JoinGroup/SyncGroup, the client keeps the session), or auto: consumer with dynamic membership, classic with static membership (POD_NAME). docs/runtime.md compares them.',
      format: oneOf('auto', 'classic', 'consumer'),
      default: 'auto',
      env: 'KAFKA_GROUP_PROTOCOL',
    },
    metadataRefreshMs: {
      doc: 'How often each consumer refreshes the metadata of its topics, in milliseconds: a partition added to a topic, or a topic created after start-up, is consumed at most this long (plus a rebalance) after it appears.',
      format: integer(1000, 300_000),
      default: 10_000,
      env: 'KAFKA_METADATA_REFRESH_MS',
    },
    reconnectBackoffMaxMs: {
      doc: 'Longest wait between two attempts of a Kafka consumer to reconnect to a broker, in milliseconds (the waits grow from 100 ms). A broker that is back is found again at most this long after it answers.',
      format: integer(1000, 30_000),
      default: 10_000,
      env: 'KAFKA_RECONNECT_BACKOFF_MAX_MS',
    },
    securityProtocol: {
      doc: 'How the Kafka clients connect: plaintext, ssl (TLS), sasl_plaintext (SASL without TLS) or sasl_ssl (SASL over TLS).',
      format: oneOf('plaintext', 'ssl', 'sasl_plaintext', 'sasl_ssl'),
      default: 'plaintext',
      env: 'KAFKA_SECURITY_PROTOCOL',
    },
    saslMechanism: {
      doc: 'SASL mechanism when securityProtocol is sasl_plaintext or sasl_ssl.',
      format: oneOf('PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'),
      default: 'SCRAM-SHA-512',
      env: 'KAFKA_SASL_MECHANISM',
    },
    saslUsername: { doc: 'SASL user name (sasl_plaintext, sasl_ssl).', format: ANY_TEXT, default: '', env: 'KAFKA_SASL_USERNAME' },
    saslPassword: {
      doc: 'SASL password (sasl_plaintext, sasl_ssl). Secret: never logged, redacted by `conveyor check`.',
      format: ANY_TEXT,
      default: '',
      env: 'KAFKA_SASL_PASSWORD',
      sensitive: true,
    },
    sslCaLocation: {
      doc: "PEM file of the CA that signed the brokers' certificates (ssl, sasl_ssl); empty: the system's CAs.",
      format: ANY_TEXT,
      default: '',
      env: 'KAFKA_SSL_CA_LOCATION',
    },
    sslCertificateLocation: { doc: 'Client certificate (PEM) for mutual TLS; empty: none.', format: ANY_TEXT, default: '', env: 'KAFKA_SSL_CERTIFICATE_LOCATION' },
    sslKeyLocation: { doc: 'Private key (PEM) of the client certificate; empty: none.', format: ANY_TEXT, default: '', env: 'KAFKA_SSL_KEY_LOCATION' },
    sslKeyPassword: {
      doc: 'Password of the private key, if it has one. Secret.',
      format: ANY_TEXT,
      default: '',
      env: 'KAFKA_SSL_KEY_PASSWORD',
      sensitive: true,
    },
  },
  retry: {
    maxAttempts: {
      doc: 'Retries after the first failed attempt, so 1 + maxAttempts tries in all.',
      format: integer(0, 10),
      default: 3,
      env: 'KAFKA_MAX_RETRY_ATTEMPTS',
    },
    backoffBaseSeconds: {
      doc: 'Exponential backoff base: the delay before retry n (n = 0, 1, …) is random(0, base · 2^n), capped.',
      format: decimal(0.001, 60),
      default: 1.0,
      env: 'KAFKA_RETRY_BACKOFF_BASE',
    },
    backoffMaxSeconds: {
      doc: 'Cap on the retry delay, in seconds; at least backoffBaseSeconds.',
      format: decimal(0.01, 3600),
      default: 30,
      env: 'KAFKA_RETRY_BACKOFF_MAX',
    },
  },
  publish: {
    timeoutMs: {
      doc: 'How long a publish may wait for the broker, in milliseconds, before it fails with events.broker.unavailable (nothing is buffered beyond it).',
      format: integer(100, 300_000),
      default: 5_000,
      env: 'KAFKA_PUBLISH_TIMEOUT_MS',
    },
    compression: {
      doc: 'Compression codec of published messages.',
      format: oneOf('none', 'gzip', 'snappy', 'lz4', 'zstd'),
      default: 'none',
      env: 'KAFKA_COMPRESSION',
    },
    circuitBreakerThreshold: {
      doc: 'Consecutive failed publishes that open the circuit breaker (then publishes fail at once).',
      format: integer(1, 100),
      default: 5,
      env: 'KAFKA_CIRCUIT_BREAKER_THRESHOLD',
    },
    circuitBreakerResetSeconds: {
      doc: 'Seconds an open circuit breaker waits before it lets one publish through (half_open).',
      format: decimal(1, 3600),
      default: 30,
      env: 'KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT',
    },
  },
  rabbitmq: {
    url: {
      doc: 'RabbitMQ to consume queues from and publish to: amqp://user:password@host:5672/vhost (amqps:// for TLS). Credentials are redacted in logs.',
      format: AMQP_URL,
      default: 'amqp://guest:guest@localhost:5672',
      env: 'AMQP_URL',
      sensitive: true,
    },
    heartbeatSeconds: {
      doc: 'AMQP heartbeat interval in seconds: a dead connection is noticed within about twice this, then the client reconnects (100 ms, 1 s, 10 s, then every 30 s).',
      format: integer(1, 600),
      default: 10,
      env: 'RABBITMQ_HEARTBEAT_SECONDS',
    },
    caFile: {
      doc: "PEM file of the CA that signed RabbitMQ's certificate (amqps://); empty: the system's CAs.",
      format: ANY_TEXT,
      default: '',
      env: 'RABBITMQ_CA_FILE',
    },
  },
  ops: {
    enabled: {
      doc: 'Serve /metrics, /health/live, /health/ready and /health/event-bus over HTTP.',
      format: BOOLEAN,
      default: true,
      env: 'CONVEYOR_OPS_ENABLED',
    },
    host: {
      doc: 'Address the ops server binds to (0.0.0.0: every interface, as Kubernetes probes need; 127.0.0.1: this host only).',
      format: NON_EMPTY_TEXT,
      default: '0.0.0.0',
      env: 'CONVEYOR_OPS_HOST',
    },
    port: {
      doc: 'Port of the ops server; 0 picks a free port (logged at start).',
      format: integer(0, 65_535),
      default: 8083,
      env: 'CONVEYOR_OPS_PORT',
    },
  },
  lag: {
    intervalSeconds: {
      doc: 'How often the consumer lag of each group and partition is measured, in seconds.',
      format: decimal(1, 3600),
      default: 15,
      env: 'CONVEYOR_LAG_INTERVAL_SECONDS',
    },
    alertThreshold: {
      doc: 'Lag in events at or above which a partition is at least at warning level.',
      format: integer(1, 1_000_000_000),
      default: 10_000,
      env: 'KAFKA_CONSUMER_LAG_ALERT_THRESHOLD',
    },
    infoSeconds: {
      doc: 'Lag in time (age of the oldest message not yet processed) above which the level is info, in seconds.',
      format: integer(1, 86_400),
      default: 60,
      env: 'KAFKA_CONSUMER_LAG_INFO_SECONDS',
    },
    warningSeconds: {
      doc: 'Lag in time above which the level is warning, in seconds (at least infoSeconds).',
      format: integer(1, 86_400),
      default: 300,
      env: 'KAFKA_CONSUMER_LAG_WARNING_SECONDS',
    },
    criticalSeconds: {
      doc: 'Lag in time above which the level is critical, in seconds (at least warningSeconds).',
      format: integer(1, 86_400),
      default: 900,
      env: 'KAFKA_CONSUMER_LAG_CRITICAL_SECONDS',
    },
    suppressMinutes: {
      doc: 'A lag spike that is already decreasing (a bulk import being worked off) suppresses warning level for this many minutes.',
      format: decimal(0, 1440),
      default: 30,
      env: 'KAFKA_CONSUMER_LAG_SUPPRESS_MINUTES',
    },
    webhookUrl: {
      doc: 'POST every lag level change here as JSON; empty: no webhook. Secret (such URLs often carry a token).',
      format: HTTP_URL_OR_EMPTY,
      default: '',
      env: 'CONVEYOR_LAG_WEBHOOK_URL',
      sensitive: true,
    },
  },
  handlers: {
    directory: {
      doc: 'Directory of handler files, relative to the working directory.',
      format: NON_EMPTY_TEXT,
      default: 'handlers',
      env: 'CONVEYOR_HANDLERS_DIR',
    },
    timeoutMs: {
      doc: 'Default handler timeout, in milliseconds.',
      format: integer(1, 3_600_000),
      default: 30_000,
      env: 'CONVEYOR_HANDLER_TIMEOUT_MS',
    },
  },
  pool: {
    size: { doc: 'Worker threads; 0: os.availableParallelism().', format: integer(0, 256), default: 0, env: 'CONVEYOR_POOL_SIZE' },
    maxBatch: {
      doc: "Most messages handed to a worker in one task (a partition's consecutive messages, or several keys' or messages' that run at once).",
      format: integer(1, 10_000),
      default: 64,
      env: 'CONVEYOR_POOL_MAX_BATCH',
    },
    tasksPerThread: {
      doc: "Tasks one worker thread runs at once: their handlers interleave while they await I/O; more wait for a thread. High by default: what bounds the messages in flight is each handler's concurrency, and a task waiting here holds its handler's slots while the thread merely awaits (measured: 32 halved the io benchmark's key mode).",
      format: integer(1, 4096),
      default: 256,
      env: 'CONVEYOR_POOL_TASKS_PER_THREAD',
    },
    timeoutGraceMs: {
      doc: "After a handler's timeout, how long it may take to return before its worker is terminated.",
      format: integer(0, 60_000),
      default: 1000,
      env: 'CONVEYOR_TIMEOUT_GRACE_MS',
    },
  },
  lanes: {
    maxMessages: {
      doc: 'Queued messages per partition before the partition is paused.',
      format: integer(1, 1_000_000),
      default: 10_000,
      env: 'CONVEYOR_LANE_MAX_MESSAGES',
    },
    maxBytes: {
      doc: 'Queued bytes per partition before the partition is paused.',
      format: integer(1024, 2_147_483_647),
      default: 16_777_216,
      env: 'CONVEYOR_LANE_MAX_BYTES',
    },
    resumeRatio: {
      doc: 'A paused partition resumes when its queue is below this ratio of both limits.',
      format: decimal(0, 0.99),
      default: 0.5,
      env: 'CONVEYOR_LANE_RESUME_RATIO',
    },
  },
  memory: {
    budgetMb: {
      doc: "The process's memory budget in MiB: the Kafka consumers' prefetch, the lanes' limits, the RabbitMQ prefetch and each worker thread's heap limit are derived from it (docs/configuration.md, \"Memory budget\"); explicit limits still apply and are only lowered. 0: no budget (the clients' defaults, the configured lane limits, unlimited worker heaps).",
      format: integer(0, 1_048_576),
      default: 512,
      env: 'CONVEYOR_MEMORY_BUDGET_MB',
    },
  },
  commit: {
    intervalMs: { doc: 'How often acknowledged offsets are committed.', format: integer(10, 60_000), default: 1000, env: 'CONVEYOR_COMMIT_INTERVAL_MS' },
    timeoutMs: {
      doc: 'How long one commit may take before it counts as failed (logged; the next commit carries the newest watermark).',
      format: integer(100, 120_000),
      default: 5000,
      env: 'CONVEYOR_COMMIT_TIMEOUT_MS',
    },
    metadataMaxBytes: {
      doc: "Bound of the commit metadata in which a Kafka commit records the offsets completed ahead of its watermark, so that the partition's next owner skips them (docs/commit-metadata.md). Must stay below the brokers' offset.metadata.max.bytes (4096 by default). 0: record none (the next owner handles everything after the watermark again).",
      format: integer(0, 1_048_576),
      default: 4000,
      env: 'CONVEYOR_COMMIT_METADATA_MAX_BYTES',
    },
  },
  shutdown: {
    deadlineMs: {
      doc: 'On shutdown, how long in-flight work may take before the process stops anyway.',
      format: integer(0, 600_000),
      default: 25_000,
      env: 'CONVEYOR_SHUTDOWN_DEADLINE_MS',
    },
    revokeDeadlineMs: {
      doc: 'On a rebalance, how long revoked partitions may take to finish in-flight work before they are released.',
      format: integer(0, 600_000),
      default: 10_000,
      env: 'CONVEYOR_REVOKE_DEADLINE_MS',
    },
  },
  log: {
    level: {
      doc: 'Log level.',
      format: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
      default: 'info',
      env: 'LOG_LEVEL',
    },
  },
};

/** One leaf of the schema, flattened. */
export interface Setting {
  /** Dotted path: `kafka.acks`. */
  readonly path: string;
  readonly env: string | undefined;
  readonly doc: string;
  readonly default: unknown;
  /** What a valid value is, in words. */
  readonly expected: string;
  /** Undefined when `value` is valid, else the rejection: `must be …; got …`. */
  readonly check: (value: unknown) => string | undefined;
  /** A secret (a password, or a URL that may carry one): never shown as it is. */
  readonly sensitive: boolean;
}

/** A schema node is a setting when it has a default (convict's rule); otherwise it is a section. */
export function isSettingNode(node: unknown): node is convict.SchemaObj {
  return typeof node === 'object' && node !== null && 'default' in node;
}

function flatten(section: Record<string, unknown>, prefix: string): Setting[] {
  return Object.entries(section).flatMap(([key, node]) => {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    if (!isSettingNode(node)) return flatten(node as Record<string, unknown>, path);
    const format = typeof node.format === 'string' ? formats.get(node.format) : undefined;
    if (format === undefined) throw new Error(`${path}: schema entries must use a format registered in schema.ts`);
    return [
      {
        path,
        env: node.env,
        doc: node.doc ?? '',
        default: node.default,
        expected: format.expected,
        check: format.check,
        sensitive: node.sensitive === true,
      },
    ];
  });
}

/** Every setting, in schema order. */
export const settings: readonly Setting[] = flatten(conveyorSchema as Record<string, unknown>, '');

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { describeConfig, EXIT_CONFIG, loadConfig } from '../../src/config/load.ts';
import { settings } from '../../src/config/schema.ts';
import type { ConveyorConfig } from '../../src/config/schema.ts';
import { ConfigError } from '../../src/failure/errors.ts';

const directory = mkdtempSync(join(tmpdir(), 'conveyor-config-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

let files = 0;
/** Writes `content` to a fresh file with the given extension and returns its path. */
function configFile(extension: string, content: string): string {
  files += 1;
  const file = join(directory, `conveyor-${files}${extension}`);
  writeFileSync(file, content);
  return file;
}

/** The problem lines of the ConfigError that loading throws (fails the test if loading succeeds). */
function problemsOf(options: Parameters<typeof loadConfig>[0]): readonly string[] {
  try {
    loadConfig(options);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  expect.fail('expected loadConfig to throw a ConfigError');
}

const DEFAULTS: ConveyorConfig = {
  app: { name: 'conveyor' },
  kafka: {
    bootstrapServers: 'localhost:9092',
    environment: 'local',
    group: 'default',
    timeoutSeconds: 30,
    autoOffsetReset: 'latest',
    acks: 'all',
    enableIdempotence: true,
    deadLetterTopic: '',
    instanceId: '',
    sessionTimeoutMs: 300_000,
    dynamicSessionTimeoutMs: 45_000,
    assignmentStrategy: 'cooperative-sticky',
    maxBatchSize: 1000,
    groupProtocol: 'auto',
    metadataRefreshMs: 10_000,
    reconnectBackoffMaxMs: 10_000,
    securityProtocol: 'plaintext',
    saslMechanism: 'SCRAM-SHA-512',
    saslUsername: '',
    saslPassword: '',
    sslCaLocation: '',
    sslCertificateLocation: '',
    sslKeyLocation: '',
    sslKeyPassword: '',
  },
  retry: { maxAttempts: 3, backoffBaseSeconds: 1, backoffMaxSeconds: 30 },
  publish: { timeoutMs: 5_000, compression: 'none', circuitBreakerThreshold: 5, circuitBreakerResetSeconds: 30 },
  rabbitmq: { url: 'amqp://guest:guest@localhost:5672', heartbeatSeconds: 10, caFile: '' },
  ops: { enabled: true, host: '0.0.0.0', port: 8083 },
  lag: { intervalSeconds: 15, alertThreshold: 10_000, infoSeconds: 60, warningSeconds: 300, criticalSeconds: 900, suppressMinutes: 30, webhookUrl: '' },
  handlers: { directory: 'handlers', timeoutMs: 30_000 },
  pool: { size: 0, maxBatch: 64, tasksPerThread: 256, timeoutGraceMs: 1000 },
  lanes: { maxMessages: 10_000, maxBytes: 16_777_216, resumeRatio: 0.5 },
  memory: { budgetMb: 512 },
  commit: { intervalMs: 1000, timeoutMs: 5000, metadataMaxBytes: 4000 },
  shutdown: { deadlineMs: 25_000, revokeDeadlineMs: 10_000 },
  log: { level: 'info' },
};

describe('defaults', () => {
  it('with no file and an empty environment, every setting has its documented default', () => {
    expect(loadConfig({ env: {} })).toEqual(DEFAULTS);
  });

  it('reads process.env when no environment is passed', () => {
    vi.stubEnv('KAFKA_GROUP', 'from-process-env');
    try {
      expect(loadConfig({}).kafka.group).toBe('from-process-env');
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('ignores process.env when an environment is passed, so loads are isolated', () => {
    vi.stubEnv('KAFKA_GROUP', 'from-process-env');
    try {
      expect(loadConfig({ env: {} }).kafka.group).toBe('default');
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe('configuration files', () => {
  it('applies YAML values and keeps defaults for the rest', () => {
    const file = configFile(
      '.yaml',
      ['kafka:', '  bootstrapServers: k1:9092,k2:9092', '  acks: "1"', 'retry:', '  maxAttempts: 5', '  backoffBaseSeconds: 0.25', ''].join('\n'),
    );
    const config = loadConfig({ file, env: {} });
    expect(config.kafka.bootstrapServers).toBe('k1:9092,k2:9092');
    expect(config.kafka.acks).toBe('1');
    expect(config.retry).toEqual({ maxAttempts: 5, backoffBaseSeconds: 0.25, backoffMaxSeconds: 30 });
    expect(config.pool).toEqual(DEFAULTS.pool);
  });

  it('accepts the .yml extension', () => {
    const file = configFile('.yml', 'log:\n  level: debug\n');
    expect(loadConfig({ file, env: {} }).log.level).toBe('debug');
  });

  it('applies JSON values and keeps defaults for the rest', () => {
    const file = configFile('.json', JSON.stringify({ pool: { size: 4, maxBatch: 128 }, kafka: { enableIdempotence: false } }));
    const config = loadConfig({ file, env: {} });
    expect(config.pool).toEqual({ size: 4, maxBatch: 128, tasksPerThread: 256, timeoutGraceMs: 1000 });
    expect(config.kafka.enableIdempotence).toBe(false);
    expect(config.kafka.acks).toBe('all');
  });

  it('reads unquoted numbers for text and boolean settings as the environment would (acks: 1, enableIdempotence: 0)', () => {
    const file = configFile('.yaml', 'kafka:\n  acks: 1\n  enableIdempotence: 0\n');
    const config = loadConfig({ file, env: {} });
    expect(config.kafka.acks).toBe('1');
    expect(config.kafka.enableIdempotence).toBe(false);
  });

  it('treats an empty file, a comments-only file and an empty section as setting nothing', () => {
    expect(loadConfig({ file: configFile('.yaml', ''), env: {} })).toEqual(DEFAULTS);
    expect(loadConfig({ file: configFile('.yaml', '# nothing yet\n'), env: {} })).toEqual(DEFAULTS);
    expect(loadConfig({ file: configFile('.yaml', 'kafka:\n  # acks: all\n'), env: {} })).toEqual(DEFAULTS);
  });
});

describe('precedence: defaults < file < environment', () => {
  it('lets the environment override the file', () => {
    const file = configFile('.yaml', 'kafka:\n  group: from-file\n  environment: staging\nretry:\n  maxAttempts: 5\n');
    const config = loadConfig({ file, env: { KAFKA_GROUP: 'from-env', KAFKA_MAX_RETRY_ATTEMPTS: '7' } });
    expect(config.kafka.group).toBe('from-env');
    expect(config.retry.maxAttempts).toBe(7);
    expect(config.kafka.environment).toBe('staging');
  });

  it('does not complain about a bad file value that the environment overrides', () => {
    const file = configFile('.yaml', 'kafka:\n  acks: "2"\n');
    expect(loadConfig({ file, env: { KAFKA_ACKS: '0' } }).kafka.acks).toBe('0');
  });

  it('reads numbers from environment variables', () => {
    const config = loadConfig({ env: { KAFKA_RETRY_BACKOFF_BASE: '0.5', CONVEYOR_LANE_MAX_BYTES: '1048576', POD_NAME: 'conveyor-0' } });
    expect(config.retry.backoffBaseSeconds).toBe(0.5);
    expect(config.lanes.maxBytes).toBe(1_048_576);
    expect(config.kafka.instanceId).toBe('conveyor-0');
  });
});

describe('boolean environment variables', () => {
  it.each([
    ['true', true],
    ['false', false],
    ['1', true],
    ['0', false],
    ['TRUE', true],
    ['False', false],
  ])('reads KAFKA_ENABLE_IDEMPOTENCE=%s as %s', (text, expected) => {
    expect(loadConfig({ env: { KAFKA_ENABLE_IDEMPOTENCE: text } }).kafka.enableIdempotence).toBe(expected);
  });

  it.each(['yes', 'no', 'off', ''])('rejects KAFKA_ENABLE_IDEMPOTENCE=%j instead of reading it as true', (text) => {
    expect(problemsOf({ env: { KAFKA_ENABLE_IDEMPOTENCE: text } })).toEqual([
      `kafka.enableIdempotence (KAFKA_ENABLE_IDEMPOTENCE): must be true or false (or 1 or 0); got ${JSON.stringify(text)}`,
    ]);
  });
});

describe('range and choice rejections name the key, its variable, the expectation and the value', () => {
  it.each([
    ['CONVEYOR_APP_NAME', '', 'app.name (CONVEYOR_APP_NAME): must be a non-empty string; got ""'],
    ['KAFKA_ENVIRONMENT', 'prod east', 'kafka.environment (KAFKA_ENVIRONMENT): must be one or more letters, digits, ".", "_" or "-"; got "prod east"'],
    ['KAFKA_GROUP', '', 'kafka.group (KAFKA_GROUP): must be one or more letters, digits, ".", "_" or "-"; got ""'],
    ['KAFKA_TIMEOUT_SECONDS', '0.5', 'kafka.timeoutSeconds (KAFKA_TIMEOUT_SECONDS): must be a number from 1 to 300; got 0.5'],
    ['KAFKA_TIMEOUT_SECONDS', '301', 'kafka.timeoutSeconds (KAFKA_TIMEOUT_SECONDS): must be a number from 1 to 300; got 301'],
    ['KAFKA_AUTO_OFFSET_RESET', 'smallest', 'kafka.autoOffsetReset (KAFKA_AUTO_OFFSET_RESET): must be one of earliest, latest; got "smallest"'],
    ['KAFKA_ACKS', '2', 'kafka.acks (KAFKA_ACKS): must be one of all, 1, 0; got "2"'],
    ['KAFKA_ACKS', '-1', 'kafka.acks (KAFKA_ACKS): must be one of all, 1, 0; got "-1"'],
    ['KAFKA_SESSION_TIMEOUT_MS', '5999', 'kafka.sessionTimeoutMs (KAFKA_SESSION_TIMEOUT_MS): must be an integer from 6000 to 1800000; got 5999'],
    [
      'KAFKA_PARTITION_ASSIGNMENT_STRATEGY',
      'sticky',
      'kafka.assignmentStrategy (KAFKA_PARTITION_ASSIGNMENT_STRATEGY): must be one of cooperative-sticky, range, roundrobin; got "sticky"',
    ],
    ['KAFKA_MAX_BATCH_SIZE', '0', 'kafka.maxBatchSize (KAFKA_MAX_BATCH_SIZE): must be an integer from 1 to 100000; got 0'],
    ['KAFKA_MAX_RETRY_ATTEMPTS', '11', 'retry.maxAttempts (KAFKA_MAX_RETRY_ATTEMPTS): must be an integer from 0 to 10; got 11'],
    ['KAFKA_MAX_RETRY_ATTEMPTS', '-1', 'retry.maxAttempts (KAFKA_MAX_RETRY_ATTEMPTS): must be an integer from 0 to 10; got -1'],
    ['KAFKA_RETRY_BACKOFF_BASE', '0', 'retry.backoffBaseSeconds (KAFKA_RETRY_BACKOFF_BASE): must be a number from 0.001 to 60; got 0'],
    ['KAFKA_RETRY_BACKOFF_MAX', '3601', 'retry.backoffMaxSeconds (KAFKA_RETRY_BACKOFF_MAX): must be a number from 0.01 to 3600; got 3601'],
    ['CONVEYOR_HANDLERS_DIR', '', 'handlers.directory (CONVEYOR_HANDLERS_DIR): must be a non-empty string; got ""'],
    ['CONVEYOR_HANDLER_TIMEOUT_MS', '0', 'handlers.timeoutMs (CONVEYOR_HANDLER_TIMEOUT_MS): must be an integer from 1 to 3600000; got 0'],
    ['CONVEYOR_POOL_SIZE', '257', 'pool.size (CONVEYOR_POOL_SIZE): must be an integer from 0 to 256; got 257'],
    ['CONVEYOR_POOL_MAX_BATCH', '10001', 'pool.maxBatch (CONVEYOR_POOL_MAX_BATCH): must be an integer from 1 to 10000; got 10001'],
    ['CONVEYOR_TIMEOUT_GRACE_MS', '60001', 'pool.timeoutGraceMs (CONVEYOR_TIMEOUT_GRACE_MS): must be an integer from 0 to 60000; got 60001'],
    ['CONVEYOR_LANE_MAX_MESSAGES', '0', 'lanes.maxMessages (CONVEYOR_LANE_MAX_MESSAGES): must be an integer from 1 to 1000000; got 0'],
    ['CONVEYOR_LANE_MAX_BYTES', '1023', 'lanes.maxBytes (CONVEYOR_LANE_MAX_BYTES): must be an integer from 1024 to 2147483647; got 1023'],
    ['CONVEYOR_LANE_RESUME_RATIO', '1', 'lanes.resumeRatio (CONVEYOR_LANE_RESUME_RATIO): must be a number from 0 to 0.99; got 1'],
    ['CONVEYOR_COMMIT_INTERVAL_MS', '9', 'commit.intervalMs (CONVEYOR_COMMIT_INTERVAL_MS): must be an integer from 10 to 60000; got 9'],
    ['CONVEYOR_SHUTDOWN_DEADLINE_MS', '600001', 'shutdown.deadlineMs (CONVEYOR_SHUTDOWN_DEADLINE_MS): must be an integer from 0 to 600000; got 600001'],
    ['CONVEYOR_REVOKE_DEADLINE_MS', '-5', 'shutdown.revokeDeadlineMs (CONVEYOR_REVOKE_DEADLINE_MS): must be an integer from 0 to 600000; got -5'],
    ['LOG_LEVEL', 'verbose', 'log.level (LOG_LEVEL): must be one of fatal, error, warn, info, debug, trace, silent; got "verbose"'],
  ])('%s=%j is rejected', (variable, value, line) => {
    expect(problemsOf({ env: { [variable]: value } })).toEqual([line]);
  });

  it('rejects a fraction for an integer setting', () => {
    expect(problemsOf({ env: { CONVEYOR_POOL_SIZE: '1.5' } })).toEqual([
      'pool.size (CONVEYOR_POOL_SIZE): must be an integer from 0 to 256; got 1.5',
    ]);
  });

  it('rejects text with a number in front instead of reading the number (convict would read "10abc" as 10)', () => {
    expect(problemsOf({ env: { CONVEYOR_POOL_SIZE: '10abc', KAFKA_TIMEOUT_SECONDS: '5s' } })).toEqual([
      'kafka.timeoutSeconds (KAFKA_TIMEOUT_SECONDS): must be a number from 1 to 300; got "5s"',
      'pool.size (CONVEYOR_POOL_SIZE): must be an integer from 0 to 256; got "10abc"',
    ]);
  });

  it('accepts the limits of each range', () => {
    const config = loadConfig({
      env: { KAFKA_MAX_RETRY_ATTEMPTS: '0', CONVEYOR_POOL_SIZE: '256', CONVEYOR_LANE_RESUME_RATIO: '0', KAFKA_SESSION_TIMEOUT_MS: '6000', CONVEYOR_MEMORY_BUDGET_MB: '1048576' },
    });
    expect(config.retry.maxAttempts).toBe(0);
    expect(config.pool.size).toBe(256);
    expect(config.lanes.resumeRatio).toBe(0);
    expect(config.kafka.sessionTimeoutMs).toBe(6000);
  });

  it('reports several bad keys at once, one line each', () => {
    const problems = problemsOf({
      env: { KAFKA_ACKS: '2', KAFKA_MAX_RETRY_ATTEMPTS: '11', CONVEYOR_POOL_SIZE: '-1', LOG_LEVEL: 'loud' },
    });
    expect(problems).toHaveLength(4);
    expect(problems).toEqual(
      expect.arrayContaining([
        'kafka.acks (KAFKA_ACKS): must be one of all, 1, 0; got "2"',
        'retry.maxAttempts (KAFKA_MAX_RETRY_ATTEMPTS): must be an integer from 0 to 10; got 11',
        'pool.size (CONVEYOR_POOL_SIZE): must be an integer from 0 to 256; got -1',
        'log.level (LOG_LEVEL): must be one of fatal, error, warn, info, debug, trace, silent; got "loud"',
      ]),
    );
  });

  it('names the environment variable for bad values that came from the file too', () => {
    const file = configFile('.yaml', 'retry:\n  maxAttempts: 11\nkafka:\n  acks: "2"\n');
    expect(problemsOf({ file, env: {} })).toEqual([
      'kafka.acks (KAFKA_ACKS): must be one of all, 1, 0; got "2"',
      'retry.maxAttempts (KAFKA_MAX_RETRY_ATTEMPTS): must be an integer from 0 to 10; got 11',
    ]);
  });

  it('rejects a list or mapping given for a setting', () => {
    const file = configFile('.yaml', 'kafka:\n  bootstrapServers: [a:9092]\nretry:\n  maxAttempts:\n    deep:\n      er: 1\n');
    expect(problemsOf({ file, env: {} })).toEqual([
      'kafka.bootstrapServers (KAFKA_BOOTSTRAP_SERVERS): must be a comma-separated list of host:port with ports from 1 to 65535; got ["a:9092"]',
      'retry.maxAttempts (KAFKA_MAX_RETRY_ATTEMPTS): must be an integer from 0 to 10; got {"deep":{"er":1}}',
    ]);
  });

  it('throws a ConfigError with the stable code, and the configuration exit code is 78', () => {
    expect(() => loadConfig({ env: { KAFKA_ACKS: '2' } })).toThrow(
      expect.objectContaining({ code: 'conveyor.config.invalid', message: 'invalid configuration:\n  - kafka.acks (KAFKA_ACKS): must be one of all, 1, 0; got "2"' }),
    );
    expect(EXIT_CONFIG).toBe(78);
  });
});

describe('unknown keys', () => {
  it('rejects a key the schema does not declare', () => {
    const file = configFile('.yaml', 'kafka:\n  bogus: 1\n');
    expect(problemsOf({ file, env: {} })).toEqual(['kafka.bogus: not a known setting (see docs/configuration.md)']);
  });

  it('rejects an unknown section and an unknown key in the same file, one line each', () => {
    const file = configFile('.json', JSON.stringify({ metrics: { port: 9100 }, pool: { workers: 4 } }));
    expect(problemsOf({ file, env: {} })).toEqual([
      'metrics: not a known setting (see docs/configuration.md)',
      'pool.workers: not a known setting (see docs/configuration.md)',
    ]);
  });

  it('suggests the setting a differently spelled key probably meant', () => {
    const file = configFile('.yaml', 'kafka:\n  bootstrap_servers: k:9092\n');
    expect(problemsOf({ file, env: {} })).toEqual([
      'kafka.bootstrap_servers: not a known setting (see docs/configuration.md); did you mean kafka.bootstrapServers?',
    ]);
  });

  it('suggests the setting a misspelled key probably meant', () => {
    const file = configFile('.yaml', 'kafka:\n  sesionTimeoutMs: 45000\n');
    expect(problemsOf({ file, env: {} })).toEqual([
      'kafka.sesionTimeoutMs: not a known setting (see docs/configuration.md); did you mean kafka.sessionTimeoutMs?',
    ]);
  });

  it('explains that a dotted key must be written nested', () => {
    const file = configFile('.yaml', 'kafka.acks: "1"\n');
    expect(problemsOf({ file, env: {} })).toEqual([
      'kafka.acks: not a known setting (see docs/configuration.md); write it nested, kafka: { acks: … }, not as one dotted key',
    ]);
  });

  it('rejects a value where a section of settings belongs', () => {
    const file = configFile('.yaml', 'kafka: localhost:9092\n');
    expect(problemsOf({ file, env: {} })).toEqual(['kafka: must be a mapping of settings (see docs/configuration.md); got "localhost:9092"']);
  });
});

describe('kafka.deadLetterTopic', () => {
  it.each(['', 'orders.dlq', 'dead_letters-v2', 'x'.repeat(249)])('accepts %j', (topic) => {
    expect(loadConfig({ env: { KAFKA_DEAD_LETTER_TOPIC: topic } }).kafka.deadLetterTopic).toBe(topic);
  });

  it.each([
    ['.', '"."'],
    ['..', '".."'],
    ['orders dlq', '"orders dlq"'],
    ['orders/dlq', '"orders/dlq"'],
    ['x'.repeat(250), '"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"… (250 characters)'],
  ])('rejects %j', (topic, shown) => {
    expect(problemsOf({ env: { KAFKA_DEAD_LETTER_TOPIC: topic } })).toEqual([
      `kafka.deadLetterTopic (KAFKA_DEAD_LETTER_TOPIC): must be empty or a Kafka topic name (1 to 249 letters, digits, ".", "_" or "-"; not "." or ".."); got ${shown}`,
    ]);
  });
});

describe('kafka.bootstrapServers', () => {
  it.each(['localhost:9092', 'k1:9092,k2:9093', 'k1:9092, k2:9093', '10.0.0.7:1', '[::1]:65535', 'kafka_broker-0.internal:9092'])(
    'accepts %j',
    (servers) => {
      expect(loadConfig({ env: { KAFKA_BOOTSTRAP_SERVERS: servers } }).kafka.bootstrapServers).toBe(servers);
    },
  );

  it.each([
    ['localhost', '"localhost"'],
    ['localhost:0', '"localhost:0"'],
    ['localhost:65536', '"localhost:65536"'],
    ['k1:9092,', '""'],
    ['k1:9092,k2', '"k2"'],
    ['', '""'],
    ['http://k1:9092', '"http://k1:9092"'],
  ])('rejects %j, naming the bad entries', (servers, bad) => {
    expect(problemsOf({ env: { KAFKA_BOOTSTRAP_SERVERS: servers } })).toEqual([
      `kafka.bootstrapServers (KAFKA_BOOTSTRAP_SERVERS): must be a comma-separated list of host:port with ports from 1 to 65535; got ${JSON.stringify(servers)} (bad entries: ${bad})`,
    ]);
  });
});

describe('describeConfig (what `conveyor check` prints)', () => {
  it('hides every secret: passwords become ***, URLs keep all but their password', () => {
    const config = loadConfig({
      env: {
        KAFKA_SECURITY_PROTOCOL: 'sasl_ssl', KAFKA_SASL_USERNAME: 'app', KAFKA_SASL_PASSWORD: 'kafka-s3cret',
        AMQP_URL: 'amqps://worker:rabbit-s3cret@mq.internal:5671/orders', CONVEYOR_LAG_WEBHOOK_URL: 'https://hooks.example/T0/B0/tok3n',
      },
    });
    const shown = describeConfig(config);
    const text = JSON.stringify(shown);
    for (const secret of ['kafka-s3cret', 'rabbit-s3cret']) expect(text).not.toContain(secret);
    expect(shown.kafka).toMatchObject({ saslUsername: 'app', saslPassword: '***', sslKeyPassword: '' });
    expect(shown.rabbitmq).toMatchObject({ url: 'amqps://worker:***@mq.internal:5671/orders' });
    // webhook URLs carry their token in the path: only the origin is shown
    expect((shown.lag as { webhookUrl: string }).webhookUrl).toBe('https://hooks.example/***');
    expect(text).not.toContain('tok3n');
    expect(config.kafka.saslPassword, 'the configuration itself is untouched').toBe('kafka-s3cret');
  });
});

describe('settings that depend on each other', () => {
  it('needs the lag levels in order: info ≤ warning ≤ critical', () => {
    expect(problemsOf({ env: { KAFKA_CONSUMER_LAG_WARNING_SECONDS: '30' } })).toEqual([
      'lag.warningSeconds (KAFKA_CONSUMER_LAG_WARNING_SECONDS): must be at least lag.infoSeconds (60); got 30',
    ]);
    expect(problemsOf({ env: { KAFKA_CONSUMER_LAG_CRITICAL_SECONDS: '200' } })).toEqual([
      'lag.criticalSeconds (KAFKA_CONSUMER_LAG_CRITICAL_SECONDS): must be at least lag.warningSeconds (300); got 200',
    ]);
  });

  it('needs a SASL user and password with a sasl_* protocol, without ever showing the password', () => {
    expect(problemsOf({ env: { KAFKA_SECURITY_PROTOCOL: 'sasl_ssl' } })).toEqual([
      'kafka.saslUsername (KAFKA_SASL_USERNAME): must be set when kafka.securityProtocol is sasl_ssl',
      'kafka.saslPassword (KAFKA_SASL_PASSWORD): must be set when kafka.securityProtocol is sasl_ssl',
    ]);
    expect(loadConfig({ env: { KAFKA_SECURITY_PROTOCOL: 'sasl_plaintext', KAFKA_SASL_USERNAME: 'app', KAFKA_SASL_PASSWORD: 's3cret' } }).kafka.saslPassword).toBe('s3cret');
  });

  it('shows a webhook URL without its password', () => {
    expect(problemsOf({ env: { CONVEYOR_LAG_WEBHOOK_URL: 'ftp://u:tok3n@hooks.example' } })).toEqual([
      'lag.webhookUrl (CONVEYOR_LAG_WEBHOOK_URL): must be empty or an http:// or https:// URL; got "ftp://u:***@hooks.example/"',
    ]);
  });
});

describe('rabbitmq.url', () => {
  it.each(['amqp://localhost', 'amqp://guest:guest@127.0.0.1:5672', 'amqps://u:p@mq.internal:5671/orders', 'amqp://rabbit/%2F'])('accepts %j', (url) => {
    expect(loadConfig({ env: { AMQP_URL: url } }).rabbitmq.url).toBe(url);
  });

  it('rejects a URL of another scheme, and shows it without its password', () => {
    expect(problemsOf({ env: { AMQP_URL: 'http://admin:s3cret@mq:5672' } })).toEqual([
      'rabbitmq.url (AMQP_URL): must be an amqp:// or amqps:// URL (amqp://user:password@host:5672/vhost); got "http://admin:***@mq:5672/"',
    ]);
  });

  it('rejects text that is not a URL', () => {
    expect(problemsOf({ env: { AMQP_URL: 'localhost:5672' } })).toEqual([
      'rabbitmq.url (AMQP_URL): must be an amqp:// or amqps:// URL (amqp://user:password@host:5672/vhost); got "localhost:5672"',
    ]);
  });
});

describe('retry.backoffMaxSeconds must be at least retry.backoffBaseSeconds', () => {
  it('rejects a maximum below the base', () => {
    expect(problemsOf({ env: { KAFKA_RETRY_BACKOFF_BASE: '5', KAFKA_RETRY_BACKOFF_MAX: '2' } })).toEqual([
      'retry.backoffMaxSeconds (KAFKA_RETRY_BACKOFF_MAX): must be at least retry.backoffBaseSeconds (5); got 2',
    ]);
  });

  it('accepts a maximum equal to the base', () => {
    expect(loadConfig({ env: { KAFKA_RETRY_BACKOFF_BASE: '2', KAFKA_RETRY_BACKOFF_MAX: '2' } }).retry).toMatchObject({
      backoffBaseSeconds: 2,
      backoffMaxSeconds: 2,
    });
  });

  it('is reported alongside other problems', () => {
    const file = configFile('.yaml', 'retry:\n  backoffBaseSeconds: 10\n  backoffMaxSeconds: 1\n');
    expect(problemsOf({ file, env: { KAFKA_ACKS: 'none' } })).toEqual([
      'kafka.acks (KAFKA_ACKS): must be one of all, 1, 0; got "none"',
      'retry.backoffMaxSeconds (KAFKA_RETRY_BACKOFF_MAX): must be at least retry.backoffBaseSeconds (10); got 1',
    ]);
  });

  it('is not checked when either value is already out of range, so each key gets one line', () => {
    expect(problemsOf({ env: { KAFKA_RETRY_BACKOFF_BASE: '61', KAFKA_RETRY_BACKOFF_MAX: '0' } })).toEqual([
      'retry.backoffBaseSeconds (KAFKA_RETRY_BACKOFF_BASE): must be a number from 0.001 to 60; got 61',
      'retry.backoffMaxSeconds (KAFKA_RETRY_BACKOFF_MAX): must be a number from 0.01 to 3600; got 0',
    ]);
  });
});

describe('files that cannot be used', () => {
  it('names a missing file', () => {
    const file = join(directory, 'absent.yaml');
    expect(problemsOf({ file, env: {} })).toEqual([`${file}: cannot read the configuration file: no such file`]);
  });

  it('names the file and the position of a YAML syntax error', () => {
    const file = configFile('.yaml', 'kafka:\n  acks: "1\n');
    const problems = problemsOf({ file, env: {} });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`${file}: not valid YAML: `);
    expect(problems[0]).toMatch(/at line \d+, column \d+/);
  });

  it('names the file of a JSON syntax error', () => {
    const file = configFile('.json', '{ "kafka": { "acks": "1", } }');
    const problems = problemsOf({ file, env: {} });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`${file}: not valid JSON: `);
  });

  it('rejects an extension other than .json, .yaml or .yml', () => {
    const file = configFile('.toml', 'acks = "1"\n');
    expect(problemsOf({ file, env: {} })).toEqual([`${file}: a configuration file must end in .json, .yaml or .yml`]);
  });

  it('rejects a file whose top level is not a mapping', () => {
    const file = configFile('.yaml', '- kafka\n- retry\n');
    expect(problemsOf({ file, env: {} })).toEqual([`${file}: must hold a mapping of settings at the top level; got ["kafka","retry"]`]);
  });
});

describe('describeConfig', () => {
  it('returns the resolved configuration as a plain copy, secrets hidden', () => {
    const config = loadConfig({ env: { KAFKA_GROUP: 'payments' } });
    const described = describeConfig(config);
    expect(described).toEqual({ ...config, rabbitmq: { ...config.rabbitmq, url: 'amqp://guest:***@localhost:5672' } });
    (described.kafka as { group: string }).group = 'changed';
    expect(config.kafka.group).toBe('payments');
  });
});

describe('docs/configuration.md', () => {
  it('lists every setting with its environment variable and default', () => {
    const docs = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    for (const setting of settings) {
      const row = docs.split('\n').find((line) => line.startsWith(`| \`${setting.path}\` |`));
      expect(row, setting.path).toBeDefined();
      expect(row).toContain(`\`${setting.env}\``);
      expect(row).toContain(`\`${JSON.stringify(setting.default)}\``);
    }
  });
});

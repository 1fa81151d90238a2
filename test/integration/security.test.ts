/**
 * Security against the real brokers: the runner consumes through Kafka's SASL listener (SCRAM-SHA-512,
 * SCRAM-SHA-256, PLAIN); a wrong password stops it at start-up with a message that names the mechanism, the user
 * and the failure; the publisher fails the same way before its timeout; Kafka TLS trusts the broker through
 * KAFKA_SSL_CA_LOCATION and fails at once without it; amqps:// trusts RabbitMQ through rabbitmq.caFile. Through
 * all of it, runners log at debug, and no line of theirs carries a password: neither the SASL one nor that of the
 * RabbitMQ user made for this file, right or wrong.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { createPublisher } from '../../src/publish/kafka-publisher.ts';
import { connectAmqp } from '../../src/rabbitmq/connection.ts';
import { useKafkaFixture } from '../support/fixture.ts';
import { produce, readTopic, waitFor } from '../support/kafka.ts';
import { deleteQueues, openChannel, uniqueQueue } from '../support/rabbitmq.ts';
import { readRecords, startRunner, type LogLine, type RunnerProcess } from '../support/runner.ts';
import {
  addRabbitUser,
  linesWithSecrets,
  outputLines,
  SASL_MECHANISMS,
  SASL_PASSWORD,
  SASL_USER,
  saslBrokers,
  spawnRunner,
  startTlsEndpoint,
  throwawayPki,
  uniqueSecret,
  type RabbitUser,
  type ThrowawayPki,
} from '../support/security.ts';

/** The runner's environment for the SASL listener with this mechanism and password. */
function saslEnv(mechanism: string, password: string): Record<string, string> {
  return {
    KAFKA_BOOTSTRAP_SERVERS: saslBrokers(),
    KAFKA_SECURITY_PROTOCOL: 'sasl_plaintext',
    KAFKA_SASL_MECHANISM: mechanism,
    KAFKA_SASL_USERNAME: SASL_USER,
    KAFKA_SASL_PASSWORD: password,
  };
}

/** The runner's "start-up failed" line, once written. */
async function startupFailure(runner: RunnerProcess, timeoutMs: number): Promise<LogLine & { err: { code: string; message: string } }> {
  await runner.waitForLog('start-up failed', timeoutMs);
  return runner.logs.find((l) => l.msg === 'start-up failed') as LogLine & { err: { code: string; message: string } };
}

/** Log lines written to memory, for the in-process clients (publisher, amqps connection). */
function memoryLogger(): { logger: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger('security-test', 'debug', { write: (line: string) => void lines.push(line) }), lines };
}

describe('security', () => {
  const fx = useKafkaFixture();
  let rabbitUser: RabbitUser;
  let pki: ThrowawayPki;
  const queues: string[] = [];
  /** Every secret of this file: none may appear in any output line. */
  const secrets: string[] = [SASL_PASSWORD];

  beforeAll(async () => {
    saslBrokers(); // fails the file at once, saying why, when there is no SASL listener
    pki = throwawayPki();
    rabbitUser = await addRabbitUser();
    secrets.push(rabbitUser.password);
  });
  afterAll(async () => {
    await deleteQueues(queues);
    await rabbitUser?.remove();
  });

  it('a wrong SASL password stops the runner at start-up: exit 1, naming mechanism, user and failure, never the password', async () => {
    const wrong = uniqueSecret('wrong-sasl');
    secrets.push(wrong);
    const { topic, group } = await fx.topic('sec-wrong', 1);
    const started = Date.now();
    const runner = fx.track(spawnRunner({ ...saslEnv('SCRAM-SHA-512', wrong), TEST_TOPIC: topic, TEST_GROUP: group }));

    const failure = await startupFailure(runner, 15_000);
    const reportedAfterMs = Date.now() - started;
    const reportedAt = Date.now();
    expect(failure.err.code).toBe('events.broker.auth_failed');
    expect(failure.err.message).toContain('SASL authentication failed');
    expect(failure.err.message).toContain(`user "${SASL_USER}"`);
    expect(failure.err.message).toContain('SCRAM-SHA-512');
    expect(failure.err.message).toContain('KAFKA_SASL_PASSWORD');
    // said at the first refusal, not after the client's 30 s connect timeout
    expect(reportedAfterMs).toBeLessThan(15_000);

    // the driver's connect waits for the brokers in slices of 1 s (kafka/bounded-connect.ts), not in one of 30 s
    // that Node would join at exit: the process ends within 2 s of the report, with exit code 1
    const exit = await Promise.race([runner.exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 50_000))]);
    const exitedAfterReportMs = Date.now() - reportedAt;
    expect(exit).toEqual({ code: 1, signal: null });
    expect(exitedAfterReportMs).toBeLessThan(2_000);
    expect(linesWithSecrets(outputLines(runner), secrets)).toEqual([]);
  }, 80_000);

  it('the runner consumes through the SASL listener with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN, the password in no log line', async () => {
    const runs = await Promise.all(
      SASL_MECHANISMS.map(async (mechanism) => {
        const { topic, group } = await fx.topic(`sec-${mechanism.toLowerCase()}`, 2);
        await produce(fx.kafka, topic, Array.from({ length: 20 }, (_, seq) => ({ key: `k${seq % 4}`, value: { seq } })));
        const runner = await fx.startRunner({ topic, group, env: saslEnv(mechanism, SASL_PASSWORD) });
        return { mechanism, runner };
      }),
    );
    for (const { mechanism, runner } of runs) {
      await waitFor(`20 messages handled through ${mechanism}`, () => readRecords(runner.recordFile).filter((r) => r.ok).length >= 20, 30_000);
      expect(new Set(readRecords(runner.recordFile).map((r) => r.seq)).size, mechanism).toBe(20);
    }
    await Promise.all(runs.map(({ runner }) => runner.stop()));
    for (const { mechanism, runner } of runs) {
      expect(linesWithSecrets(outputLines(runner), secrets), mechanism).toEqual([]);
    }
  });

  it('the publisher with a wrong SASL password fails with events.broker.auth_failed before its timeout, every time; with the right one it publishes', async () => {
    const wrong = uniqueSecret('wrong-publisher');
    secrets.push(wrong);
    const { topic } = await fx.topic('sec-publish', 1);
    const { logger, lines } = memoryLogger();
    const refused = createPublisher(loadConfig({ env: { ...saslEnv('SCRAM-SHA-256', wrong), KAFKA_PUBLISH_TIMEOUT_MS: '10000' } }), { logger });
    try {
      for (const attempt of [1, 2]) {
        const started = Date.now();
        const error = await refused.publish(topic, { value: { attempt } }).then(
          () => undefined,
          (err: unknown) => err as { code: string; retriable: boolean; message: string },
        );
        expect(error?.code, `attempt ${attempt}`).toBe('events.broker.auth_failed');
        expect(error?.retriable).toBe(false);
        expect(error?.message).toContain(`SASL authentication failed for user "${SASL_USER}" with mechanism SCRAM-SHA-256`);
        expect(error?.message).not.toContain(wrong);
        expect(Date.now() - started, `attempt ${attempt}: well before the 10 s publish timeout`).toBeLessThan(5_000);
      }
    } finally {
      await refused.close();
    }

    const accepted = createPublisher(loadConfig({ env: saslEnv('SCRAM-SHA-256', SASL_PASSWORD) }), { logger });
    try {
      await accepted.publish(topic, { key: 'k', value: { via: 'sasl' } });
    } finally {
      await accepted.close();
    }
    expect((await readTopic(topic, 1)).map((m) => JSON.parse(m.value) as unknown)).toEqual([{ via: 'sasl' }]);
    expect(lines.some((l) => l.includes('SASL authentication error')), 'the driver logged the refusal').toBe(true);
    expect(linesWithSecrets(lines, secrets)).toEqual([]);
  });

  it('Kafka over TLS trusts the broker through KAFKA_SSL_CA_LOCATION; without it the runner stops at once with events.broker.tls_failed', async () => {
    const endpoint = await startTlsEndpoint(pki);
    try {
      const { topic, group } = await fx.topic('sec-tls', 1);
      const tls = { KAFKA_BOOTSTRAP_SERVERS: `localhost:${endpoint.port}`, KAFKA_SECURITY_PROTOCOL: 'ssl', TEST_TOPIC: topic, TEST_GROUP: group };

      const untrusting = fx.track(spawnRunner(tls));
      const failure = await startupFailure(untrusting, 15_000);
      expect(failure.err.code).toBe('events.broker.tls_failed');
      expect(failure.err.message).toContain('KAFKA_SSL_CA_LOCATION');
      expect(endpoint.handshakes()).toBe(0);
      expect(endpoint.refusals()).toBeGreaterThan(0);

      // the endpoint is no broker: a completed handshake is all there is to see
      const trusting = fx.track(spawnRunner({ ...tls, KAFKA_SSL_CA_LOCATION: pki.caFile }));
      await waitFor('a TLS handshake with the CA of KAFKA_SSL_CA_LOCATION', () => endpoint.handshakes() > 0, 15_000);
      expect(trusting.has('start-up failed')).toBe(false);
    } finally {
      await endpoint.close();
    }
  });

  it('amqps:// trusts RabbitMQ through rabbitmq.caFile, and says that the handshake failed without it', async () => {
    const front = await startTlsEndpoint(pki, Number(new URL(rabbitUser.url).port || 5672));
    const url = new URL(rabbitUser.url);
    url.protocol = 'amqps:';
    url.hostname = 'localhost';
    url.port = String(front.port);
    const { logger, lines } = memoryLogger();
    const without = connectAmqp({ url: url.toString(), heartbeatSeconds: 5, name: 'security-test-no-ca', logger });
    const withCa = connectAmqp({ url: url.toString(), heartbeatSeconds: 5, name: 'security-test-ca', logger, caFile: pki.caFile });
    try {
      // connected: TLS handshake done with the CA of rabbitmq.caFile, then the AMQP login through it
      await waitFor('the amqps connection with rabbitmq.caFile', () => withCa.isConnected(), 15_000);
      expect(front.handshakes()).toBeGreaterThan(0);
      expect(lines.some((l) => l.includes('"connection":"security-test-ca"') && l.includes('RabbitMQ connected'))).toBe(true);

      await waitFor('the TLS failure logged', () => lines.some((l) => l.includes('TLS handshake with RabbitMQ failed')), 15_000);
      expect(without.isConnected()).toBe(false);
    } finally {
      await Promise.all([without.close(), withCa.close()]);
      await front.close();
    }
    expect(linesWithSecrets(lines, secrets)).toEqual([]);
  });

  it('a queue handler with its own RabbitMQ user at debug level: neither password in any line, nor when RabbitMQ refuses a wrong one', async () => {
    const queue = uniqueQueue('conveyor.test.sec-queue');
    queues.push(queue, `${queue}.dlq`);
    const env = { ...saslEnv('SCRAM-SHA-512', SASL_PASSWORD), LOG_LEVEL: 'debug' };
    const runner = fx.track(await startRunner({ queue, env: { ...env, AMQP_URL: rabbitUser.url } }));
    const mq = await openChannel();
    try {
      for (let seq = 0; seq < 5; seq++) mq.channel.sendToQueue(queue, Buffer.from(JSON.stringify({ seq })), { persistent: true });
      await mq.channel.waitForConfirms();
    } finally {
      await mq.close();
    }
    await waitFor('5 queue messages handled', () => readRecords(runner.recordFile).filter((r) => r.ok).length >= 5, 20_000);
    await runner.stop();

    const wrongUrl = new URL(rabbitUser.url);
    wrongUrl.password = uniqueSecret('wrong-rabbit');
    secrets.push(wrongUrl.password);
    const refused = fx.track(spawnRunner({ ...env, AMQP_URL: wrongUrl.toString(), TEST_QUEUE: queue }));
    await refused.waitForLog(/^RabbitMQ refused the login/, 15_000);
    await refused.stop('SIGKILL');

    for (const r of [runner, refused]) expect(linesWithSecrets(outputLines(r), secrets)).toEqual([]);
    // the user name is no secret and stays, so a reader can tell which login was refused
    expect(outputLines(refused).some((l) => l.includes(`${rabbitUser.name}:***@`))).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { kafkaClientOptions, securityProperties } from '../../src/kafka/client.ts';
import {
  classifyConnectError,
  classifyDriverMessage,
  isUnreachableError,
  KafkaSecurityFailure,
  KafkaUnreachable,
  SecurityFailureWatch,
} from '../../src/kafka/security-failures.ts';
import { connectFailureHint } from '../../src/rabbitmq/connection.ts';

const config = (env: Record<string, string>) => loadConfig({ env });

describe('securityProperties: the configuration in librdkafka’s names', () => {
  it('sets nothing for plaintext', () => {
    expect(securityProperties(config({}))).toEqual({});
  });

  it('gives SASL mechanism, user and password for sasl_plaintext, and no TLS files', () => {
    const c = config({
      KAFKA_SECURITY_PROTOCOL: 'sasl_plaintext', KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256', KAFKA_SASL_USERNAME: 'app', KAFKA_SASL_PASSWORD: 's3cret',
      KAFKA_SSL_CA_LOCATION: '/ca.pem',
    });
    expect(securityProperties(c)).toEqual({ 'security.protocol': 'sasl_plaintext', 'sasl.mechanisms': 'SCRAM-SHA-256', 'sasl.username': 'app', 'sasl.password': 's3cret' });
  });

  it('gives the TLS files that are set for ssl, and SASL too for sasl_ssl', () => {
    const tls = { KAFKA_SSL_CA_LOCATION: '/ca.pem', KAFKA_SSL_CERTIFICATE_LOCATION: '/client.pem', KAFKA_SSL_KEY_LOCATION: '/client.key', KAFKA_SSL_KEY_PASSWORD: 'k3y' };
    expect(securityProperties(config({ KAFKA_SECURITY_PROTOCOL: 'ssl', KAFKA_SSL_CA_LOCATION: '/ca.pem' }))).toEqual({ 'security.protocol': 'ssl', 'ssl.ca.location': '/ca.pem' });
    expect(securityProperties(config({ KAFKA_SECURITY_PROTOCOL: 'sasl_ssl', KAFKA_SASL_MECHANISM: 'PLAIN', KAFKA_SASL_USERNAME: 'app', KAFKA_SASL_PASSWORD: 'p', ...tls }))).toEqual({
      'security.protocol': 'sasl_ssl', 'sasl.mechanisms': 'PLAIN', 'sasl.username': 'app', 'sasl.password': 'p',
      'ssl.ca.location': '/ca.pem', 'ssl.certificate.location': '/client.pem', 'ssl.key.location': '/client.key', 'ssl.key.password': 'k3y',
    });
  });

  it('is what every client made from the configuration carries', () => {
    const c = config({ KAFKA_BOOTSTRAP_SERVERS: 'k1:9094, k2:9094', KAFKA_SECURITY_PROTOCOL: 'ssl' });
    expect(kafkaClientOptions(c, 'app')).toEqual({ brokers: ['k1:9094', 'k2:9094'], clientId: 'app', security: { 'security.protocol': 'ssl' } });
  });
});

describe('classifyDriverMessage: what librdkafka’s log lines say about security', () => {
  it.each([
    [
      '[thrd:sasl_plaintext://127.0.0.1:9094/bootstrap]: sasl_plaintext://127.0.0.1:9094/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 311ms in state AUTH_REQ)',
      { kind: 'authentication', detail: 'Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512' },
    ],
    [
      'sasl_plaintext://k:9094/bootstrap: SASL authentication error: Authentication failed: Invalid username or password (after 301ms in state AUTH_REQ, 1 identical error(s) suppressed)',
      { kind: 'authentication', detail: 'Authentication failed: Invalid username or password' },
    ],
    [
      'ssl://localhost:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified (after 4ms in state SSL_HANDSHAKE)',
      { kind: 'tls', detail: 'error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified' },
    ],
  ])('%s', (message, expected) => {
    expect(classifyDriverMessage(message)).toEqual(expected);
  });

  it.each(['Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)', 'all broker connections are down', 'Consumer connected'])(
    'ignores %j: an outage or news, not a refusal',
    (message) => {
      expect(classifyDriverMessage(message)).toBeUndefined();
    },
  );

  it('recognises the bare error connect() ends with after its timeout', () => {
    expect(classifyConnectError(Object.assign(new Error('authentication failure'), { code: -1 }))?.kind).toBe('authentication');
    expect(classifyConnectError(Object.assign(new Error('x'), { code: -169 }))?.kind).toBe('authentication');
    expect(classifyConnectError(Object.assign(new Error('broker transport failure'), { code: -195 }))).toBeUndefined();
  });
});

describe('KafkaSecurityFailure', () => {
  const target = { brokers: 'k:9094', securityProtocol: 'sasl_ssl', saslMechanism: 'SCRAM-SHA-512', saslUsername: 'app' };

  it('a refused login: events.broker.auth_failed, not retriable, naming brokers, user, mechanism and what to check', () => {
    const failure = new KafkaSecurityFailure({ kind: 'authentication', detail: 'Invalid username or password' }, target);
    expect(failure).toMatchObject({ code: 'events.broker.auth_failed', retriable: false, kind: 'authentication', errorClass: 'RuntimeFailure' });
    expect(failure.message).toBe(
      'Kafka at k:9094 rejected the login: SASL authentication failed for user "app" with mechanism SCRAM-SHA-512 (Invalid username or password). ' +
        'Check kafka.saslUsername, kafka.saslPassword and kafka.saslMechanism (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SASL_MECHANISM): ' +
        'the broker must know that user for that mechanism. Not retried: a wrong password does not fix itself.',
    );
  });

  it('a failed TLS handshake: events.broker.tls_failed, pointing at the CA setting', () => {
    const failure = new KafkaSecurityFailure({ kind: 'tls', detail: 'certificate verify failed' }, { brokers: 'k:9093', securityProtocol: 'ssl' });
    expect(failure).toMatchObject({ code: 'events.broker.tls_failed', retriable: false });
    expect(failure.message).toContain('TLS handshake with Kafka at k:9093 failed (certificate verify failed)');
    expect(failure.message).toContain('KAFKA_SSL_CA_LOCATION');
  });
});

describe('SecurityFailureWatch', () => {
  const target = { brokers: 'k:9094', securityProtocol: 'sasl_plaintext', saslMechanism: 'PLAIN', saslUsername: 'app' };
  const refusal = 'k:9094/bootstrap: SASL authentication error: Authentication failed: Invalid username or password (after 3ms in state AUTH_REQ)';

  /** A client whose connect() settles only when the test says so, like librdkafka's 30 s wait. */
  function slowClient() {
    let settle!: { resolve: () => void; reject: (err: Error) => void };
    let calls = 0;
    const client = {
      connect: () => {
        calls += 1;
        return new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
      },
    };
    return { client, settle: () => settle, calls: () => calls };
  }

  it('fails a pending connect() at the first refusal, and every later connect() at once without trying again', async () => {
    const watch = new SecurityFailureWatch(target);
    const slow = slowClient();
    const client = watch.guard(slow.client);
    const connecting = client.connect();
    watch.observe('Connect to ipv4#10.0.0.1:9094 failed: Connection refused');
    watch.observe(refusal);
    await expect(connecting).rejects.toMatchObject({ code: 'events.broker.auth_failed' });
    slow.settle().reject(new Error('authentication failure')); // the driver's own outcome, later: ignored
    await expect(client.connect()).rejects.toBeInstanceOf(KafkaSecurityFailure);
    expect(slow.calls()).toBe(1);
  });

  it('leaves a connect() that succeeds alone, and ignores refusals when nothing is connecting', async () => {
    const watch = new SecurityFailureWatch(target);
    watch.observe(refusal);
    const slow = slowClient();
    const client = watch.guard(slow.client);
    const connecting = client.connect();
    slow.settle().resolve();
    await expect(connecting).resolves.toBeUndefined();
    watch.observe(refusal);
    const again = client.connect();
    slow.settle().resolve();
    await expect(again).resolves.toBeUndefined();
    expect(slow.calls()).toBe(2);
  });

  it('turns the driver’s own late "authentication failure" into the same failure when no log line came first', async () => {
    const watch = new SecurityFailureWatch(target);
    const slow = slowClient();
    const connecting = watch.guard(slow.client).connect();
    slow.settle().reject(Object.assign(new Error('authentication failure'), { code: -169 }));
    await expect(connecting).rejects.toMatchObject({ code: 'events.broker.auth_failed' });
  });

  it('passes any other connect() failure on as it is', async () => {
    const watch = new SecurityFailureWatch(target);
    const slow = slowClient();
    const connecting = watch.guard(slow.client).connect();
    const other = Object.assign(new Error('Invalid argument'), { code: -186 });
    slow.settle().reject(other);
    await expect(connecting).rejects.toBe(other);
  });

  it('no broker answered: events.broker.unavailable naming the addresses, the setting, the last attempt and what to check', async () => {
    const watch = new SecurityFailureWatch({ brokers: 'kafka-0:9092,kafka-1:9092', securityProtocol: 'plaintext' });
    const slow = slowClient();
    const connecting = watch.guard(slow.client).connect();
    watch.observe('[thrd:kafka-1:9092/bootstrap]: kafka-1:9092/bootstrap: Connect to ipv4#10.0.0.7:9092 failed: Connection refused (after 0ms in state CONNECT, 3 identical error(s) suppressed)');
    slow.settle().reject(Object.assign(new Error('broker transport failure'), { code: -1 }));
    const failure = await connecting.catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(KafkaUnreachable);
    expect(failure).toMatchObject({ code: 'events.broker.unavailable', retriable: true });
    expect((failure as Error).message).toBe(
      'cannot connect to Kafka: no broker at kafka-0:9092,kafka-1:9092 answered within 30 s (broker transport failure; last attempt: ' +
        'Connect to ipv4#10.0.0.7:9092 failed: Connection refused). Check kafka.bootstrapServers (KAFKA_BOOTSTRAP_SERVERS): each host:port must be ' +
        "a broker's listener reachable from here (host name, port, firewall, the brokers' advertised listeners), and that the brokers are up; " +
        'kafka.securityProtocol (KAFKA_SECURITY_PROTOCOL, now plaintext) must match that listener.',
    );
  });

  it('tells no-broker failures by librdkafka code or text', () => {
    for (const code of [-195, -185, -187]) expect(isUnreachableError({ code, message: 'x' }), String(code)).toBe(true);
    for (const message of ['broker transport failure', 'Local: Broker transport failure', 'all broker connections are down', 'Local: Timed out']) {
      expect(isUnreachableError(new Error(message)), message).toBe(true);
    }
    for (const err of [new Error('Invalid argument'), { code: -169, message: 'authentication failure' }, null, 'text']) expect(isUnreachableError(err)).toBe(false);
  });
});

describe('connectFailureHint: RabbitMQ refusals that are not outages', () => {
  it('names the login for ACCESS_REFUSED', () => {
    expect(connectFailureHint('Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused"')).toMatch(/^RabbitMQ refused the login: check the user and password in rabbitmq.url \(AMQP_URL\)/);
  });

  it('names rabbitmq.caFile for an untrusted certificate', () => {
    expect(connectFailureHint('self-signed certificate in certificate chain')).toMatch(/^the TLS handshake with RabbitMQ failed: check that rabbitmq.caFile \(RABBITMQ_CA_FILE\)/);
  });

  it('says nothing for an outage', () => {
    expect(connectFailureHint('connect ECONNREFUSED 127.0.0.1:5672')).toBeUndefined();
  });
});

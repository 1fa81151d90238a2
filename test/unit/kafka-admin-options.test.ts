/** The admin port's pure parts: configuration → @platformatic/kafka options, and what a platformatic error means. */
import { AuthenticationError, MultipleErrors, NetworkError, ProtocolError, TimeoutError, UserError } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { brokerErrorNames, classifyAdminError, describeAdminError, platformaticOptions, refusalDetail, RETRY_DELAY_MS } from '../../src/kafka/admin-options.ts';
import { kafkaAdminOptions } from '../../src/kafka/admin.ts';
import { securityProperties } from '../../src/kafka/client.ts';

const files: Record<string, string> = { '/ca.pem': 'CA', '/client.pem': 'CERT', '/client.key': 'KEY' };
const readFile = (path: string): Buffer => {
  const content = files[path];
  if (content === undefined) throw new Error(`no such file ${path}`);
  return Buffer.from(content);
};
const optionsFor = (env: Record<string, string>, timeoutMs = 30_000) =>
  platformaticOptions(['127.0.0.1:9092', ' 127.0.0.2:9092 '], 'app-cli', securityProperties(loadConfig({ env })), timeoutMs, readFile);

describe('platformaticOptions: the configuration as @platformatic/kafka options', () => {
  it('plaintext: brokers, client id, no TLS, no SASL, never auto-creating topics', () => {
    const o = optionsFor({});
    expect(o).toMatchObject({ clientId: 'app-cli', bootstrapBrokers: ['127.0.0.1:9092', '127.0.0.2:9092'], autocreateTopics: false });
    expect(o.tls).toBeUndefined();
    expect(o.sasl).toBeUndefined();
  });

  it('bounds every attempt by the timeout, and the retries fit in it', () => {
    const o = optionsFor({}, 2_000);
    expect(o.requestTimeout).toBe(2_000);
    expect(o.timeout).toBe(2_000);
    expect(o.connectTimeout).toBe(2_000);
    expect(o.retries * o.retryDelay).toBeLessThanOrEqual(2_000);
    expect(o.retryDelay).toBe(RETRY_DELAY_MS);
    // a long timeout does not make one connect attempt wait for it all
    expect(optionsFor({}, 60_000).connectTimeout).toBe(10_000);
    expect(optionsFor({}, 100).retries).toBe(1);
  });

  it('sasl_plaintext: mechanism, user and password, no TLS', () => {
    const o = optionsFor({ KAFKA_SECURITY_PROTOCOL: 'sasl_plaintext', KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: 'app', KAFKA_SASL_PASSWORD: 's3cret' });
    expect(o.sasl).toEqual({ mechanism: 'SCRAM-SHA-512', username: 'app', password: 's3cret' });
    expect(o.tls).toBeUndefined();
  });

  it('ssl: the CA, certificate and key files read, the key password, and the host name checked', () => {
    const o = optionsFor({
      KAFKA_SECURITY_PROTOCOL: 'ssl',
      KAFKA_SSL_CA_LOCATION: '/ca.pem',
      KAFKA_SSL_CERTIFICATE_LOCATION: '/client.pem',
      KAFKA_SSL_KEY_LOCATION: '/client.key',
      KAFKA_SSL_KEY_PASSWORD: 'k3y',
    });
    expect(o.tls).toEqual({ ca: Buffer.from('CA'), cert: Buffer.from('CERT'), key: Buffer.from('KEY'), passphrase: 'k3y' });
    expect(o.tlsServerName).toBe(true);
    expect(o.sasl).toBeUndefined();
    // TLS with the system's CAs when no file is named
    expect(optionsFor({ KAFKA_SECURITY_PROTOCOL: 'ssl' }).tls).toEqual({});
  });

  it('sasl_ssl: both', () => {
    const o = optionsFor({ KAFKA_SECURITY_PROTOCOL: 'sasl_ssl', KAFKA_SASL_MECHANISM: 'PLAIN', KAFKA_SASL_USERNAME: 'app', KAFKA_SASL_PASSWORD: 'p', KAFKA_SSL_CA_LOCATION: '/ca.pem' });
    expect(o.sasl).toEqual({ mechanism: 'PLAIN', username: 'app', password: 'p' });
    expect(o.tls).toEqual({ ca: Buffer.from('CA') });
  });

  it('refuses a SASL mechanism the client lacks, naming it', () => {
    expect(() => platformaticOptions(['b:9092'], 'c', { 'security.protocol': 'sasl_plaintext', 'sasl.mechanisms': 'GSSAPI' }, 1000, readFile)).toThrow(/GSSAPI/);
  });

  it('kafkaAdminOptions: the configured brokers, security and kafka.timeoutSeconds', () => {
    const config = loadConfig({ env: { KAFKA_BOOTSTRAP_SERVERS: 'a:1, b:2', KAFKA_TIMEOUT_SECONDS: '7' } });
    expect(kafkaAdminOptions(config, 'x')).toEqual({ brokers: ['a:1', 'b:2'], clientId: 'x', security: {}, timeoutMs: 7000 });
    expect(kafkaAdminOptions(config, 'x', 5000).timeoutMs).toBe(5000);
  });
});

describe('classifyAdminError: what a failed request means', () => {
  it('no broker answered: network errors and timeouts, also after retries', () => {
    expect(classifyAdminError(new NetworkError('Connection to 127.0.0.1:1 failed.'))).toBe('unreachable');
    expect(classifyAdminError(new TimeoutError('Request timed out.'))).toBe('unreachable');
    expect(classifyAdminError(new MultipleErrors('metadata failed 4 times.', [new NetworkError('a'), new NetworkError('b')]))).toBe('unreachable');
    expect(classifyAdminError(new Error('no answer within 1000 ms'))).toBe('unreachable');
  });

  it('a broker answered with an error: protocol errors anywhere in the chain, an unknown topic', () => {
    expect(classifyAdminError(new ProtocolError('NOT_COORDINATOR'))).toBe('answered');
    expect(classifyAdminError(new MultipleErrors('Listing consumer group offsets failed.', [new NetworkError('lost'), new ProtocolError('GROUP_AUTHORIZATION_FAILED')]))).toBe('answered');
    expect(classifyAdminError(new UserError('Unknown topic some.topic.'))).toBe('answered');
  });

  it('a refused login or a failed TLS handshake', () => {
    expect(classifyAdminError(new MultipleErrors('metadata failed', [new NetworkError('x', { cause: new AuthenticationError('SASL authentication failed.') })]))).toBe('authentication');
    expect(classifyAdminError(new NetworkError('Connection failed.', { cause: Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }) }))).toBe('tls');
    expect(classifyAdminError(new UserError('TLS handshake failed. Please verify the broker supports TLS.'))).toBe('tls');
  });

  it('takes the broker\'s reason for a refused login, the client\'s words for a failed handshake', () => {
    const login = new MultipleErrors('metadata failed', [
      new NetworkError('Connection failed.', { cause: new AuthenticationError('SASL authentication failed.', { cause: new ProtocolError('SASL_AUTHENTICATION_FAILED', 'Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256') }) }),
    ]);
    expect(refusalDetail(login)).toBe('Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256');
    const tls = new NetworkError('Connection failed.', { cause: Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }) });
    expect(refusalDetail(tls)).toBe('self-signed certificate');
  });

  it('names the broker errors of the chain, an unknown topic included', () => {
    const refused = new MultipleErrors('Altering consumer group offsets failed.', [new ProtocolError('UNKNOWN_MEMBER_ID')]);
    expect(brokerErrorNames(refused)).toEqual(new Set(['UNKNOWN_MEMBER_ID']));
    expect(brokerErrorNames(new UserError('Unknown topic t.'))).toEqual(new Set(['UNKNOWN_TOPIC_OR_PARTITION']));
    expect(brokerErrorNames(new NetworkError('x'))).toEqual(new Set());
  });

  it('describes an aggregate by its distinct messages', () => {
    const e = new MultipleErrors('metadata failed 2 times.', [new NetworkError('Connection to b:1 failed.'), new NetworkError('Connection to b:1 failed.')]);
    expect(describeAdminError(e)).toBe('metadata failed 2 times.: Connection to b:1 failed.');
  });
});

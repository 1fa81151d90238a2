/**
 * A wrong SASL password or an untrusted TLS certificate is not an outage: no retry fixes it. librdkafka, though,
 * treats it like one: the client's connect() keeps trying for 30 s and then fails with a bare "authentication
 * failure" or "broker transport failure". What it does say at once is a log line per attempt ("SASL
 * authentication error: …", "SSL handshake failed: …"). SecurityFailureWatch reads those lines and fails the
 * pending connect() of every client of that Kafka instance right away with a KafkaSecurityFailure that names
 * the mechanism, the user and what to check; a client whose connect failed so fails every later connect() alike.
 */
import { BrokerFailure } from '../failure/errors.ts';
import { redactSecrets } from '../ops/redact.ts';

export type SecurityFailureKind = 'authentication' | 'tls';

export interface DriverSecurityFailure {
  readonly kind: SecurityFailureKind;
  /** The driver's own words, without its thread and broker prefix and its timing suffix. */
  readonly detail: string;
}

const SASL_FAILURE = /SASL (?:authentication error|handshake failed|authentication failed)[:\s]+(.*)$|(Unsupported SASL mechanism.*)$/i;
const TLS_FAILURE = /(?:SSL|TLS) handshake failed[:\s]+(.*)$/i;
const TIMING_SUFFIX = /\s*\(after \d+ms in state [A-Z_]+(?:, \d+ identical error\(s\) suppressed)?\)\s*$/;

/** What a driver log or error line says about security, if anything: a rejected login or a failed TLS handshake. */
export function classifyDriverMessage(message: string): DriverSecurityFailure | undefined {
  const sasl = SASL_FAILURE.exec(message);
  if (sasl) return { kind: 'authentication', detail: tidy(sasl[1] ?? sasl[2] ?? '') };
  const tls = TLS_FAILURE.exec(message);
  if (tls) return { kind: 'tls', detail: tidy(tls[1] ?? '') };
  return undefined;
}

/** The connect() error librdkafka ends with after its 30 s, when no log line was seen (logging off). */
export function classifyConnectError(err: unknown): DriverSecurityFailure | undefined {
  const e = err as { name?: unknown; message?: unknown; code?: unknown } | null;
  if (typeof e !== 'object' || e === null) return undefined;
  const message = typeof e.message === 'string' ? e.message : '';
  // -169 is librdkafka's ERR__AUTHENTICATION; the KafkaJS layer names it KafkaJSSASLAuthenticationError
  if (e.name === 'KafkaJSSASLAuthenticationError' || e.code === -169 || /^authentication failure$/i.test(message)) {
    return { kind: 'authentication', detail: tidy(message) };
  }
  return classifyDriverMessage(message);
}

function tidy(detail: string): string {
  return redactSecrets(detail.replace(TIMING_SUFFIX, '').trim());
}

/** Where and how a client connects, for the message: only what may be shown (never the password). */
export interface SecurityTarget {
  readonly brokers: string;
  readonly securityProtocol: string;
  readonly saslMechanism?: string;
  readonly saslUsername?: string;
}

/**
 * `events.broker.auth_failed` (SASL) or `events.broker.tls_failed` (TLS): the broker refused this client.
 * A BrokerFailure, so publishers pass it on as it is, but not retriable: credentials do not fix themselves.
 */
export class KafkaSecurityFailure extends BrokerFailure {
  override readonly retriable: boolean = false;
  readonly kind: SecurityFailureKind;

  constructor(failure: DriverSecurityFailure, target: SecurityTarget) {
    super(securityFailureMessage(failure, target), { code: failure.kind === 'authentication' ? 'events.broker.auth_failed' : 'events.broker.tls_failed' });
    this.kind = failure.kind;
  }
}

export function securityFailureMessage(failure: DriverSecurityFailure, target: SecurityTarget): string {
  const because = failure.detail ? ` (${failure.detail})` : '';
  if (failure.kind === 'authentication') {
    const who = target.saslUsername ? `user "${target.saslUsername}"` : 'no user name';
    return (
      `Kafka at ${target.brokers} rejected the login: SASL authentication failed for ${who} with mechanism ${target.saslMechanism ?? 'unknown'}${because}. ` +
      'Check kafka.saslUsername, kafka.saslPassword and kafka.saslMechanism (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SASL_MECHANISM): ' +
      'the broker must know that user for that mechanism. Not retried: a wrong password does not fix itself.'
    );
  }
  return (
    `TLS handshake with Kafka at ${target.brokers} failed${because}. ` +
    `Check kafka.sslCaLocation (KAFKA_SSL_CA_LOCATION): it must name the CA that signed the brokers' certificates, and ${target.brokers} must be a TLS listener ` +
    `(kafka.securityProtocol is ${target.securityProtocol}). Not retried.`
  );
}

interface Connectable {
  connect(): Promise<void>;
}

/** One per Kafka instance: its clients share the brokers and credentials, so one refusal fails them all. */
export class SecurityFailureWatch {
  private readonly pending = new Set<(failure: KafkaSecurityFailure) => void>();
  private readonly target: SecurityTarget;

  constructor(target: SecurityTarget) {
    this.target = target;
  }

  /** Feed every driver log line here (warn and error are enough: security failures are errors). */
  observe(message: string): void {
    if (this.pending.size === 0) return;
    const failure = classifyDriverMessage(message);
    if (!failure) return;
    const error = new KafkaSecurityFailure(failure, this.target);
    for (const fail of [...this.pending]) fail(error);
  }

  /** The client, its connect() failing as soon as a security failure is seen, and at once after one. */
  guard<T extends Connectable>(client: T): T {
    const connect = client.connect.bind(client);
    let refused: KafkaSecurityFailure | undefined;
    client.connect = async () => {
      if (refused) throw refused;
      try {
        await this.race(connect());
      } catch (err) {
        if (err instanceof KafkaSecurityFailure) refused = err;
        throw err;
      }
    };
    return client;
  }

  private race(connecting: Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const fail = (failure: KafkaSecurityFailure): void => {
        this.pending.delete(fail);
        reject(failure);
      };
      this.pending.add(fail);
      // the driver's own connect goes on after a failure; its outcome is then ignored (and never unhandled)
      connecting.then(
        () => {
          this.pending.delete(fail);
          resolve();
        },
        (err: unknown) => {
          this.pending.delete(fail);
          const failure = classifyConnectError(err);
          reject(failure ? new KafkaSecurityFailure(failure, this.target) : err);
        },
      );
    });
  }
}

/**
 * A wrong SASL password or an untrusted TLS certificate is not an outage: no retry fixes it. librdkafka, though,
 * treats it like one: the client's connect() keeps trying for 30 s and then fails with a bare "authentication
 * failure" or "broker transport failure". What it does say at once is a log line per attempt ("SASL
 * authentication error: …", "SSL handshake failed: …"). SecurityFailureWatch reads those lines and fails the
 * pending connect() of every client of that Kafka instance right away with a KafkaSecurityFailure that names
 * the mechanism, the user and what to check; a client whose connect failed so fails every later connect() alike.
 * A connect that ends because no broker answered fails with KafkaUnreachable, naming the addresses and the setting.
 */
import { BrokerFailure } from '../failure/errors.ts';
import { redactSecrets } from '../ops/redact.ts';
import { CONNECT_METADATA_TIMEOUT_MS, withConnectScope } from './bounded-connect.ts';

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

/** librdkafka's codes for "no broker answered": ERR__TRANSPORT, ERR__TIMED_OUT, ERR__ALL_BROKERS_DOWN. */
const UNREACHABLE_CODES: ReadonlySet<unknown> = new Set([-195, -185, -187]);
const UNREACHABLE_TEXT = /broker transport failure|all broker connections are down|timed out/i;
/** A driver line about one failed attempt: `Connect to ipv4#127.0.0.1:9 failed: Connection refused`, `Failed to resolve 'kafka:9092': …`. */
const ATTEMPT_FAILURE = /(Connect to \S+ failed: .*|Failed to resolve .*)$/;

/** Whether a connect() failed because no broker answered (rather than refusing it). */
export function isUnreachableError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (typeof e !== 'object' || e === null) return false;
  return UNREACHABLE_CODES.has(e.code) || (typeof e.message === 'string' && UNREACHABLE_TEXT.test(e.message));
}

/**
 * `events.broker.unavailable` at connect: no broker at the configured addresses answered within the driver's wait.
 * Says which addresses were tried, with which setting, what the driver saw of the last attempt, and what to check,
 * as `conveyor lag` does; instead of the driver's bare "broker transport failure".
 */
export class KafkaUnreachable extends BrokerFailure {
  constructor(target: SecurityTarget, reason: string, lastAttempt: string | undefined) {
    const seen = lastAttempt ? `; last attempt: ${lastAttempt}` : '';
    super(
      `cannot connect to Kafka: no broker at ${target.brokers} answered within ${CONNECT_METADATA_TIMEOUT_MS / 1000} s (${reason}${seen}). ` +
        `Check kafka.bootstrapServers (KAFKA_BOOTSTRAP_SERVERS): each host:port must be a broker's listener reachable from here ` +
        `(host name, port, firewall, the brokers' advertised listeners), and that the brokers are up; kafka.securityProtocol ` +
        `(KAFKA_SECURITY_PROTOCOL, now ${target.securityProtocol}) must match that listener.`,
    );
  }
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
  disconnect?(): Promise<void>;
}

/** One per Kafka instance: its clients share the brokers and credentials, so one refusal fails them all. */
export class SecurityFailureWatch {
  private readonly pending = new Set<(failure: KafkaSecurityFailure) => void>();
  private readonly target: SecurityTarget;
  /** When the last refusal was seen (Date.now()): connects begun before it give up their native wait too. */
  private refusedAt = Number.NEGATIVE_INFINITY;
  /** The driver's words about its last failed attempt to reach a broker, for a connect that ends unreachable. */
  private lastAttempt: string | undefined;

  constructor(target: SecurityTarget) {
    this.target = target;
  }

  /** Feed every driver log line here (warn and error are enough: security failures are errors). */
  observe(message: string): void {
    if (this.pending.size === 0) return;
    const attempt = ATTEMPT_FAILURE.exec(message);
    if (attempt) this.lastAttempt = tidy(attempt[1] ?? '');
    const failure = classifyDriverMessage(message);
    if (!failure) return;
    this.refusedAt = Date.now();
    const error = new KafkaSecurityFailure(failure, this.target);
    for (const fail of [...this.pending]) fail(error);
  }

  /**
   * The client, its connect() failing as soon as a security failure is seen, and at once after one. Its native
   * connect stops waiting for the brokers (bounded-connect.ts) once refused or disconnected, so that the driver's
   * thread is free and the process can exit within a second, not after the driver's 30 s.
   */
  guard<T extends Connectable>(client: T): T {
    const connect = client.connect.bind(client);
    let refused: KafkaSecurityFailure | undefined;
    let disconnecting = false;
    const disconnect = client.disconnect?.bind(client);
    if (disconnect) {
      client.disconnect = () => {
        disconnecting = true;
        return disconnect();
      };
    }
    client.connect = async () => {
      if (refused) throw refused;
      const startedAt = Date.now();
      const scope = { abandoned: () => disconnecting || this.refusedAt >= startedAt };
      try {
        await this.race(withConnectScope(scope, connect));
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
          if (failure) reject(new KafkaSecurityFailure(failure, this.target));
          else if (isUnreachableError(err)) reject(new KafkaUnreachable(this.target, (err as Error).message, this.lastAttempt));
          else reject(err);
        },
      );
    });
  }
}

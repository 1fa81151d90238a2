/**
 * One managed RabbitMQ connection (amqp-connection-manager over amqplib): it reconnects by itself and re-runs
 * each channel's setup (queues, bindings, consumers) after a reconnect. amqp-connection-manager waits a fixed
 * `reconnectTimeInSeconds` between attempts; this module moves that value along seed 000's schedule
 * (100 ms, 1 s, 10 s, then every 30 s) before each wait, and back to the start once connected.
 */
import { readFileSync } from 'node:fs';
import amqp, { type AmqpConnectionManager } from 'amqp-connection-manager';
import { ConfigError } from '../failure/errors.ts';
import type { Logger } from '../ops/logger.ts';
import { redactUrl } from '../ops/redact.ts';

/** Seconds to wait before reconnect attempt n (0, 1, ...): seed 000's 100 ms → 1 s → 10 s → 30 s max. */
export const RECONNECT_STEPS_SECONDS = [0.1, 1, 10, 30] as const;

export function reconnectDelaySeconds(attempt: number): number {
  return RECONNECT_STEPS_SECONDS[Math.min(Math.max(0, attempt), RECONNECT_STEPS_SECONDS.length - 1)]!;
}

export interface AmqpConnectionOptions {
  readonly url: string;
  readonly heartbeatSeconds: number;
  /** Shown to the broker (management UI) and in logs. */
  readonly name: string;
  readonly logger: Logger;
  /** PEM file of the CA that signed the broker's certificate (amqps://, `rabbitmq.caFile`); absent or empty: the system's CAs. */
  readonly caFile?: string;
}

/**
 * What a failed connection attempt most likely needs from the operator, when it is not an outage: a refused
 * login (wrong user or password) or a certificate this client does not trust. Undefined for anything else.
 */
export function connectFailureHint(message: string): string | undefined {
  if (/ACCESS[-_]REFUSED|\b403\b/.test(message)) {
    return 'RabbitMQ refused the login: check the user and password in rabbitmq.url (AMQP_URL) and the user\'s permissions on the vhost';
  }
  if (/certificate|self[- ]signed|CERT_|unable to verify|wrong version number|SSL routines|handshake failure/i.test(message)) {
    return "the TLS handshake with RabbitMQ failed: check that rabbitmq.caFile (RABBITMQ_CA_FILE) names the CA that signed RabbitMQ's certificate, and that the URL's port is an amqps listener";
  }
  return undefined;
}

/** The CA certificate for amqps://, read once; an unreadable file is a configuration error that names the key. */
function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError([`rabbitmq.caFile (RABBITMQ_CA_FILE): cannot read ${file}: ${(err as Error).message}`]);
  }
}

export type { AmqpConnectionManager };

export function connectAmqp(options: AmqpConnectionOptions): AmqpConnectionManager {
  const where = redactUrl(options.url);
  const log = options.logger.child({ rabbitmq: where, connection: options.name });
  const connection = amqp.connect([options.url], {
    heartbeatIntervalInSeconds: options.heartbeatSeconds,
    reconnectTimeInSeconds: reconnectDelaySeconds(0),
    // noDelay: without it Nagle's algorithm holds small frames (acks) back ~40 ms
    connectionOptions: {
      noDelay: true,
      clientProperties: { connection_name: options.name },
      // amqplib hands these to tls.connect for amqps:// (and ignores them for amqp://)
      ...(options.caFile ? { ca: [readCa(options.caFile)] } : {}),
    },
  });
  let failures = 0;
  let lastWarned = 0;
  // Both events fire right before the manager computes its wait: set the next step of the schedule.
  connection.on('connect', () => {
    if (failures > 0) log.info({ attempts: failures }, 'RabbitMQ connection re-established');
    else log.info('RabbitMQ connected');
    failures = 0;
    connection.reconnectTimeInSeconds = reconnectDelaySeconds(0);
  });
  connection.on('disconnect', ({ err }) => {
    log.warn({ err: err && { message: redactUrl(err.message) } }, 'RabbitMQ connection lost; reconnecting');
    connection.reconnectTimeInSeconds = reconnectDelaySeconds(0);
  });
  connection.on('connectFailed', ({ err }) => {
    failures += 1;
    connection.reconnectTimeInSeconds = reconnectDelaySeconds(failures);
    // one line per step change, then at most one a minute: an outage must not flood the log
    const now = Date.now();
    if (failures <= RECONNECT_STEPS_SECONDS.length || now - lastWarned >= 60_000) {
      lastWarned = now;
      const reason = redactUrl(err.message);
      const hint = connectFailureHint(reason);
      const fields = { attempt: failures, nextAttemptInSeconds: connection.reconnectTimeInSeconds, reason };
      // not an outage, so an error; still retried: users and certificates are often provisioned after the app
      if (hint) log.error(fields, `${hint}; retrying`);
      else log.warn(fields, 'RabbitMQ unreachable; retrying');
    }
  });
  connection.on('blocked', ({ reason }) => log.warn({ reason }, 'RabbitMQ blocked the connection (resource alarm); publishes fail until it is unblocked'));
  connection.on('unblocked', () => log.info('RabbitMQ unblocked the connection'));
  return connection;
}

/**
 * One managed RabbitMQ connection (amqp-connection-manager over amqplib): it reconnects by itself and re-runs
 * each channel's setup (queues, bindings, consumers) after a reconnect. amqp-connection-manager waits a fixed
 * `reconnectTimeInSeconds` between attempts; this module moves that value along seed 000's schedule
 * (100 ms, 1 s, 10 s, then every 30 s) before each wait, and back to the start once connected.
 */
import amqp, { type AmqpConnectionManager } from 'amqp-connection-manager';
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
}

export type { AmqpConnectionManager };

export function connectAmqp(options: AmqpConnectionOptions): AmqpConnectionManager {
  const where = redactUrl(options.url);
  const log = options.logger.child({ rabbitmq: where, connection: options.name });
  const connection = amqp.connect([options.url], {
    heartbeatIntervalInSeconds: options.heartbeatSeconds,
    reconnectTimeInSeconds: reconnectDelaySeconds(0),
    // noDelay: without it Nagle's algorithm holds small frames (acks) back ~40 ms
    connectionOptions: { noDelay: true, clientProperties: { connection_name: options.name } },
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
      log.warn({ attempt: failures, nextAttemptInSeconds: connection.reconnectTimeInSeconds, reason: redactUrl(err.message) }, 'RabbitMQ unreachable; retrying');
    }
  });
  connection.on('blocked', ({ reason }) => log.warn({ reason }, 'RabbitMQ blocked the connection (resource alarm); publishes fail until it is unblocked'));
  connection.on('unblocked', () => log.info('RabbitMQ unblocked the connection'));
  return connection;
}

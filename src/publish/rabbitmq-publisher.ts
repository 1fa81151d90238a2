/**
 * Publishing to RabbitMQ for applications (`createPublisher(config, { broker: 'rabbitmq' })`): persistent messages
 * on a confirm channel, resolved only once the broker confirmed every one; `mandatory`, so a message that no queue
 * receives is an error (`events.publish.unroutable`), not a silent loss. A publish is bounded by
 * `publish.timeoutMs`: when RabbitMQ cannot be reached it fails with `events.broker.unavailable` instead of waiting
 * or buffering. The circuit breaker Kafka publishing uses fails publishes at once after repeated broker failures.
 *
 * Messages go straight to an amqplib ConfirmChannel opened on the managed connection, never through
 * amqp-connection-manager's ChannelWrapper: the wrapper keeps publishes in memory while disconnected and sends them
 * after a reconnect, ignores basic.return, and stays without a channel after a channel error until the whole
 * connection reconnects. Here a publish is written to a live channel now, or it fails and nothing is kept.
 */
import { randomUUID } from 'node:crypto';
import type { ChannelModel, ConfirmChannel, Message, Options } from 'amqplib';
import type { ConveyorConfig } from '../config/schema.ts';
import { BrokerFailure, ConveyorError, type ErrorContext } from '../failure/errors.ts';
import { createLogger, type Logger } from '../ops/logger.ts';
import { redactUrl } from '../ops/redact.ts';
import { connectAmqp, type AmqpConnectionManager } from '../rabbitmq/connection.ts';
import { publishBreaker, type CircuitStateName, type PublishCircuitBreaker } from './circuit-breaker.ts';
import type { PublishedRecord, PublishMessage } from './kafka-publisher.ts';

/** What a RabbitMQ publish resolves with, one per message: `topic` is the exchange, `partition` always -1. */
export interface RabbitPublishedRecord extends PublishedRecord {
  readonly routingKey: string;
  /** The AMQP message-id Conveyor gave the message (a random UUID): consumers can deduplicate on it. */
  readonly messageId: string;
}

/**
 * RabbitMQ answered but will not store the message; sending it again as it is changes nothing (`retriable: false`).
 * `events.publish.unroutable`: no queue would receive it (nothing bound for its routing key, or the exchange does not
 * exist). `events.publish.refused`: the broker closed the channel over it (access refused, message too large...).
 */
export class PublishRefused extends ConveyorError {
  constructor(code: 'events.publish.unroutable' | 'events.publish.refused', message: string, options: { context?: ErrorContext; cause?: unknown } = {}) {
    super(code, message, { ...options, retriable: false });
  }
}

/** AMQP channel-level ("soft") errors: the broker closes the channel, not the connection, and answers the next one. */
const SOFT_ERRORS = new Set([403, 404, 405, 406]);

interface Pending {
  returned?: { readonly replyCode: number; readonly replyText: string };
}

interface OpenChannel {
  readonly channel: ConfirmChannel;
  readonly connection: ChannelModel;
  closed: boolean;
  /** Why the broker closed the channel (emitted before 'close'), with its AMQP reply code. */
  error: (Error & { code?: number }) | undefined;
  /** Unconfirmed messages by message-id, so a basic.return (sent before the ack) can mark its message. */
  readonly pending: Map<string, Pending>;
}

type Outcome =
  | { readonly kind: 'ok'; readonly record: RabbitPublishedRecord }
  | { readonly kind: 'returned'; readonly routingKey: string; readonly replyText: string }
  | { readonly kind: 'nacked' }
  | { readonly kind: 'closed'; readonly error: (Error & { code?: number }) | undefined };

function encode(value: unknown): { content: Buffer; contentType?: string } {
  if (value === null || value === undefined) return { content: Buffer.alloc(0) };
  if (Buffer.isBuffer(value)) return { content: value };
  if (typeof value === 'string') return { content: Buffer.from(value) };
  return { content: Buffer.from(JSON.stringify(value)), contentType: 'application/json' };
}

function routingKeyOf(key: PublishMessage['key']): string {
  if (key === null || key === undefined) return '';
  return Buffer.isBuffer(key) ? key.toString() : key;
}

const quoted = (keys: Iterable<string>): string => [...new Set(keys)].slice(0, 5).map((k) => `'${k}'`).join(', ');

export class RabbitPublisher {
  private readonly config: ConveyorConfig;
  private readonly logger: Logger | undefined;
  private readonly breaker: PublishCircuitBreaker;
  private readonly timeoutMs: number;
  /** The redacted URL, for messages and logs. */
  private readonly where: string;
  private readonly ownsConnection: boolean;
  private manager: AmqpConnectionManager | undefined;
  private current: OpenChannel | undefined;
  private opening: Promise<OpenChannel> | undefined;
  private blockedReason: string | undefined;
  private lastProblem: string | undefined;
  private closing: Promise<void> | undefined;
  private readonly detachers: Array<() => void> = [];

  constructor(config: ConveyorConfig, options: { readonly logger?: Logger; readonly connection?: AmqpConnectionManager } = {}) {
    this.config = config;
    this.logger = options.logger;
    this.timeoutMs = config.publish.timeoutMs;
    this.where = redactUrl(config.rabbitmq.url);
    this.ownsConnection = options.connection === undefined;
    if (options.connection) this.attach(options.connection);
    this.breaker = publishBreaker(config, `RabbitMQ at ${this.where}`, options.logger);
  }

  get circuitState(): CircuitStateName {
    return this.breaker.state;
  }

  /**
   * Publishes to `exchange` (`''`: the default exchange, where the key is the queue name) and resolves once RabbitMQ
   * confirmed every message; fails within `publish.timeoutMs` with events.broker.unavailable, or at once with
   * events.publish.unroutable when a message would reach no queue. A failed publish is never sent later.
   */
  async publish(exchange: string, messages: PublishMessage | readonly PublishMessage[]): Promise<RabbitPublishedRecord[]> {
    const list = Array.isArray(messages) ? (messages as readonly PublishMessage[]) : [messages as PublishMessage];
    if (this.closing) throw new ConveyorError('conveyor.publisher.closed', `publish to exchange '${exchange}': the publisher was closed`, { context: { topic: exchange } });
    if (list.length === 0) return [];
    // Only broker failures count for the breaker: an unroutable or refused message means RabbitMQ is up and answering.
    const outcome = await this.breaker.execute(async () => {
      try {
        return { records: await this.send(exchange, list) };
      } catch (err) {
        if (err instanceof PublishRefused) return { refused: err };
        if (err instanceof BrokerFailure) throw err;
        throw new BrokerFailure(
          `publish to exchange '${exchange}' on RabbitMQ at ${this.where} failed (${redactUrl((err as Error).message)}); nothing is buffered or sent again: retry (retryWithBackoff) or drop, as the message deserves`,
          { cause: err, context: { topic: exchange }, circuitState: this.breaker.state },
        );
      }
    });
    if ('refused' in outcome) throw outcome.refused;
    return outcome.records;
  }

  private async send(exchange: string, list: readonly PublishMessage[]): Promise<RabbitPublishedRecord[]> {
    const deadline = Date.now() + this.timeoutMs;
    const open = await this.channelBefore(exchange, deadline);
    if (this.blockedReason !== undefined) {
      throw new BrokerFailure(
        `RabbitMQ at ${this.where} blocks publishing (${this.blockedReason}: a resource alarm); nothing was sent, nothing is buffered`,
        { context: { topic: exchange }, circuitState: this.breaker.state },
      );
    }
    if (Date.now() >= deadline) throw this.unreachable(exchange);
    // Written synchronously, one after the other: nothing waits in between, so nothing can be sent late.
    const outcomes = list.map((m) => this.write(open, exchange, m));
    let timer: NodeJS.Timeout | undefined;
    const results = await Promise.race([
      Promise.all(outcomes),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new BrokerFailure(
                `publish to exchange '${exchange}': RabbitMQ at ${this.where} did not confirm ${list.length} message(s) within ${this.timeoutMs} ms. ` +
                  'Conveyor will not send them again (they may or may not have been stored): retry (retryWithBackoff) or drop, as the message deserves',
                { context: { topic: exchange }, circuitState: this.breaker.state },
              ),
            ),
          Math.max(0, deadline - Date.now()),
        );
      }),
    ]).finally(() => clearTimeout(timer));
    return this.settle(exchange, results);
  }

  /** Publishes one message on `open`; resolves (never rejects) with what the broker said about it. */
  private write(open: OpenChannel, exchange: string, message: PublishMessage): Promise<Outcome> {
    const messageId = randomUUID();
    const routingKey = routingKeyOf(message.key);
    const { content, contentType } = encode(message.value);
    const options: Options.Publish = {
      persistent: true,
      mandatory: true,
      messageId,
      timestamp: Math.floor(Date.now() / 1000), // AMQP timestamps are seconds
      appId: this.config.app.name,
      ...(contentType ? { contentType } : {}),
      ...(message.headers ? { headers: { ...message.headers } } : {}),
    };
    return new Promise<Outcome>((resolve) => {
      const entry: Pending = {};
      open.pending.set(messageId, entry);
      try {
        open.channel.publish(exchange, routingKey, content, options, (err: unknown) => {
          open.pending.delete(messageId);
          if (entry.returned) resolve({ kind: 'returned', routingKey, replyText: entry.returned.replyText });
          // amqplib calls back with 'message nacked' for a basic.nack, 'channel closed' when the channel went away
          else if (err) resolve({ kind: (err as Error).message === 'message nacked' ? 'nacked' : 'closed', error: open.error });
          else resolve({ kind: 'ok', record: { topic: exchange, partition: -1, routingKey, messageId } });
        });
      } catch {
        // the channel closed under us (IllegalOperationError): this message was not written
        open.pending.delete(messageId);
        resolve({ kind: 'closed', error: open.error });
      }
    });
  }

  private settle(exchange: string, results: readonly Outcome[]): RabbitPublishedRecord[] {
    const context = { topic: exchange };
    const closed = results.filter((r) => r.kind === 'closed');
    const channelError = closed.find((r) => r.error?.code !== undefined && SOFT_ERRORS.has(r.error.code))?.error;
    if (channelError) {
      const text = redactUrl(channelError.message);
      const otherExchange = /\bexchange '([^']*)'/.exec(channelError.message)?.[1];
      if (otherExchange === undefined || otherExchange === exchange) {
        if (channelError.code === 404) {
          throw new PublishRefused(
            'events.publish.unroutable',
            `publish to exchange '${exchange}': the exchange does not exist on RabbitMQ at ${this.where} (${text}). Nothing was stored: declare the exchange (and bind a queue to it) or fix its name`,
            { cause: channelError, context },
          );
        }
        throw new PublishRefused('events.publish.refused', `publish to exchange '${exchange}': RabbitMQ at ${this.where} refused it (${text}). Nothing was stored`, { cause: channelError, context });
      }
      // another publish on the shared channel (to another exchange) made the broker close it: ours is just collateral
    }
    const returned = results.filter((r) => r.kind === 'returned');
    if (returned.length > 0) {
      throw new PublishRefused(
        'events.publish.unroutable',
        `publish to exchange '${exchange}' with routing key ${quoted(returned.map((r) => r.routingKey))}: RabbitMQ returned ${returned.length} of ${results.length} message(s) ` +
          `as unroutable (${returned[0]!.replyText}): no queue is bound for that key, so nobody would receive them. ` +
          `Declare a queue and bind it to '${exchange}' with a matching key${exchange === '' ? ' (on the default exchange the key is the queue name)' : ''}.` +
          (returned.length < results.length ? ` The other ${results.length - returned.length} message(s) were stored.` : ' Nothing was stored.'),
        { context },
      );
    }
    if (closed.length > 0 || results.some((r) => r.kind === 'nacked')) {
      const nacked = results.filter((r) => r.kind === 'nacked').length;
      const why = nacked > 0
        ? `RabbitMQ refused ${nacked} message(s) (nack: a full queue with x-overflow reject-publish, or the broker could not store them)`
        : `the channel to RabbitMQ at ${this.where} closed before ${closed.length} message(s) were confirmed (${redactUrl(closed[0]?.kind === 'closed' && closed[0].error ? closed[0].error.message : this.lastProblem ?? 'connection lost')})`;
      throw new BrokerFailure(
        `publish to exchange '${exchange}': ${why}. Conveyor will not send them again (they may or may not have been stored): retry (retryWithBackoff) or drop, as the message deserves`,
        { context, circuitState: this.breaker.state },
      );
    }
    return results.map((r) => (r as Extract<Outcome, { kind: 'ok' }>).record);
  }

  /** The open confirm channel on the current connection; waits for a connection until `deadline`, no longer. */
  private async channelBefore(exchange: string, deadline: number): Promise<OpenChannel> {
    const manager = (this.manager ??= this.ownConnection());
    const connection = manager.connection ?? (await this.nextConnection(manager, exchange, deadline));
    const current = this.current;
    if (current && !current.closed && current.connection === connection) return current;
    const opening = (this.opening ??= this.openChannel(connection).finally(() => {
      this.opening = undefined;
    }));
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        opening,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(this.unreachable(exchange)), Math.max(0, deadline - Date.now()));
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private nextConnection(manager: AmqpConnectionManager, exchange: string, deadline: number): Promise<ChannelModel> {
    return new Promise<ChannelModel>((resolve, reject) => {
      const onConnect = ({ connection }: { connection: ChannelModel }): void => {
        clearTimeout(timer);
        resolve(connection);
      };
      const timer = setTimeout(() => {
        manager.removeListener('connect', onConnect);
        reject(this.unreachable(exchange));
      }, Math.max(0, deadline - Date.now()));
      manager.once('connect', onConnect);
    });
  }

  private async openChannel(connection: ChannelModel): Promise<OpenChannel> {
    const channel = await connection.createConfirmChannel();
    const open: OpenChannel = { channel, connection, closed: false, error: undefined, pending: new Map() };
    channel.on('error', (err: Error & { code?: number }) => {
      open.error = err;
      this.logger?.warn({ rabbitmq: this.where, err: { message: redactUrl(err.message), code: err.code } }, 'RabbitMQ closed the publish channel');
    });
    channel.on('close', () => {
      open.closed = true;
      if (this.current === open) this.current = undefined;
    });
    channel.on('return', (message: Message) => {
      const entry = open.pending.get(String(message.properties.messageId));
      const fields = message.fields as Message['fields'] & { replyCode?: number; replyText?: string };
      if (entry) entry.returned = { replyCode: fields.replyCode ?? 312, replyText: fields.replyText ?? 'NO_ROUTE' };
    });
    if (this.closing) {
      await channel.close().catch(() => {});
      throw new ConveyorError('conveyor.publisher.closed', 'the publisher was closed');
    }
    this.current = open;
    return open;
  }

  private unreachable(exchange: string): BrokerFailure {
    return new BrokerFailure(
      `publish to exchange '${exchange}': RabbitMQ at ${this.where} could not be reached within ${this.timeoutMs} ms` +
        `${this.lastProblem ? ` (${this.lastProblem})` : ''}; nothing was sent and nothing is buffered: retry (retryWithBackoff) or drop, as the message deserves`,
      { context: { topic: exchange }, circuitState: this.breaker.state },
    );
  }

  private ownConnection(): AmqpConnectionManager {
    const manager = connectAmqp({
      url: this.config.rabbitmq.url,
      heartbeatSeconds: this.config.rabbitmq.heartbeatSeconds,
      caFile: this.config.rabbitmq.caFile,
      name: `${this.config.app.name}-publisher`,
      logger: this.logger ?? createLogger('conveyor-publisher', 'silent'),
    });
    this.attach(manager);
    return manager;
  }

  /** Follows the connection: why it is down (for error messages) and whether the broker blocks publishing. */
  private attach(manager: AmqpConnectionManager): void {
    this.manager = manager;
    const on = (event: string, listener: (arg: { err?: Error; reason?: string }) => void): void => {
      manager.on(event, listener);
      this.detachers.push(() => manager.removeListener(event, listener));
    };
    on('connect', () => {
      this.lastProblem = undefined;
      this.blockedReason = undefined;
    });
    on('connectFailed', ({ err }) => {
      this.lastProblem = err ? redactUrl(err.message) : 'connection failed';
    });
    on('disconnect', ({ err }) => {
      this.lastProblem = `connection lost: ${err ? redactUrl(err.message) : 'closed'}`;
      this.blockedReason = undefined;
    });
    on('blocked', ({ reason }) => {
      this.blockedReason = reason ?? 'blocked';
    });
    on('unblocked', () => {
      this.blockedReason = undefined;
    });
  }

  /** Closes the channel (and the connection if this publisher opened it); bounded by `publish.timeoutMs`, never throws. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const detach of this.detachers.splice(0)) detach();
      const open = this.current;
      this.current = undefined;
      const manager = this.manager;
      const work = (async () => {
        if (open && !open.closed) await open.channel.close().catch(() => {});
        if (this.ownsConnection && manager) await manager.close();
      })();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([work, new Promise((r) => (timer = setTimeout(r, this.timeoutMs)))])
        .catch(() => {})
        .finally(() => clearTimeout(timer));
    })();
    return this.closing;
  }
}

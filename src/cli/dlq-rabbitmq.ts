/**
 * A RabbitMQ dead-letter queue for the CLI. A queue cannot be read without taking its messages, so the CLI browses:
 * it takes them with basic.get and keeps them unacknowledged; closing the channel hands every one it did not
 * settle back to the queue, in its place. A letter is replayed by publishing its original message back to the
 * handler's queue (confirmed, mandatory) and only then acknowledged off the dead-letter queue; resolving it
 * acknowledges it without a republish. A resolved RabbitMQ letter is gone: nothing records it.
 */
import { readFileSync } from 'node:fs';
import amqp, { type Channel, type ChannelModel, type GetMessage } from 'amqplib';
import type { ConveyorConfig } from '../config/schema.ts';
import type { DeadLetterEnvelope } from '../failure/dead-letter.ts';
import { BrokerFailure } from '../failure/errors.ts';
import { redactUrl } from '../ops/redact.ts';
import { RabbitPublisher } from '../publish/rabbitmq-publisher.ts';
import { headerText } from '../rabbitmq/retry-queues.ts';
import { parseEnvelope, rabbitLetterId, rabbitReplay, type StoredLetter } from './dlq-letters.ts';
import type { DeadLetterSource, ReplayOutcome } from './dlq-source.ts';

const CHUNK = 100;

/** One connection for every queue the command looks at; opened on first use, bounded by publish.timeoutMs. */
export class CliRabbit {
  private connecting: Promise<ChannelModel> | undefined;
  readonly timeoutMs: number;
  readonly where: string;

  private readonly config: ConveyorConfig;

  constructor(config: ConveyorConfig) {
    this.config = config;
    this.timeoutMs = config.publish.timeoutMs;
    this.where = redactUrl(config.rabbitmq.url);
  }

  async channel(): Promise<Channel> {
    const connection = await this.connection();
    try {
      const channel = await connection.createChannel();
      channel.on('error', () => {}); // a 404 on checkQueue closes the channel; the caller sees the rejection
      return channel;
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  async close(): Promise<void> {
    const connection = await this.connecting?.catch(() => undefined);
    await connection?.close().catch(() => {});
  }

  private connection(): Promise<ChannelModel> {
    this.connecting ??= (async () => {
      const ca = this.config.rabbitmq.caFile ? [readFileSync(this.config.rabbitmq.caFile)] : undefined;
      let timer: NodeJS.Timeout | undefined;
      try {
        const connection = await Promise.race([
          amqp.connect(this.config.rabbitmq.url, {
            noDelay: true,
            timeout: this.timeoutMs,
            clientProperties: { connection_name: `${this.config.app.name}-cli` },
            ...(ca ? { ca } : {}),
          }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no connection within ${this.timeoutMs} ms`)), this.timeoutMs);
          }),
        ]);
        connection.on('error', () => {});
        return connection;
      } catch (err) {
        throw this.unavailable(err);
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.connecting;
  }

  private unavailable(err: unknown): BrokerFailure {
    return new BrokerFailure(
      `RabbitMQ at ${this.where} could not be reached (${redactUrl((err as Error).message)}). Check rabbitmq.url (AMQP_URL) and that the broker is up; ` +
        'KAFKA_PUBLISH_TIMEOUT_MS (publish.timeoutMs) sets how long to wait.',
      { cause: err },
    );
  }
}

export class RabbitDeadLetterQueue implements DeadLetterSource {
  readonly broker = 'rabbitmq' as const;
  readonly name: string;
  private readonly rabbit: CliRabbit;
  private readonly config: ConveyorConfig;
  private browsing: Channel | undefined;
  /** Messages taken and not yet settled. */
  private readonly held = new Map<StoredLetter, GetMessage>();
  /** Everything read so far, in queue order. */
  private readonly letters: StoredLetter[] = [];
  private exhausted = false;
  private publisher: RabbitPublisher | undefined;

  constructor(rabbit: CliRabbit, config: ConveyorConfig, queue: string) {
    this.rabbit = rabbit;
    this.config = config;
    this.name = queue;
  }

  async scan(onProgress?: (done: number, total: number) => void): Promise<StoredLetter[]> {
    const ready = await this.depth();
    if (ready === undefined) return [];
    const total = this.letters.length + ready;
    await this.takeUntil(() => false, (done) => onProgress?.(done, Math.max(total, done)));
    return [...this.letters];
  }

  async find(id: string): Promise<StoredLetter | undefined> {
    const known = this.letters.find((l) => l.id === id);
    if (known) return known;
    if ((await this.depth()) === undefined) return undefined;
    return this.takeUntil((letter) => letter.id === id);
  }

  async replay(letters: readonly StoredLetter[], onOutcome: (outcome: ReplayOutcome) => void): Promise<void> {
    const publisher = (this.publisher ??= new RabbitPublisher(this.config));
    for (const chunk of chunksByQueue(letters)) {
      const replays = chunk.map((l) => rabbitReplay(l as StoredLetter & { envelope: DeadLetterEnvelope }));
      try {
        // the default exchange with the queue's name as routing key: only the handler's own queue gets it
        await publisher.publish(
          '',
          replays.map((r) => ({ key: r.queue, value: r.value, headers: r.headers })),
        );
      } catch (err) {
        for (const letter of chunk) onOutcome({ letter, error: err as Error });
        continue;
      }
      for (const letter of chunk) {
        this.settle(letter);
        onOutcome({ letter });
      }
    }
  }

  async resolve(letter: StoredLetter): Promise<void> {
    this.settle(letter);
  }

  /** Hands every message not settled back to the queue (closing the channel), then waits for the broker. */
  async close(): Promise<void> {
    await this.publisher?.close();
    // channel.close completes after the broker processed everything sent before it, acks included
    await this.browsing?.close().catch(() => {});
    this.browsing = undefined;
  }

  private settle(letter: StoredLetter): void {
    const message = this.held.get(letter);
    if (!message || !this.browsing) throw new Error(`${letter.id} is not held by this session`);
    this.browsing.ack(message);
    this.held.delete(letter);
  }

  /** Messages ready in the queue; undefined when the queue does not exist. */
  private async depth(): Promise<number | undefined> {
    const probe = await this.rabbit.channel();
    try {
      return (await probe.checkQueue(this.name)).messageCount;
    } catch (err) {
      if ((err as { code?: unknown }).code === 404) return undefined;
      throw err;
    } finally {
      await probe.close().catch(() => {});
    }
  }

  /** Takes messages until `stop` accepts one (returned) or the queue has no more ready ones. */
  private async takeUntil(stop: (letter: StoredLetter) => boolean, onTaken?: (count: number) => void): Promise<StoredLetter | undefined> {
    if (this.exhausted) return undefined;
    this.browsing ??= await this.rabbit.channel();
    for (;;) {
      const message = await this.browsing.get(this.name, { noAck: false });
      if (message === false) {
        this.exhausted = true;
        return undefined;
      }
      const letter = this.letter(message);
      this.letters.push(letter);
      this.held.set(letter, message);
      onTaken?.(this.letters.length);
      if (stop(letter)) return letter;
    }
  }

  private letter(message: GetMessage): StoredLetter {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(message.properties.headers ?? {})) {
      if (value !== undefined && value !== null) headers[name] = headerText(value);
    }
    const messageId = message.properties.messageId === undefined || message.properties.messageId === null ? '?' : String(message.properties.messageId);
    const timestamp = Number(message.properties.timestamp);
    return {
      id: rabbitLetterId(this.name, messageId),
      broker: 'rabbitmq',
      dlq: this.name,
      ...parseEnvelope(message.content),
      key: null,
      headers,
      storedAt: Number.isFinite(timestamp) && timestamp > 0 ? (timestamp < 1e11 ? timestamp * 1000 : timestamp) : Date.now(),
    };
  }
}

function chunksByQueue(letters: readonly StoredLetter[]): StoredLetter[][] {
  const chunks: StoredLetter[][] = [];
  for (const letter of letters) {
    const last = chunks.at(-1);
    if (last && last.length < CHUNK && last[0]!.envelope?.original_topic === letter.envelope?.original_topic) last.push(letter);
    else chunks.push([letter]);
  }
  return chunks;
}

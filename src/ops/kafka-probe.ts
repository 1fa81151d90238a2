/**
 * Is Kafka reachable? The consumers cannot say: librdkafka reconnects by itself and reports an outage only in its
 * logs, while a consumer with nothing to fetch looks the same whether its broker is up or not. So this asks: a
 * metadata request for the handlers' topics through one admin client every `intervalMs`, bounded by `timeoutMs`.
 * Any answer from a broker, even an error about a topic, means up; a request that times out or finds no broker
 * means down. Readiness therefore flips at most `intervalMs + timeoutMs` after the brokers stop answering, and
 * back at most `intervalMs` (plus a reconnect, backed off up to 1 s) after they return.
 */
import type { Admin, Kafka } from '../kafka/client.ts';
import type { BrokerReachability } from './health.ts';
import type { Logger } from './logger.ts';

export interface KafkaProbeOptions {
  /** Topics whose metadata is requested (the handlers' topics: a small request on any cluster). */
  readonly topics: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly logger: Logger;
}

/** Every 5 s, each check bounded by 5 s: an outage shows within 10 s, a recovery within ~6 s. */
export const KAFKA_PROBE_DEFAULTS = { intervalMs: 5_000, timeoutMs: 5_000 } as const;

/** librdkafka's error codes: negative ones are the client's own (timeout, transport, no broker), positive ones a broker's answer. */
export function brokerAnswered(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' && code > 0;
}

export class KafkaProbe {
  private readonly kafka: Kafka;
  private readonly options: KafkaProbeOptions;
  private admin: Admin | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private current: BrokerReachability = { up: undefined };

  constructor(kafka: Kafka, options: KafkaProbeOptions) {
    this.kafka = kafka;
    this.options = options;
  }

  /** The last check's result; `up` is undefined until the first one finished. */
  get state(): BrokerReachability {
    return this.current;
  }

  /** Checks now, then every `intervalMs`, until stop(). */
  start(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => void this.loop(), 0);
    this.timer.unref();
  }

  private async loop(): Promise<void> {
    const outcome = await this.check();
    if (this.stopped) return;
    this.record(outcome);
    this.timer = setTimeout(() => void this.loop(), this.options.intervalMs);
    this.timer.unref();
  }

  /** One metadata request; never throws. */
  private async check(): Promise<BrokerReachability> {
    const { topics, timeoutMs } = this.options;
    let timer: NodeJS.Timeout | undefined;
    try {
      if (!this.admin) {
        // a short reconnect backoff: the probe is what notices the brokers are back
        const admin = this.kafka.admin({ 'reconnect.backoff.ms': 100, 'reconnect.backoff.max.ms': 1000 });
        await admin.connect();
        this.admin = admin;
      }
      const request = this.admin.fetchTopicMetadata({ topics: [...topics], timeout: timeoutMs });
      // the client's own timeout, and one of ours in case it does not keep it
      await Promise.race([
        request,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs + 1000);
        }),
      ]);
      return { up: true };
    } catch (err) {
      if (brokerAnswered(err)) return { up: true };
      return { up: false, reason: (err as Error)?.message ?? String(err) };
    } finally {
      clearTimeout(timer);
    }
  }

  private record(outcome: BrokerReachability): void {
    const before = this.current.up;
    this.current = outcome;
    const log = this.options.logger;
    if (outcome.up === false && before !== false) log.warn({ reason: outcome.reason }, 'Kafka unreachable: not ready until it answers again');
    else if (outcome.up === true && before === false) log.info('Kafka reachable again');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const admin = this.admin;
    this.admin = undefined;
    // With no broker answering, the driver's disconnect blocks the whole event loop for seconds (measured: 3.2 s,
    // librdkafka joining its threads): the process is stopping anyway, so it is left to the exit.
    if (this.current.up === true) await admin?.disconnect().catch(() => {});
  }
}

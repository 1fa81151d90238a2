/**
 * Is Kafka reachable? The consumers cannot say: librdkafka reconnects by itself and reports an outage only in its
 * logs, while a consumer with nothing to fetch looks the same whether its broker is up or not. So this asks: a
 * metadata request for the handlers' topics through the admin port (kafka/admin.ts: pure JavaScript, so no native
 * admin request races a broker disconnect) every `intervalMs`, bounded by `timeoutMs`.
 * Any answer from a broker, even an error about a topic, means up; a request that times out or finds no broker
 * means down. Readiness therefore flips at most `intervalMs + timeoutMs` after the brokers stop answering, and
 * back at most `intervalMs` (plus a reconnect, backed off up to 1 s) after they return.
 */
import type { KafkaAdmin } from '../kafka/admin.ts';
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

export class KafkaProbe {
  private readonly admin: KafkaAdmin;
  private readonly options: KafkaProbeOptions;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private current: BrokerReachability = { up: undefined };

  /** `admin`: its own, with `timeoutMs` as its bound (kafkaAdminOptions(config, clientId, timeoutMs)). */
  constructor(admin: KafkaAdmin, options: KafkaProbeOptions) {
    this.admin = admin;
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
    const { topics } = this.options;
    // bounded by the admin's timeout (timeoutMs); a failed check drops the connection, the next one starts afresh
    return this.admin.reachable(topics);
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
    await this.admin.close();
  }
}

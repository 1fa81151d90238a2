/**
 * The consumer lag monitor: every lag.intervalSeconds it measures each group's lag per partition (LagReader),
 * emits `lag.sampled` per partition, feeds the levels state machine (LagLevels), and on each change of a group's
 * level emits `lag.level_changed`, logs it, and POSTs it to lag.webhookUrl when one is set. A measurement that
 * fails (Kafka down) is logged — at most once a minute while it keeps failing — and skipped; nothing is thrown.
 */
import type { ConveyorConfig } from '../config/schema.ts';
import type { Instrumentation, LagLevel, LagLevelChange } from '../lanes/instrumentation.ts';
import { LagLevels, lagThresholds, type GroupLagAssessment } from './lag-levels.ts';
import { LagReader, type GroupLag, type GroupTopics } from './lag-reader.ts';
import type { Logger } from './logger.ts';
import { redactTokenUrl } from './redact.ts';

export interface LagMonitorOptions {
  readonly config: ConveyorConfig;
  /** The Kafka consumer groups to watch and their topics. */
  readonly groups: ReadonlyArray<{ readonly group: string; readonly topics: readonly string[] }>;
  readonly events: Instrumentation;
  readonly logger: Logger;
  /**
   * Whether this process sends the webhook for a group (default: always). Every member of a group measures the
   * same lag; the runtime lets only one of them (the owner of partition 0 of the group's first topic) call out.
   */
  readonly reportsFor?: (group: string) => boolean;
}

/** The JSON body POSTed to lag.webhookUrl on each level change. */
export interface LagWebhookPayload extends LagLevelChange {
  readonly event: 'lag.level_changed';
  /** app.name of the Conveyor that measured it. */
  readonly app: string;
  /** When the change was measured (ISO 8601). */
  readonly at: string;
  readonly topics: readonly string[];
}

const WEBHOOK_TIMEOUT_MS = 5000;
/** While measurements keep failing, one log line per this period. */
const FAILURE_LOG_PERIOD_MS = 60_000;

const LOG_METHOD: Readonly<Record<LagLevel, 'info' | 'warn' | 'error'>> = { ok: 'info', info: 'info', warning: 'warn', critical: 'error' };

export class LagMonitor {
  readonly #config: ConveyorConfig;
  readonly #groups: readonly GroupTopics[];
  readonly #events: Instrumentation;
  readonly #log: Logger;
  readonly #reader: LagReader;
  readonly #levels: LagLevels;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;
  #started = false;
  #failures = 0;
  #failuresLoggedAt = 0;
  readonly #missingReported = new Set<string>();
  readonly #reportsFor: (group: string) => boolean;

  constructor(options: LagMonitorOptions) {
    this.#config = options.config;
    this.#groups = mergeGroups(options.groups);
    this.#events = options.events;
    this.#log = options.logger.child({ component: 'lag-monitor' });
    this.#reader = new LagReader({ config: options.config });
    this.#levels = new LagLevels(lagThresholds(options.config));
    this.#intervalMs = options.config.lag.intervalSeconds * 1000;
    this.#reportsFor = options.reportsFor ?? (() => true);
  }

  /** Measures now, then every lag.intervalSeconds (measured from the start of one round to the next). */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    if (this.#groups.length === 0) return;
    this.#log.info({ groups: this.#groups.map((g) => g.group), intervalSeconds: this.#config.lag.intervalSeconds }, 'consumer lag monitor started');
    this.#schedule(0);
  }

  /** Stops the timer, waits for a measurement in progress (and its webhook calls), disconnects. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round;
    await this.#reader.close();
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => {
      const started = Date.now();
      this.#round = this.#measure().finally(() => {
        this.#round = undefined;
        if (!this.#stopped) this.#schedule(Math.max(0, this.#intervalMs - (Date.now() - started)));
      });
    }, delayMs);
    this.#timer.unref();
  }

  async #measure(): Promise<void> {
    let measured: GroupLag[];
    try {
      measured = await this.#reader.measure(this.#groups);
    } catch (err) {
      this.#failed(err);
      return;
    }
    if (this.#failures > 0) {
      this.#log.info({ failedMeasurements: this.#failures }, 'consumer lag measured again');
      this.#failures = 0;
      this.#failuresLoggedAt = 0;
    }
    const posts: Array<Promise<void>> = [];
    for (const group of measured) {
      this.#reportMissing(group);
      for (const p of group.partitions) {
        this.#events.emit('lag.sampled', { group: group.group, topic: p.topic, partition: p.partition, lag: p.lag, lagSeconds: p.lagSeconds });
      }
      const assessed = this.#levels.assess(group.group, group.partitions, group.measuredAt);
      this.#logSuppression(assessed);
      if (assessed.changed) posts.push(this.#changed(assessed, group));
    }
    await Promise.all(posts);
  }

  #changed(assessed: GroupLagAssessment, group: GroupLag): Promise<void> {
    const change: LagLevelChange = {
      group: assessed.group,
      level: assessed.level,
      previous: assessed.previous,
      lag: assessed.lag,
      lagSeconds: assessed.lagSeconds,
      suppressed: assessed.suppressed,
      ...(assessed.suppressed && assessed.suppressedUntil !== undefined ? { suppressedUntil: new Date(assessed.suppressedUntil).toISOString() } : {}),
    };
    this.#events.emit('lag.level_changed', change);
    // `lagLevel`, not `level`: pino writes its own numeric `level` into every line
    const { level, ...fields } = change;
    this.#log[LOG_METHOD[level]]({ ...fields, lagLevel: level }, 'consumer lag level changed');
    const url = this.#config.lag.webhookUrl;
    if (url === '' || !this.#reportsFor(group.group)) return Promise.resolve();
    const topics = this.#groups.find((g) => g.group === group.group)?.topics ?? [];
    const payload: LagWebhookPayload = { event: 'lag.level_changed', app: this.#config.app.name, at: new Date(group.measuredAt).toISOString(), ...change, topics };
    return this.#post(url, payload);
  }

  /** One POST, bounded by WEBHOOK_TIMEOUT_MS; a failure is logged (URL redacted), never thrown, not retried. */
  async #post(url: string, payload: LagWebhookPayload): Promise<void> {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
      });
      await response.body?.cancel();
      if (!response.ok) this.#log.warn({ webhookUrl: redactTokenUrl(url), status: response.status, group: payload.group }, 'lag webhook refused the level change');
    } catch (err) {
      const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${WEBHOOK_TIMEOUT_MS} ms` : describeFetchError(err).replaceAll(url, redactTokenUrl(url));
      this.#log.warn({ webhookUrl: redactTokenUrl(url), reason, group: payload.group }, 'lag webhook failed');
    }
  }

  #failed(err: unknown): void {
    this.#failures += 1;
    const now = Date.now();
    if (now - this.#failuresLoggedAt < FAILURE_LOG_PERIOD_MS) return;
    this.#failuresLoggedAt = now;
    const e = err as { code?: string; message?: string };
    this.#log.warn({ code: e.code, reason: e.message, failedMeasurements: this.#failures }, 'consumer lag not measured (skipped; next try in lag.intervalSeconds)');
  }

  #logSuppression(assessed: GroupLagAssessment): void {
    if (assessed.suppression === undefined) return;
    const { group, lag } = assessed;
    if (assessed.suppression === 'started') {
      const until = new Date(assessed.suppressedUntil!).toISOString();
      this.#log.info({ group, lag, suppressedUntil: until }, 'bulk import detected (lag spike, now decreasing): lag warning suppressed');
    } else {
      this.#log.info({ group, lag, reason: assessed.suppression }, assessed.suppression === 'expired' ? 'lag warning suppression expired' : 'lag growing again: lag warning suppression ended');
    }
  }

  #reportMissing(group: GroupLag): void {
    for (const topic of group.missingTopics) {
      const key = `${group.group}\u0000${topic}`;
      if (this.#missingReported.has(key)) continue;
      this.#missingReported.add(key);
      this.#log.warn({ group: group.group, topic }, 'topic does not exist: its consumer lag is not measured');
    }
  }
}

/** One entry per group, its topics merged (two handlers may share a group). */
function mergeGroups(groups: ReadonlyArray<{ readonly group: string; readonly topics: readonly string[] }>): GroupTopics[] {
  const merged = new Map<string, Set<string>>();
  for (const { group, topics } of groups) {
    const set = merged.get(group) ?? new Set<string>();
    for (const t of topics) set.add(t);
    merged.set(group, set);
  }
  return [...merged].map(([group, topics]) => ({ group, topics: [...topics] }));
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
}

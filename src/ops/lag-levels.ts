/**
 * The consumer lag levels of seed 000 as a pure state machine: no I/O, no timers, time is an argument. The lag
 * monitor feeds it one measurement per group; it answers with the group's level and whether that level changed.
 *
 * Rules (docs/lag.md):
 * - a partition's level comes from its lag in time: above `infoSeconds` info, above `warningSeconds` warning,
 *   above `criticalSeconds` critical; a lag of `alertThreshold` events or more makes it at least warning;
 * - a group's level is the highest level of its partitions, after bulk-import suppression;
 * - bulk-import suppression: when the group's total lag rose by at least `alertThreshold` events within
 *   `spikeWindowSeconds` (a spike) and has since fallen in two consecutive measurements (a decreasing trend),
 *   warning is capped to info for `suppressMinutes`. Critical is never suppressed. The suppression ends early
 *   when the total lag rises in two consecutive measurements. A spike suppresses once: a new suppression needs
 *   a new rise measured after the previous one started.
 */
import type { ConveyorConfig } from '../config/schema.ts';
import type { LagLevel } from '../lanes/instrumentation.ts';

/** Lowest to highest. */
export const LAG_LEVELS: readonly LagLevel[] = ['ok', 'info', 'warning', 'critical'];

const rank = (level: LagLevel): number => LAG_LEVELS.indexOf(level);
const highest = (a: LagLevel, b: LagLevel): LagLevel => (rank(a) >= rank(b) ? a : b);

export interface LagThresholds {
  /** Lag in events at or above which a partition is at least at warning. */
  readonly alertThreshold: number;
  /** Lag in time above which a partition is at info, warning, critical (seconds). */
  readonly infoSeconds: number;
  readonly warningSeconds: number;
  readonly criticalSeconds: number;
  /** How long a detected bulk-import spike caps warning to info; 0 turns suppression off. */
  readonly suppressMinutes: number;
  /** A rise of `alertThreshold` events within this many seconds is a spike. */
  readonly spikeWindowSeconds: number;
}

/** The thresholds the configuration gives; the spike window is lag.warningSeconds. */
export function lagThresholds(config: ConveyorConfig): LagThresholds {
  const { alertThreshold, infoSeconds, warningSeconds, criticalSeconds, suppressMinutes } = config.lag;
  return { alertThreshold, infoSeconds, warningSeconds, criticalSeconds, suppressMinutes, spikeWindowSeconds: warningSeconds };
}

export interface PartitionLagInput {
  /** Messages between the committed offset and the end of the partition. */
  readonly lag: number;
  /** Age of the oldest message not yet committed, in seconds (0 when there is no lag). */
  readonly lagSeconds: number;
}

/** One partition's level, before suppression. */
export function partitionLagLevel(partition: PartitionLagInput, thresholds: LagThresholds): LagLevel {
  const { lagSeconds, lag } = partition;
  let level: LagLevel = 'ok';
  if (lagSeconds > thresholds.criticalSeconds) level = 'critical';
  else if (lagSeconds > thresholds.warningSeconds) level = 'warning';
  else if (lagSeconds > thresholds.infoSeconds) level = 'info';
  return lag >= thresholds.alertThreshold ? highest(level, 'warning') : level;
}

export interface GroupLagAssessment {
  readonly group: string;
  /** The level to report: the highest partition level, warning capped to info while suppressed. */
  readonly level: LagLevel;
  /** The level reported by the previous measurement ('ok' before the first). */
  readonly previous: LagLevel;
  /** `level` differs from `previous`: report it. */
  readonly changed: boolean;
  /** The highest partition level, before suppression. */
  readonly unsuppressedLevel: LagLevel;
  /** Total lag of the group's partitions, in messages. */
  readonly lag: number;
  /** Largest lag in time of the group's partitions, in seconds. */
  readonly lagSeconds: number;
  /** A bulk-import suppression is in force and caps the level (false when the level is critical). */
  readonly suppressed: boolean;
  /** When the suppression in force ends (epoch milliseconds). */
  readonly suppressedUntil?: number;
  /** What happened to the suppression at this measurement, if anything. */
  readonly suppression?: 'started' | 'ended_early' | 'expired';
}

interface Sample {
  readonly at: number;
  readonly lag: number;
}

interface GroupState {
  level: LagLevel;
  /** Total lag samples: those within the spike window, and at least the last three (the trend). */
  samples: Sample[];
  suppressedUntil: number | undefined;
}

/** Levels and suppression of every consumer group it is fed. */
export class LagLevels {
  readonly thresholds: LagThresholds;
  readonly #groups = new Map<string, GroupState>();

  constructor(thresholds: LagThresholds) {
    this.thresholds = thresholds;
  }

  /** Feeds one measurement of a group's partitions taken at `at` (epoch milliseconds, non-decreasing per group). */
  assess(group: string, partitions: readonly PartitionLagInput[], at: number): GroupLagAssessment {
    const th = this.thresholds;
    let state = this.#groups.get(group);
    if (!state) {
      state = { level: 'ok', samples: [], suppressedUntil: undefined };
      this.#groups.set(group, state);
    }
    let lag = 0;
    let lagSeconds = 0;
    let unsuppressedLevel: LagLevel = 'ok';
    for (const p of partitions) {
      lag += p.lag;
      lagSeconds = Math.max(lagSeconds, p.lagSeconds);
      unsuppressedLevel = highest(unsuppressedLevel, partitionLagLevel(p, th));
    }

    const windowStart = at - th.spikeWindowSeconds * 1000;
    state.samples.push({ at, lag });
    state.samples = state.samples.filter((s, i, all) => s.at >= windowStart || i >= all.length - 3);

    let suppression: GroupLagAssessment['suppression'];
    if (state.suppressedUntil !== undefined) {
      if (at >= state.suppressedUntil) {
        state.suppressedUntil = undefined;
        suppression = 'expired';
      } else if (trend(state.samples) === 'rising') {
        state.suppressedUntil = undefined;
        suppression = 'ended_early';
      }
    }
    if (state.suppressedUntil === undefined && th.suppressMinutes > 0 && trend(state.samples) === 'falling' && largestRise(state.samples, windowStart) >= th.alertThreshold) {
      state.suppressedUntil = at + th.suppressMinutes * 60_000;
      // this spike is used up: a new suppression needs a rise measured from now on
      state.samples = state.samples.slice(-1);
      suppression = 'started';
    }

    const suppressed = state.suppressedUntil !== undefined && unsuppressedLevel !== 'critical';
    const level: LagLevel = suppressed && unsuppressedLevel === 'warning' ? 'info' : unsuppressedLevel;
    const previous = state.level;
    state.level = level;
    return {
      group,
      level,
      previous,
      changed: level !== previous,
      unsuppressedLevel,
      lag,
      lagSeconds,
      suppressed,
      ...(state.suppressedUntil !== undefined ? { suppressedUntil: state.suppressedUntil } : {}),
      ...(suppression ? { suppression } : {}),
    };
  }

  /** The level last reported for `group` ('ok' if never assessed). */
  level(group: string): LagLevel {
    return this.#groups.get(group)?.level ?? 'ok';
  }
}

/** The direction of the last three samples: strictly falling, strictly rising, or neither. */
function trend(samples: readonly Sample[]): 'falling' | 'rising' | 'flat' {
  if (samples.length < 3) return 'flat';
  const [a, b, c] = samples.slice(-3).map((s) => s.lag) as [number, number, number];
  if (a > b && b > c) return 'falling';
  if (a < b && b < c) return 'rising';
  return 'flat';
}

/** The largest increase from one sample to a later one, among the samples taken since `from`. */
function largestRise(samples: readonly Sample[], from: number): number {
  let lowest = Infinity;
  let rise = 0;
  for (const s of samples) {
    if (s.at < from) continue;
    rise = Math.max(rise, s.lag - lowest);
    lowest = Math.min(lowest, s.lag);
  }
  return rise;
}

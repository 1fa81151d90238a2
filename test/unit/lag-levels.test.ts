/** The lag levels of seed 000 and bulk-import suppression, as a state machine fed measurements at given times. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { LagLevels, lagThresholds, partitionLagLevel, type GroupLagAssessment, type LagThresholds } from '../../src/ops/lag-levels.ts';

const defaults = lagThresholds(loadConfig({ env: {} }));
const T0 = Date.parse('2026-11-22T10:00:00Z');
const at = (seconds: number): number => T0 + seconds * 1000;
const MIN = 60;

/** One partition per measurement: [seconds after T0, lag in messages, lag in seconds]. */
function feed(levels: LagLevels, series: ReadonlyArray<readonly [number, number, number?]>, group = 'g'): GroupLagAssessment[] {
  return series.map(([t, lag, lagSeconds]) => levels.assess(group, [{ lag, lagSeconds: lagSeconds ?? 0 }], at(t)));
}

/** A bulk import: lag 0, then 50,000 messages at once, then worked off by 10,000 per 15 s measurement. */
const BULK_IMPORT: ReadonlyArray<readonly [number, number]> = [
  [0, 0],
  [15, 50_000],
  [30, 40_000],
  [45, 30_000],
];

describe('lag levels', () => {
  it('uses the defaults of seed 000: 1, 5, 15 minutes and 10,000 messages, suppression for 30 minutes', () => {
    expect(defaults).toEqual({ alertThreshold: 10_000, infoSeconds: 60, warningSeconds: 300, criticalSeconds: 900, suppressMinutes: 30, spikeWindowSeconds: 300 });
  });

  it('rates a partition by its lag in time: above 1 min info, above 5 min warning, above 15 min critical', () => {
    const level = (lagSeconds: number): string => partitionLagLevel({ lag: 1, lagSeconds }, defaults);
    expect(level(0)).toBe('ok');
    expect(level(60)).toBe('ok');
    expect(level(60.001)).toBe('info');
    expect(level(300)).toBe('info');
    expect(level(300.001)).toBe('warning');
    expect(level(900)).toBe('warning');
    expect(level(900.001)).toBe('critical');
  });

  it('makes a partition at least warning from alertThreshold messages on, whatever their age', () => {
    expect(partitionLagLevel({ lag: 9_999, lagSeconds: 0 }, defaults)).toBe('ok');
    expect(partitionLagLevel({ lag: 10_000, lagSeconds: 0 }, defaults)).toBe('warning');
    expect(partitionLagLevel({ lag: 10_000, lagSeconds: 120 }, defaults)).toBe('warning');
    expect(partitionLagLevel({ lag: 10_000, lagSeconds: 1_000 }, defaults)).toBe('critical');
  });

  it('takes the highest level of the group’s partitions, with the total lag and the largest lag in time', () => {
    const result = new LagLevels(defaults).assess(
      'g',
      [
        { lag: 5, lagSeconds: 30 },
        { lag: 7, lagSeconds: 400 },
        { lag: 0, lagSeconds: 0 },
      ],
      at(0),
    );
    expect(result).toMatchObject({ level: 'warning', lag: 12, lagSeconds: 400, suppressed: false });
  });

  it('is ok for a group without partitions', () => {
    expect(new LagLevels(defaults).assess('g', [], at(0))).toMatchObject({ level: 'ok', changed: false, lag: 0, lagSeconds: 0 });
  });

  it('reports a level only when it changes, starting from ok, and recovers to ok', () => {
    const results = feed(new LagLevels(defaults), [
      [0, 0, 0],
      [15, 10, 90],
      [30, 12, 100],
      [45, 15, 400],
      [60, 3, 30],
      [75, 0, 0],
    ]);
    expect(results.map((r) => [r.level, r.changed])).toEqual([
      ['ok', false],
      ['info', true],
      ['info', false],
      ['warning', true],
      ['ok', true],
      ['ok', false],
    ]);
    expect(results.map((r) => r.previous)).toEqual(['ok', 'ok', 'info', 'info', 'warning', 'ok']);
  });

  it('reports a level other than ok at the first measurement', () => {
    expect(new LagLevels(defaults).assess('g', [{ lag: 1, lagSeconds: 1_000 }], at(0))).toMatchObject({ level: 'critical', previous: 'ok', changed: true });
  });

  it('keeps each group’s level apart', () => {
    const levels = new LagLevels(defaults);
    expect(levels.assess('a', [{ lag: 1, lagSeconds: 400 }], at(0)).changed).toBe(true);
    expect(levels.assess('b', [{ lag: 1, lagSeconds: 400 }], at(0)).changed).toBe(true);
    expect(levels.assess('a', [{ lag: 1, lagSeconds: 400 }], at(15)).changed).toBe(false);
    expect([levels.level('a'), levels.level('b'), levels.level('c')]).toEqual(['warning', 'warning', 'ok']);
  });
});

describe('bulk-import suppression', () => {
  it('caps warning to info once a spike has fallen in two consecutive measurements, for 30 minutes', () => {
    const results = feed(new LagLevels(defaults), BULK_IMPORT);
    expect(results.map((r) => [r.level, r.changed, r.suppressed])).toEqual([
      ['ok', false, false],
      ['warning', true, false], // the spike itself: nothing tells it from a stuck consumer yet
      ['warning', false, false], // one decrease is not a trend
      ['info', true, true],
    ]);
    expect(results[3]).toMatchObject({ previous: 'warning', unsuppressedLevel: 'warning', suppression: 'started', suppressedUntil: at(45 + 30 * MIN) });
  });

  it('keeps a lag in time above 5 minutes at info while suppressed', () => {
    const levels = new LagLevels(defaults);
    feed(levels, BULK_IMPORT);
    const [later] = feed(levels, [[60, 20_000, 400]]);
    expect(later).toMatchObject({ level: 'info', unsuppressedLevel: 'warning', changed: false, suppressed: true });
  });

  it('never suppresses critical', () => {
    const levels = new LagLevels(defaults);
    feed(levels, BULK_IMPORT);
    const [critical, back] = feed(levels, [
      [60, 20_000, 901],
      [75, 10_000, 200],
    ]);
    expect(critical).toMatchObject({ level: 'critical', previous: 'info', changed: true, suppressed: false });
    // the suppression still runs: once below critical, warning is capped again
    expect(back).toMatchObject({ level: 'info', previous: 'critical', changed: true, suppressed: true });
  });

  it('ends after suppressMinutes: warning comes back if the lag still warrants it', () => {
    const levels = new LagLevels(defaults);
    feed(levels, BULK_IMPORT);
    const end = 45 + 30 * MIN;
    const [before, after] = feed(levels, [
      [end - 0.001, 20_000, 400],
      [end, 19_000, 400],
    ]);
    expect(before).toMatchObject({ level: 'info', suppressed: true });
    expect(after).toMatchObject({ level: 'warning', previous: 'info', changed: true, suppressed: false, suppression: 'expired' });
    expect(after!.suppressedUntil).toBeUndefined();
  });

  it('ends at once when the lag rises in two consecutive measurements', () => {
    const levels = new LagLevels(defaults);
    feed(levels, BULK_IMPORT);
    const results = feed(levels, [
      [60, 31_000],
      [75, 32_000],
    ]);
    expect(results.map((r) => [r.level, r.suppressed, r.suppression])).toEqual([
      ['info', true, undefined], // one rise is noise
      ['warning', false, 'ended_early'],
    ]);
  });

  it('stays on through a single rise between falls', () => {
    const levels = new LagLevels(defaults);
    feed(levels, BULK_IMPORT);
    const results = feed(levels, [
      [60, 31_000],
      [75, 25_000],
      [90, 26_000],
      [105, 20_000],
    ]);
    expect(results.every((r) => r.level === 'info' && r.suppressed)).toBe(true);
  });

  it('does not suppress a spike that is still rising or flat', () => {
    const results = feed(new LagLevels(defaults), [
      [0, 0],
      [15, 50_000],
      [30, 60_000],
      [45, 60_000],
      [60, 59_000],
    ]);
    expect(results.map((r) => [r.level, r.suppressed])).toEqual([
      ['ok', false],
      ['warning', false],
      ['warning', false],
      ['warning', false],
      ['warning', false],
    ]);
  });

  it('does not suppress a backlog that built up slowly (less than alertThreshold messages within 5 minutes)', () => {
    // 480 more messages every 15 s: 9,600 per 5 minutes, for 10 minutes
    const rising = Array.from({ length: 41 }, (_, i) => [i * 15, i * 480] as const);
    const levels = new LagLevels(defaults);
    feed(levels, rising);
    const results = feed(levels, [
      [41 * 15, 19_000],
      [42 * 15, 18_000],
      [43 * 15, 17_000],
    ]);
    expect(results.map((r) => [r.level, r.suppressed])).toEqual([
      ['warning', false],
      ['warning', false],
      ['warning', false],
    ]);
  });

  it('counts a rise of exactly alertThreshold messages within the last 5 minutes as a spike', () => {
    const spike = (rise: number): boolean =>
      feed(new LagLevels(defaults), [
        [30, 5_000], // 300 s before the measurement that sees the fall: just inside the window
        [300, 5_000 + rise],
        [315, 5_000 + rise - 1],
        [330, 5_000 + rise - 2],
      ]).at(-1)!.suppressed;
    expect(spike(10_000)).toBe(true);
    expect(spike(9_999)).toBe(false);
  });

  it('forgets a rise older than the window (lag.warningSeconds)', () => {
    const results = feed(new LagLevels(defaults), [
      [0, 0],
      [15, 50_000],
      [330, 50_000], // the rise from 0 happened 330 s before the fall began: outside the 5-minute window
      [345, 40_000],
      [360, 30_000],
    ]);
    expect(results.at(-1)).toMatchObject({ level: 'warning', suppressed: false });
  });

  it('suppresses once per spike: after it expires, the same backlog still falling warns again', () => {
    const levels = new LagLevels(defaults);
    feed(levels, BULK_IMPORT);
    const falling = Array.from({ length: 10 }, (_, i) => [45 + 30 * MIN + i * 15, 29_000 - i * 1_000] as const);
    const results = feed(levels, falling);
    expect(results.every((r) => r.level === 'warning' && !r.suppressed)).toBe(true);
  });

  it('suppresses again for a new spike', () => {
    const levels = new LagLevels(defaults);
    feed(levels, BULK_IMPORT);
    const t = 45 + 30 * MIN;
    const results = feed(levels, [
      [t, 2_000],
      [t + 15, 60_000],
      [t + 30, 50_000],
      [t + 45, 40_000],
    ]);
    expect(results.map((r) => [r.level, r.suppression])).toEqual([
      ['ok', 'expired'],
      ['warning', undefined],
      ['warning', undefined],
      ['info', 'started'],
    ]);
  });

  it('is off with suppressMinutes 0', () => {
    const off: LagThresholds = { ...defaults, suppressMinutes: 0 };
    const results = feed(new LagLevels(off), BULK_IMPORT);
    expect(results.at(-1)).toMatchObject({ level: 'warning', suppressed: false });
  });

  it('follows the configured thresholds', () => {
    const config = loadConfig({
      env: {
        KAFKA_CONSUMER_LAG_ALERT_THRESHOLD: '100',
        KAFKA_CONSUMER_LAG_INFO_SECONDS: '5',
        KAFKA_CONSUMER_LAG_WARNING_SECONDS: '10',
        KAFKA_CONSUMER_LAG_CRITICAL_SECONDS: '20',
        KAFKA_CONSUMER_LAG_SUPPRESS_MINUTES: '1',
      },
    });
    const levels = new LagLevels(lagThresholds(config));
    const results = feed(levels, [
      [0, 0, 0],
      [1, 200, 3],
      [2, 150, 6],
      [3, 100, 7],
      [63, 90, 11],
      [64, 80, 21],
    ]);
    expect(results.map((r) => r.level)).toEqual(['ok', 'warning', 'warning', 'info', 'warning', 'critical']);
    expect(results[3]!.suppressedUntil).toBe(at(63));
  });
});

/**
 * `conveyor lag [--config <file>] [--group <id> ...] [--json]`: one measurement of consumer lag per group and
 * partition — committed offset, end offset, lag in messages and in time, and the level of seed 000 — with a total
 * line per group. The groups are those of the configured handler files, or the ones named with --group (then on
 * every topic they have committed offsets for). Measured from outside: joins no group, commits nothing.
 * Exit codes: 0 measured, 69 Kafka did not answer within kafka.timeoutSeconds, 78 invalid configuration or handlers.
 */
import type { Command } from 'commander';
import type { ConveyorConfig } from '../config/schema.ts';
import { discoverHandlers } from '../handlers/discover.ts';
import { KafkaAdmin, kafkaAdminOptions } from '../kafka/admin.ts';
import type { LagLevel } from '../lanes/instrumentation.ts';
import { LagLevels, lagThresholds, partitionLagLevel } from '../ops/lag-levels.ts';
import { LagReader, type GroupLag, type GroupTopics } from '../ops/lag-reader.ts';
import type { CliContext } from './context.ts';
import { EXIT_OK, settle } from './exit-codes.ts';
import { formatTable } from './text-table.ts';

interface LagOptions {
  readonly config?: string;
  readonly group?: string[];
  readonly json?: boolean;
}

export function registerLag(program: Command, ctx: CliContext): void {
  program
    .command('lag')
    .summary('show consumer lag per group and partition: messages, time, level')
    .description(
      'Measures each consumer group once. Per partition: the committed offset, the end\n' +
        'offset, the lag in messages and in time (age of the oldest message not yet\n' +
        'committed) and its level (ok, info, warning, critical: docs/lag.md); then a\n' +
        'total line per group with the group level. Groups: those of the configured\n' +
        'handler files, or --group. Joins no consumer group and commits nothing.\n' +
        'Exit codes: 0 measured, 69 Kafka did not answer within kafka.timeoutSeconds,\n' +
        '78 invalid configuration or handler files.',
    )
    .option('-c, --config <file>', 'configuration file (YAML or JSON); environment variables override it')
    .option('-g, --group <id>', 'consumer group to measure, on every topic it has committed offsets for (repeatable)', (id: string, all: string[] | undefined) => [...(all ?? []), id])
    .option('--json', 'print one JSON document: { measuredAt, groups: [{ group, level, lag, lagSeconds, partitions }] }')
    .action((options: LagOptions) => settle(ctx.io, 'lag', () => lag(options, ctx)));
}

/** A partition as `lag` shows it. */
export interface PartitionLagView {
  readonly topic: string;
  readonly partition: number;
  /** null: the group has committed nothing there (the lag counts from where kafka.autoOffsetReset sends it). */
  readonly committed: string | null;
  readonly end: string;
  readonly lag: number;
  readonly lagSeconds: number;
  readonly level: LagLevel;
}

export interface GroupLagView {
  readonly group: string;
  /** The highest partition level (one measurement: no bulk-import suppression). */
  readonly level: LagLevel;
  /** Total lag in messages, and the largest lag in time. */
  readonly lag: number;
  readonly lagSeconds: number;
  readonly partitions: readonly PartitionLagView[];
  readonly missingTopics: readonly string[];
}

async function lag(options: LagOptions, ctx: CliContext): Promise<number> {
  const config = ctx.loadConfig(options.config);
  const groups = options.group ? options.group.map((group) => ({ group })) : await handlerGroups(config);
  if (groups.length === 0) {
    ctx.io.err(`conveyor lag: no Kafka handler in ${config.handlers.directory}; name the consumer groups with --group <id>`);
    return EXIT_OK;
  }
  const reader = new LagReader({ config, admin: new KafkaAdmin(kafkaAdminOptions(config, `${config.app.name}-cli`)) });
  let measured: GroupLag[];
  try {
    measured = await reader.measure(groups);
  } finally {
    await reader.close();
  }
  const views = lagViews(measured, config);
  const measuredAt = new Date(measured[0]?.measuredAt ?? Date.now()).toISOString();
  if (options.json) {
    ctx.io.out(JSON.stringify({ measuredAt, groups: views }, null, 2));
    return EXIT_OK;
  }
  for (const line of lagTable(views)) ctx.io.out(line);
  if (views.some((g) => g.partitions.some((p) => p.committed === null))) {
    const from = config.kafka.autoOffsetReset === 'earliest' ? "the partition's start" : "the partition's end: no lag";
    ctx.io.out(`committed -: nothing committed yet; counted from ${from} (kafka.autoOffsetReset = ${config.kafka.autoOffsetReset})`);
  }
  for (const g of views) {
    for (const topic of g.missingTopics) ctx.io.err(`conveyor lag: topic ${topic} of group ${g.group} does not exist`);
    if (g.partitions.length === 0 && g.missingTopics.length === 0) ctx.io.err(`conveyor lag: group ${g.group} has no committed offsets on any topic`);
  }
  return EXIT_OK;
}

/** The Kafka handlers' groups, each with the topics of every handler in it. */
async function handlerGroups(config: ConveyorConfig): Promise<GroupTopics[]> {
  const specs = await discoverHandlers(config.handlers.directory, config);
  const topics = new Map<string, Set<string>>();
  for (const spec of specs) {
    if (spec.broker !== 'kafka') continue;
    const set = topics.get(spec.group) ?? new Set<string>();
    for (const t of spec.topics) set.add(t);
    topics.set(spec.group, set);
  }
  return [...topics].map(([group, set]) => ({ group, topics: [...set] }));
}

/** Levels per partition and per group for one measurement. Pure. */
export function lagViews(measured: readonly GroupLag[], config: ConveyorConfig): GroupLagView[] {
  const thresholds = lagThresholds(config);
  return measured.map((g) => {
    // a fresh state machine: one measurement has no trend, so no suppression
    const assessed = new LagLevels(thresholds).assess(g.group, g.partitions, g.measuredAt);
    return {
      group: g.group,
      level: assessed.level,
      lag: assessed.lag,
      lagSeconds: assessed.lagSeconds,
      missingTopics: g.missingTopics,
      partitions: g.partitions.map((p) => ({
        topic: p.topic,
        partition: p.partition,
        committed: p.committed === null ? null : String(p.committed),
        end: String(p.end),
        lag: p.lag,
        lagSeconds: p.lagSeconds,
        level: partitionLagLevel(p, thresholds),
      })),
    };
  });
}

type Row = { group: string; topic: string; partition: string; committed: string; end: string; lag: number; lagSeconds: number; level: string };

/** The table: one row per partition, then a `(total)` row per group with its level. Pure. */
export function lagTable(groups: readonly GroupLagView[]): string[] {
  const rows: Row[] = groups.flatMap((g) => [
    ...g.partitions.map((p) => ({ group: g.group, topic: p.topic, partition: String(p.partition), committed: p.committed ?? '-', end: p.end, lag: p.lag, lagSeconds: p.lagSeconds, level: p.level })),
    { group: g.group, topic: '(total)', partition: '', committed: '', end: '', lag: g.lag, lagSeconds: g.lagSeconds, level: g.level },
  ]);
  return formatTable(rows, [
    { header: 'GROUP', value: (r) => r.group },
    { header: 'TOPIC', value: (r) => r.topic },
    { header: 'PARTITION', value: (r) => r.partition, right: true },
    { header: 'COMMITTED', value: (r) => r.committed, right: true },
    { header: 'END', value: (r) => r.end, right: true },
    { header: 'LAG', value: (r) => String(r.lag), right: true },
    { header: 'LAG (TIME)', value: (r) => formatLagTime(r.lagSeconds), right: true },
    { header: 'LEVEL', value: (r) => r.level },
  ]);
}

/** `0s`, `2.5s`, `45s`, `10m 2s`, `3h 4m`, `2d 5h`: the two largest units. Pure. */
export function formatLagTime(seconds: number): string {
  if (seconds <= 0) return '0s';
  if (seconds < 10) return `${Math.round(seconds * 10) / 10}s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

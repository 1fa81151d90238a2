/**
 * `conveyor offsets reset --group <g> --topic <t> --to earliest|latest|<offset>|<ISO time>`: moves a consumer group's
 * committed offsets, so its next consumer starts there. Shows the plan (partition: current → new), then commits it.
 * Refuses while the group has members (`events.group.active`, exit 3): a running consumer would overwrite the
 * offsets with its own. A time older than what a partition still holds is `events.retention.exceeded` (exit 4);
 * an offset outside a partition's log is `events.offset.out_of_range` (exit 65).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { ConveyorError } from '../failure/errors.ts';
import type { CliContext } from './context.ts';
import { EXIT_OK, settle } from './exit-codes.ts';
import { CliKafka, type GroupMember } from './kafka-tools.ts';
import { describeTarget, parseResetTarget, planTable, resetPlan, type PartitionOffsets, type ResetTarget } from './offset-plan.ts';

interface ResetOptions {
  readonly config?: string;
  readonly group: string;
  readonly topic: string;
  readonly to: string;
  readonly partition?: number[];
  readonly dryRun?: boolean;
  readonly allowTruncated?: boolean;
  readonly json?: boolean;
}

function partitionNumber(value: string, previous: number[] | undefined): number[] {
  if (!/^\d{1,9}$/.test(value)) throw new InvalidArgumentError('must be a partition number (0, 1, ...)');
  return [...(previous ?? []), Number(value)];
}

export function registerOffsets(program: Command, ctx: CliContext): void {
  const offsets = program
    .command('offsets')
    .summary("reset a consumer group's committed offsets")
    .description(
      "Consumer group offsets.\n\nExit codes: 0 done, 3 events.group.active, 4 events.retention.exceeded, 64 bad command line, " +
        '65 events.offset.out_of_range or no such topic or partition, 69 Kafka did not answer, 78 invalid configuration.',
    );
  offsets
    .command('reset')
    .summary('move a group to earliest, latest, an offset or a point in time')
    .description(
      "Commits new offsets for a consumer group on one topic, so the group's next consumer starts there. Prints the plan " +
        '(partition: current → new) before applying it. Refused while the group has members: stop its consumers first.\n\n' +
        '--to <ISO time>: per partition, the first message at or after that time. A time older than the oldest message a ' +
        'partition still holds (after records were deleted) is refused with events.retention.exceeded.\n\n' +
        'Exit codes: 0 done, 3 events.group.active, 4 events.retention.exceeded, 64 bad command line, ' +
        '65 events.offset.out_of_range or no such topic or partition, 69 Kafka did not answer, 78 invalid configuration.',
    )
    .requiredOption('--group <group>', 'the consumer group')
    .requiredOption('--topic <topic>', 'the topic')
    .requiredOption('--to <target>', 'earliest | latest | <offset> | <ISO 8601 time with zone, e.g. 2026-03-01T12:00:00Z>')
    .option('--partition <n>', 'only this partition (repeatable); default: every partition', partitionNumber)
    .option('--dry-run', 'print the plan; change nothing')
    .option('--allow-truncated', 'with a time beyond retention: start those partitions at their oldest message instead of refusing')
    .option('--json', 'print the plan (and whether it was applied) as JSON')
    .option('-c, --config <file>', 'configuration file (YAML or JSON); environment variables override it')
    .action((options: ResetOptions) => settle(ctx.io, 'offsets reset', () => reset(options, ctx)));
}

function groupActive(group: string, topic: string, members: readonly GroupMember[]): ConveyorError {
  return new ConveyorError(
    'events.group.active',
    `group ${group} has ${members.length} member(s): ${memberList(members)}. A running consumer would overwrite the new offsets; stop them (all of the group's runners) and run this again.`,
    { context: { group, topic } },
  );
}

function memberList(members: readonly GroupMember[]): string {
  return members.map((m) => `${m.clientId}@${m.host}${m.instanceId ? ` (instance ${m.instanceId})` : ''}`).join(', ');
}

async function reset(options: ResetOptions, ctx: CliContext): Promise<number> {
  const target = parseResetTarget(options.to);
  const config = ctx.loadConfig(options.config);
  const kafka = new CliKafka(config);
  try {
    const { group, topic } = options;
    if (!(await kafka.topics()).has(topic)) {
      throw new ConveyorError('conveyor.kafka.unknown_topic', `topic ${topic} does not exist on Kafka at ${config.kafka.bootstrapServers}`, { context: { topic } });
    }
    const members = await kafka.members(group);
    if (members.length > 0 && !options.dryRun) throw groupActive(group, topic, members);
    const partitions = await partitionOffsets(kafka, group, topic, target, options.partition ?? []);
    const plan = resetPlan(target, partitions);
    if (plan.outOfRange.length > 0) {
      throw new ConveyorError(
        'events.offset.out_of_range',
        `${describeTarget(target)} is outside the log of ${plan.outOfRange.map((r) => `partition ${r.partition} (offsets ${r.low} to ${r.high})`).join(', ')} of ${topic}; ` +
          'pick an offset within that range, or use earliest / latest',
        { context: { group, topic } },
      );
    }
    if (plan.beyondRetention.length > 0 && !options.allowTruncated) {
      throw new ConveyorError(
        'events.retention.exceeded',
        `${describeTarget(target)} is older than what ${topic} still holds: ` +
          plan.beyondRetention.map((b) => `partition ${b.partition} starts at offset ${b.low}, written ${new Date(b.firstRetainedAt).toISOString()}`).join('; ') +
          '. The messages in between were deleted (retention). Pick a time at or after those, or pass --allow-truncated to start those partitions at their oldest message.',
        { context: { group, topic } },
      );
    }
    const heading = `reset group ${group} on ${topic} to ${describeTarget(target)}`;
    if (options.json) {
      ctx.io.out(
        JSON.stringify(
          {
            group,
            topic,
            target: describeTarget(target),
            applied: !options.dryRun,
            partitions: plan.rows.map((r) => ({ partition: r.partition, current: r.current?.toString() ?? null, new: r.next.toString(), low: r.low.toString(), high: r.high.toString() })),
            ...(plan.beyondRetention.length > 0 ? { truncated: plan.beyondRetention.map((b) => b.partition) } : {}),
          },
          null,
          2,
        ),
      );
    } else {
      ctx.io.out(`${heading}${options.dryRun ? ' (dry run)' : ''}:`);
      for (const line of planTable(plan.rows)) ctx.io.out(line);
    }
    for (const b of plan.beyondRetention) {
      ctx.io.err(`warning: partition ${b.partition} starts at its oldest message (offset ${b.low}, ${new Date(b.firstRetainedAt).toISOString()}); older messages were deleted (--allow-truncated)`);
    }
    if (options.dryRun) {
      if (members.length > 0) ctx.io.err(`note: group ${group} has ${members.length} member(s) (${memberList(members)}): applying it would be refused until they stop`);
      if (!options.json) ctx.io.out('dry run: nothing changed');
      return EXIT_OK;
    }
    // once more right before the commit: a consumer may have joined while the plan was made
    const joined = await kafka.members(group);
    if (joined.length > 0) throw groupActive(group, topic, joined);
    await kafka.commit(
      group,
      plan.rows.map((r) => ({ topic, partition: r.partition, offset: r.next })),
    );
    if (!options.json) ctx.io.out(`applied: group ${group} starts ${plan.rows.length} partition(s) of ${topic} at the new offsets`);
    return EXIT_OK;
  } finally {
    await kafka.close();
  }
}

async function partitionOffsets(kafka: CliKafka, group: string, topic: string, target: ResetTarget, only: readonly number[]): Promise<PartitionOffsets[]> {
  let marks = await kafka.watermarks(topic);
  if (only.length > 0) {
    const missing = only.filter((p) => !marks.some((m) => m.partition === p));
    if (missing.length > 0) {
      throw new ConveyorError('conveyor.kafka.unknown_partition', `${topic} has no partition ${missing.join(', ')} (it has ${marks.length}: 0 to ${marks.length - 1})`, { context: { topic } });
    }
    marks = marks.filter((m) => only.includes(m.partition));
  }
  const committed = await kafka.committed(group, topic);
  const atTime = target.kind === 'time' ? await kafka.offsetsForTime(topic, target.ms) : undefined;
  const partitions: PartitionOffsets[] = [];
  for (const m of marks) {
    const current = committed.get(m.partition);
    const at = atTime?.get(m.partition);
    const p: PartitionOffsets = { partition: m.partition, low: m.low, high: m.high, committed: current === undefined || current < 0n ? null : current, ...(at !== undefined ? { atTime: at } : {}) };
    // only a time that lands on the first stored message of a truncated log can be beyond retention: look at it
    if (target.kind === 'time' && m.low > 0n && m.low < m.high && (at === undefined || at <= m.low)) {
      let firstRetainedAt: number | undefined;
      await kafka.read(topic, [{ partition: m.partition, from: m.low, to: m.low + 1n }], (r) => {
        firstRetainedAt = r.timestamp;
      });
      partitions.push(firstRetainedAt === undefined ? p : { ...p, firstRetainedAt });
    } else {
      partitions.push(p);
    }
  }
  return partitions;
}

/**
 * `conveyor dlq list | show <id> | replay | resolve <id>`: the dead letters of the configured handlers (or of the
 * topics and queues named with --topic / --queue). Ids, resolution records and the replay format: dlq-letters.ts;
 * Kafka: dlq-kafka.ts; RabbitMQ: dlq-rabbitmq.ts. An unknown or already resolved id is `events.dlq.not_found`
 * (exit 2).
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { ConveyorConfig } from '../config/schema.ts';
import { ConveyorError } from '../failure/errors.ts';
import { discoverHandlers } from '../handlers/discover.ts';
import type { CliContext } from './context.ts';
import { KafkaDeadLetterTopic } from './dlq-kafka.ts';
import {
  FILTER_FIELDS,
  letterJson,
  letterTable,
  originalValue,
  parseLetterId,
  selectionFrom,
  selectLetters,
  statusOf,
  type StoredLetter,
} from './dlq-letters.ts';
import { CliRabbit, RabbitDeadLetterQueue } from './dlq-rabbitmq.ts';
import type { DeadLetterSource } from './dlq-source.ts';
import { EXIT_FAILED, EXIT_OK, settle } from './exit-codes.ts';
import { CliKafka } from './kafka-tools.ts';
import { startProgress, type Progress } from './progress.ts';

interface SourceOptions {
  readonly config?: string;
  readonly topic?: string[];
  readonly queue?: string[];
}

interface SelectOptions extends SourceOptions {
  readonly filter?: string[];
  readonly since?: string;
  readonly limit?: number;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number of at least 1');
  return n;
}

function sourceOptions(command: Command): Command {
  return command
    .option('-c, --config <file>', 'configuration file (YAML or JSON); environment variables override it')
    .option('--topic <topic>', "a Kafka dead-letter topic to use instead of the handlers' (repeatable)", collect)
    .option('--queue <queue>', "a RabbitMQ dead-letter queue to use instead of the handlers' (repeatable)", collect);
}

function selectOptions(command: Command): Command {
  return sourceOptions(command)
    .option('--filter <field=value>', `only letters whose envelope field has this value (repeatable: every field must match, any of a field's values); fields: ${FILTER_FIELDS.join(', ')}`, collect)
    .option('--since <time>', 'only letters that failed at or after this ISO 8601 time (2026-03-01T12:00:00Z)')
    .option('--limit <n>', 'at most n letters, the oldest first', positiveInteger);
}

export function registerDlq(program: Command, ctx: CliContext): void {
  const dlq = program
    .command('dlq')
    .summary('list, show, replay and resolve dead letters')
    .description(
      "Dead letters of the configured handlers' dead-letter topics (Kafka) and queues (RabbitMQ), or of those named with " +
        '--topic / --queue. Ids: <topic>:<partition>:<offset> (Kafka), <queue>:<message-id> (RabbitMQ).\n\n' +
        'Exit codes: 0 done, 1 some replays failed, 2 events.dlq.not_found (unknown or already resolved id), 64 bad command line, ' +
        '69 a broker did not answer, 78 invalid configuration or handler files.',
    );

  selectOptions(dlq.command('list'))
    .summary('list the unresolved dead letters')
    .description('Lists dead letters, oldest first: unresolved ones, or with --all the replayed and resolved ones too (Kafka).')
    .option('--all', 'include letters already replayed or resolved (Kafka), with their status')
    .option('--json', 'print a JSON array of letters (id, status, envelope, ...)')
    .action((options: SelectOptions & { all?: boolean; json?: boolean }) => settle(ctx.io, 'dlq list', () => list(options, ctx)));

  dlq
    .command('show')
    .summary('print one dead letter in full')
    .description('Prints a dead letter: its status, headers and full envelope (and the original value, when it is JSON).')
    .argument('<id>', 'the letter: <topic>:<partition>:<offset> or <queue>:<message-id>')
    .option('-c, --config <file>', 'configuration file (YAML or JSON); environment variables override it')
    .option('--all', 'show it even when it was already replayed or resolved')
    .option('--json', 'print it as one JSON document')
    .action((id: string, options: { config?: string; all?: boolean; json?: boolean }) => settle(ctx.io, 'dlq show', () => show(id, options, ctx)));

  selectOptions(dlq.command('replay'))
    .summary('republish dead letters to where they came from')
    .description(
      'Republishes the original message of every unresolved dead letter that matches (key, value, headers, plus ' +
        'x-conveyor-replayed-from: <id>) to its original topic and partition (Kafka, idempotent, acks=all) or to its ' +
        "handler's queue (RabbitMQ, confirmed), then marks it resolved (Kafka) or takes it off the dead-letter queue " +
        '(RabbitMQ), each only after the broker confirmed its republish.\n\n' +
        'Exit codes: 0 all replayed (or nothing to replay), 1 some failed (listed; still unresolved), 64 bad command line, ' +
        '69 a broker did not answer, 78 invalid configuration or handler files.',
    )
    .option('--dry-run', 'list what would be replayed; change nothing')
    .action((options: SelectOptions & { dryRun?: boolean }) => settle(ctx.io, 'dlq replay', () => replay(options, ctx)));

  dlq
    .command('resolve')
    .summary('mark a dead letter resolved without replaying it')
    .description('Kafka: records the letter as resolved in <dead-letter topic>.resolved. RabbitMQ: takes it off the dead-letter queue.')
    .argument('<id>', 'the letter: <topic>:<partition>:<offset> or <queue>:<message-id>')
    .option('-c, --config <file>', 'configuration file (YAML or JSON); environment variables override it')
    .action((id: string, options: { config?: string }) => settle(ctx.io, 'dlq resolve', () => resolve(id, options, ctx)));
}

/** The sources the options name, or every dead-letter destination of the configured handlers. */
class Sources {
  readonly all: DeadLetterSource[] = [];
  private kafka: CliKafka | undefined;
  private rabbit: CliRabbit | undefined;

  private readonly config: ConveyorConfig;

  constructor(config: ConveyorConfig) {
    this.config = config;
  }

  static async open(options: SourceOptions, config: ConveyorConfig): Promise<Sources> {
    const sources = new Sources(config);
    const topics = new Set(options.topic ?? []);
    const queues = new Set(options.queue ?? []);
    if (topics.size === 0 && queues.size === 0) {
      for (const spec of await discoverHandlers(config.handlers.directory, config)) {
        for (const topic of spec.topics) {
          const destination = spec.deadLetterTopicFor(topic);
          if (destination !== null) (spec.broker === 'kafka' ? topics : queues).add(destination);
        }
      }
    }
    for (const topic of topics) sources.all.push(sources.kafkaTopic(topic));
    for (const queue of queues) sources.all.push(sources.rabbitQueue(queue));
    return sources;
  }

  kafkaTopic(topic: string): KafkaDeadLetterTopic {
    this.kafka ??= new CliKafka(this.config);
    return new KafkaDeadLetterTopic(this.kafka, this.config, topic);
  }

  rabbitQueue(queue: string): RabbitDeadLetterQueue {
    this.rabbit ??= new CliRabbit(this.config);
    return new RabbitDeadLetterQueue(this.rabbit, this.config, queue);
  }

  /** Every letter of every source, read with progress on stderr. */
  async scan(ctx: CliContext): Promise<StoredLetter[]> {
    const letters: StoredLetter[] = [];
    for (const source of this.all) {
      let progress: Progress | undefined;
      try {
        letters.push(
          ...(await source.scan((done, total) => {
            progress ??= startProgress(ctx.io, `scanned ${source.name}`, total);
            progress.update(done);
          })),
        );
      } finally {
        progress?.stop();
      }
    }
    return letters;
  }

  names(): string {
    return this.all.map((s) => s.name).join(', ') || '(no dead-letter destinations: every handler has deadLetter: false)';
  }

  /** Closes every source (RabbitMQ: unsettled letters go back to their queue), then the connections. */
  async close(): Promise<void> {
    for (const source of this.all) await source.close().catch(() => {});
    await this.kafka?.close();
    await this.rabbit?.close();
  }
}

async function list(options: SelectOptions & { all?: boolean; json?: boolean }, ctx: CliContext): Promise<number> {
  const selection = selectionFrom(options);
  const config = ctx.loadConfig(options.config);
  const sources = await Sources.open(options, config);
  try {
    const letters = await sources.scan(ctx);
    const selected = selectLetters(letters, selection);
    if (options.json) {
      ctx.io.out(JSON.stringify(selected.map(letterJson), null, 2));
      return EXIT_OK;
    }
    if (selected.length === 0) {
      ctx.io.out(`no ${selection.includeResolved ? '' : 'unresolved '}dead letters${selection.filters.size > 0 || selection.since !== undefined ? ' that match' : ''} in ${sources.names()}`);
    } else {
      for (const line of letterTable(selected, selection.includeResolved)) ctx.io.out(line);
    }
    const hidden = selection.includeResolved ? 0 : letters.filter((l) => l.resolution !== undefined).length;
    ctx.io.err(`${selected.length} dead letter(s) shown from ${sources.names()}${hidden > 0 ? `; ${hidden} already replayed or resolved (--all shows them)` : ''}`);
    return EXIT_OK;
  } finally {
    await sources.close();
  }
}

function notFound(id: string, why: string): ConveyorError {
  return new ConveyorError('events.dlq.not_found', `no dead letter ${id}: ${why}`);
}

/** The letter an id names, from its own topic or queue; `events.dlq.not_found` when there is none. */
async function findLetter(id: string, sources: Sources): Promise<{ letter: StoredLetter; source: DeadLetterSource }> {
  const address = parseLetterId(id);
  if (address === undefined) {
    throw notFound(id, 'not a dead-letter id (Kafka: <topic>:<partition>:<offset>, RabbitMQ: <queue>:<message-id>; `conveyor dlq list` shows them)');
  }
  const source = address.broker === 'kafka' ? sources.kafkaTopic(address.topic) : sources.rabbitQueue(address.queue);
  sources.all.push(source);
  const letter = await source.find(id);
  if (letter === undefined) {
    throw notFound(id, address.broker === 'kafka' ? `nothing stored at that offset of ${address.topic}` : `not in queue ${address.queue} (already replayed or resolved, or never there)`);
  }
  return { letter, source };
}

function alreadySettled(letter: StoredLetter): ConveyorError {
  const r = letter.resolution!;
  return notFound(letter.id, `already ${r.how} at ${r.resolvedAt}${r.by ? ` by ${r.by}` : ''}${r.replayedTo ? ` (to ${r.replayedTo.topic})` : ''}`);
}

async function show(id: string, options: { config?: string; all?: boolean; json?: boolean }, ctx: CliContext): Promise<number> {
  const sources = new Sources(ctx.loadConfig(options.config));
  try {
    const { letter } = await findLetter(id, sources);
    if (letter.resolution && !options.all) throw alreadySettled(letter);
    if (options.json) {
      ctx.io.out(JSON.stringify(letterJson(letter), null, 2));
      return EXIT_OK;
    }
    for (const line of describeLetter(letter)) ctx.io.out(line);
    return EXIT_OK;
  } finally {
    await sources.close();
  }
}

export function describeLetter(letter: StoredLetter): string[] {
  const r = letter.resolution;
  const lines = [
    `id:          ${letter.id}`,
    `status:      ${statusOf(letter)}${r ? ` at ${r.resolvedAt}${r.by ? ` by ${r.by}` : ''}${r.replayedTo ? ` to ${r.replayedTo.topic}${r.replayedTo.partition !== undefined ? `[${r.replayedTo.partition}]` : ''}` : ''}` : ''}`,
    `stored in:   ${letter.dlq} (${letter.broker}) at ${new Date(letter.storedAt).toISOString()}`,
    'headers:',
    ...Object.entries(letter.headers).map(([name, value]) => `  ${name}: ${value}`),
  ];
  if (!letter.envelope) return [...lines, `problem:     ${letter.problem ?? 'unreadable'}`];
  lines.push('envelope:', ...JSON.stringify(letter.envelope, null, 2).split('\n'));
  const value = originalValue(letter.envelope);
  if (value !== null) {
    try {
      const parsed: unknown = JSON.parse(value.toString('utf8'));
      lines.push('original value (JSON):', ...JSON.stringify(parsed, null, 2).split('\n'));
    } catch {
      // not JSON: the envelope shows it as it is
    }
  }
  return lines;
}

async function replay(options: SelectOptions & { dryRun?: boolean }, ctx: CliContext): Promise<number> {
  const selection = { ...selectionFrom(options), includeResolved: false };
  const config = ctx.loadConfig(options.config);
  const sources = await Sources.open(options, config);
  try {
    const letters = await sources.scan(ctx);
    const matching = selectLetters(letters, { ...selection, limit: undefined });
    const unreadable = matching.filter((l) => l.envelope === undefined);
    if (unreadable.length > 0) ctx.io.err(`skipped ${unreadable.length} message(s) that are not Conveyor dead letters (${unreadable.slice(0, 3).map((l) => l.id).join(', ')}${unreadable.length > 3 ? ', ...' : ''})`);
    const readable = matching.filter((l) => l.envelope !== undefined);
    const selected = selection.limit === undefined ? readable : readable.slice(0, selection.limit);
    if (selected.length === 0) {
      ctx.io.out(`nothing to replay: no unresolved dead letters${selection.filters.size > 0 || selection.since !== undefined ? ' that match' : ''} in ${sources.names()}`);
      return EXIT_OK;
    }
    if (options.dryRun) {
      ctx.io.out(`would replay ${selected.length} dead letter(s) (--dry-run: nothing changed):`);
      for (const line of letterTable(selected, false)) ctx.io.out(line);
      return EXIT_OK;
    }
    const progress = startProgress(ctx.io, 'replayed', selected.length);
    const failures: Array<{ id: string; error: Error }> = [];
    let done = 0;
    try {
      for (const source of sources.all) {
        const mine = selected.filter((l) => l.dlq === source.name && l.broker === source.broker);
        if (mine.length === 0) continue;
        await source.replay(mine, ({ letter, error }) => {
          done += 1;
          progress.update(done);
          if (error) failures.push({ id: letter.id, error });
        });
      }
    } finally {
      progress.stop();
    }
    for (const { id, error } of failures) ctx.io.err(`failed ${id}: ${error instanceof ConveyorError ? `${error.code}: ` : ''}${error.message}`);
    const replayed = selected.length - failures.length;
    ctx.io.out(`replayed ${replayed} of ${selected.length} dead letter(s) from ${sources.names()}${failures.length > 0 ? `; ${failures.length} failed (listed above; still unresolved)` : ''}`);
    return failures.length > 0 ? EXIT_FAILED : EXIT_OK;
  } finally {
    await sources.close();
  }
}

async function resolve(id: string, options: { config?: string }, ctx: CliContext): Promise<number> {
  const sources = new Sources(ctx.loadConfig(options.config));
  try {
    const { letter, source } = await findLetter(id, sources);
    if (letter.resolution) throw alreadySettled(letter);
    await source.resolve(letter);
    ctx.io.out(`resolved ${letter.id} (not replayed)`);
    return EXIT_OK;
  } finally {
    await sources.close();
  }
}

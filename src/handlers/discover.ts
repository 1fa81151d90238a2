/**
 * Handler discovery: every `*.js`, `*.mjs` or `*.ts` file in the handlers directory is imported and its
 * default export checked. Any file that does not import, or declares nonsense, stops the runner before
 * anything starts, with every problem of every file listed.
 */
import { readdir } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ConveyorConfig } from '../config/schema.ts';
import { HandlerDeclarationError } from '../failure/errors.ts';
import type { BackoffPolicy } from '../failure/backoff.ts';
import { ORDERING_MODES, type OrderingMode } from '../scheduling/ordering.ts';
import { isHandler, type Broker, type Deserializer, type Handler } from './define-handler.ts';

/** A handler as the runtime uses it: declaration checked and defaults filled in from the config. */
export interface HandlerSpec {
  readonly name: string;
  readonly file: string;
  readonly url: string;
  /** Where it consumes from. */
  readonly broker: Broker;
  /** Kafka topics; for RabbitMQ the one queue. */
  readonly topics: readonly string[];
  /** RabbitMQ handlers only. */
  readonly queue?: QueueSpec;
  readonly group: string;
  /** Which of its messages may run at the same time (src/scheduling/). */
  readonly ordering: OrderingMode;
  /** Most runs of this handler at once in this process (each run: one message, or a partition's or key's consecutive ones). */
  readonly concurrency: number;
  /** Retries after the first failed attempt. */
  readonly maxRetries: number;
  readonly backoff: BackoffPolicy;
  readonly timeoutMs: number;
  readonly deserialize: Deserializer;
  /** Dead-letter topic (RabbitMQ: queue) for a source topic, or null when the handler opted out (retries forever). */
  deadLetterTopicFor(topic: string): string | null;
}

export interface QueueSpec {
  readonly name: string;
  /** Bound to this exchange with `routingKey`, when declared. */
  readonly exchange?: string;
  readonly routingKey: string;
  readonly exchangeType: 'direct' | 'topic' | 'fanout' | 'headers';
  /** basic.qos: unacknowledged deliveries the broker may send ahead. */
  readonly prefetch: number;
}

const HANDLER_EXTENSIONS = new Set(['.js', '.mjs', '.ts', '.mts']);
const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;
const DESERIALIZERS: readonly Deserializer[] = ['json', 'string', 'buffer'];

export function isTopicName(name: unknown): name is string {
  return typeof name === 'string' && TOPIC.test(name) && name !== '.' && name !== '..';
}

// AMQP allows 255 bytes; 200 leaves room for the .retry.<n> and .dlq queues Conveyor derives from it
const QUEUE = /^[a-zA-Z0-9._:\/-]{1,200}$/;
const EXCHANGE_TYPES = ['direct', 'topic', 'fanout', 'headers'] as const;

/** A queue name Conveyor may declare: AMQP reserves the `amq.` prefix for the broker. */
export function isQueueName(name: unknown): name is string {
  return typeof name === 'string' && QUEUE.test(name) && !name.startsWith('amq.');
}

const isIntIn = (x: unknown, min: number, max: number): boolean => Number.isInteger(x) && (x as number) >= min && (x as number) <= max;

/** The RabbitMQ part of a declaration. */
function queueProblems(d: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const kafkaOnly = ['topic', 'topics', 'group'].filter((k) => d[k] !== undefined);
  if (kafkaOnly.length > 0) problems.push(`declare either a RabbitMQ queue or Kafka topics, not both (${['queue', ...kafkaOnly].join(', ')} given)`);
  if (!isQueueName(d.queue)) {
    problems.push(`queue must be a RabbitMQ queue name (1-200 letters, digits, '.', '_', ':', '/' or '-', not starting with "amq."); got ${JSON.stringify(d.queue)}`);
  }
  if (d.exchange !== undefined && !(typeof d.exchange === 'string' && QUEUE.test(d.exchange))) {
    problems.push(`exchange must be an exchange name (1-200 letters, digits, '.', '_', ':', '/' or '-'); got ${JSON.stringify(d.exchange)}`);
  }
  if (d.routingKey !== undefined) {
    if (d.exchange === undefined) problems.push('routingKey needs an exchange to bind the queue to: add exchange: "<name>"');
    else if (typeof d.routingKey !== 'string' || d.routingKey.length > 255) problems.push(`routingKey must be a string of at most 255 characters; got ${JSON.stringify(d.routingKey)}`);
  }
  if (d.exchangeType !== undefined) {
    if (d.exchange === undefined) problems.push('exchangeType needs an exchange: add exchange: "<name>"');
    else if (!EXCHANGE_TYPES.includes(d.exchangeType as never)) problems.push(`exchangeType must be one of ${EXCHANGE_TYPES.join(', ')}; got ${JSON.stringify(d.exchangeType)}`);
  }
  if (d.ordering === 'partition' && isIntIn(d.concurrency, 2, MAX_CONCURRENCY)) {
    problems.push(`a queue is one ordered stream: ordering "partition" runs its messages one at a time, so concurrency ${d.concurrency as number} would never be used; declare ordering: "unordered" (any order) or "key" (in order per routing key), or leave concurrency out`);
  }
  if (d.prefetch !== undefined) {
    if (!isIntIn(d.prefetch, 1, 65_535)) problems.push(`prefetch must be an integer from 1 to 65535; got ${JSON.stringify(d.prefetch)}`);
    else if (isIntIn(d.concurrency, 1, MAX_CONCURRENCY) && (d.prefetch as number) < (d.concurrency as number)) {
      problems.push(`prefetch (${d.prefetch as number}) must be at least concurrency (${d.concurrency as number}), or some of the parallel slots never get a message`);
    }
  }
  if (d.deadLetter !== undefined && d.deadLetter !== false) {
    const dl = d.deadLetter as { queue?: unknown };
    if (typeof dl !== 'object' || dl === null || !isQueueName(dl.queue)) problems.push('deadLetter must be false or { queue: "<queue name>" } for a RabbitMQ handler');
  }
  return problems;
}

const RABBIT_ONLY = ['exchange', 'routingKey', 'exchangeType', 'prefetch'] as const;

/** Most runs of one handler at once in a process. */
export const MAX_CONCURRENCY = 4096;
/** A Kafka handler's default concurrency: every partition of a typical assignment progresses at once. */
export const KAFKA_DEFAULT_CONCURRENCY = 64;
/**
 * A queue handler's default prefetch floor: enough deliveries ahead for the lane to hand workers micro-batches
 * (measured, no-op: 100 gave tasks of 12-17 messages and 0.78 of the bare consumer at the same prefetch; 250 gave
 * ~30 and 0.88). RabbitMQ's own guidance puts the best throughput at 100-300. The memory budget still caps it.
 */
export const QUEUE_DEFAULT_PREFETCH = 250;

/** Everything wrong with a declaration, one line each; empty when it is sound. Pure. */
export function declarationProblems(decl: unknown): string[] {
  if (!isHandler(decl)) {
    return ['default export is not a handler: export default defineHandler({ topic, handle(message, ctx) { ... } })'];
  }
  const d = decl as Handler & Record<string, unknown>;
  const problems: string[] = [];
  if (typeof d.handle !== 'function') problems.push('handle must be a function: async handle(message, ctx)');
  if (d.name !== undefined && (typeof d.name !== 'string' || !/^[a-zA-Z0-9._-]{1,100}$/.test(d.name))) {
    problems.push(`name must be 1-100 characters of letters, digits, '.', '_' or '-'; got ${JSON.stringify(d.name)}`);
  }
  const hasTopic = d.topic !== undefined;
  const hasTopics = d.topics !== undefined;
  if (d.queue !== undefined) problems.push(...queueProblems(d));
  else {
    for (const k of RABBIT_ONLY) if (d[k] !== undefined) problems.push(`${k} applies to RabbitMQ handlers only (declare queue: "<name>")`);
  }
  if (d.ordering !== undefined && !ORDERING_MODES.includes(d.ordering as OrderingMode)) {
    problems.push(`ordering must be one of ${ORDERING_MODES.map((m) => `"${m}"`).join(', ')}; got ${JSON.stringify(d.ordering)}`);
  }
  if (d.concurrency !== undefined && !isIntIn(d.concurrency, 1, MAX_CONCURRENCY)) {
    problems.push(`concurrency must be an integer from 1 to ${MAX_CONCURRENCY} (runs of this handler at once in the process); got ${JSON.stringify(d.concurrency)}`);
  }
  if (hasTopic && hasTopics) problems.push('declare either topic or topics, not both');
  if (!hasTopic && !hasTopics && d.queue === undefined) problems.push('declares no topic or queue: add topic: "<name>", topics: ["<name>", ...] or queue: "<name>"');
  if (hasTopic && !isTopicName(d.topic)) problems.push(`topic must be a Kafka topic name ([a-zA-Z0-9._-], 1-249 characters); got ${JSON.stringify(d.topic)}`);
  if (hasTopics) {
    if (!Array.isArray(d.topics) || d.topics.length === 0) problems.push('topics must be a non-empty array of topic names');
    else for (const t of d.topics) if (!isTopicName(t)) problems.push(`topics: ${JSON.stringify(t)} is not a Kafka topic name`);
  }
  if (d.group !== undefined && (typeof d.group !== 'string' || d.group.length === 0 || d.group.length > 255)) {
    problems.push(`group must be a non-empty string of at most 255 characters; got ${JSON.stringify(d.group)}`);
  }
  if (d.retry !== undefined) {
    const r = d.retry as Record<string, unknown>;
    if (typeof r !== 'object' || r === null) problems.push('retry must be an object: { attempts, backoffMs }');
    else {
      if (r.attempts !== undefined && !(Number.isInteger(r.attempts) && (r.attempts as number) >= 0 && (r.attempts as number) <= 100)) {
        problems.push(`retry.attempts must be an integer from 0 to 100 (retries after the first failure); got ${JSON.stringify(r.attempts)}`);
      }
      if (r.backoffMs !== undefined && !(typeof r.backoffMs === 'number' && r.backoffMs >= 0 && r.backoffMs <= 3_600_000)) {
        problems.push(`retry.backoffMs must be a number of milliseconds from 0 to 3600000; got ${JSON.stringify(r.backoffMs)}`);
      }
      if (r.maxBackoffMs !== undefined && !(typeof r.maxBackoffMs === 'number' && r.maxBackoffMs >= 0 && r.maxBackoffMs <= 3_600_000)) {
        problems.push(`retry.maxBackoffMs must be a number of milliseconds from 0 to 3600000; got ${JSON.stringify(r.maxBackoffMs)}`);
      }
    }
  }
  if (d.timeoutMs !== undefined && !(Number.isInteger(d.timeoutMs) && (d.timeoutMs as number) >= 1 && (d.timeoutMs as number) <= 3_600_000)) {
    problems.push(`timeoutMs must be an integer from 1 to 3600000; got ${JSON.stringify(d.timeoutMs)}`);
  }
  if (d.queue === undefined && d.deadLetter !== undefined && d.deadLetter !== false) {
    const dl = d.deadLetter as { topic?: unknown };
    if (typeof dl !== 'object' || dl === null || !isTopicName(dl.topic)) {
      problems.push('deadLetter must be false or { topic: "<kafka topic name>" }');
    }
  }
  if (d.deserialize !== undefined && !DESERIALIZERS.includes(d.deserialize as Deserializer)) {
    problems.push(`deserialize must be one of ${DESERIALIZERS.join(', ')}; got ${JSON.stringify(d.deserialize)}`);
  }
  return problems;
}

/** Fills a sound declaration's defaults from the configuration. Pure. */
export function toSpec(decl: Handler, file: string, config: ConveyorConfig): HandlerSpec {
  const name = decl.name ?? basename(file, extname(file));
  const queue = decl.queue;
  const topics = queue !== undefined ? [queue] : decl.topics ? [...decl.topics] : [decl.topic!];
  const baseMs = decl.retry?.backoffMs ?? config.retry.backoffBaseSeconds * 1000;
  const maxMs = Math.max(baseMs, decl.retry?.maxBackoffMs ?? config.retry.backoffMaxSeconds * 1000);
  const deadLetter = decl.deadLetter;
  // a queue is one ordered stream: by default it keeps the order of delivery, unless it was given concurrency
  const concurrency = decl.concurrency ?? (queue !== undefined ? 1 : KAFKA_DEFAULT_CONCURRENCY);
  const ordering: OrderingMode = decl.ordering ?? (queue !== undefined && concurrency > 1 ? 'unordered' : 'partition');
  return {
    name,
    file,
    url: pathToFileURL(file).href,
    broker: queue !== undefined ? 'rabbitmq' : 'kafka',
    topics,
    ...(queue !== undefined
      ? {
          queue: {
            name: queue,
            ...(decl.exchange !== undefined ? { exchange: decl.exchange } : {}),
            routingKey: decl.routingKey ?? '#',
            exchangeType: decl.exchangeType ?? 'topic',
            prefetch: decl.prefetch ?? Math.min(65_535, Math.max(QUEUE_DEFAULT_PREFETCH, 2 * concurrency)),
          },
        }
      : {}),
    group: decl.group ?? `${config.kafka.environment}.${config.kafka.group}.${name}`,
    ordering,
    concurrency,
    maxRetries: decl.retry?.attempts ?? config.retry.maxAttempts,
    backoff: { baseMs, maxMs },
    timeoutMs: decl.timeoutMs ?? config.handlers.timeoutMs,
    deserialize: decl.deserialize ?? 'json',
    deadLetterTopicFor: (topic) => {
      if (deadLetter === false) return null;
      if (deadLetter && 'queue' in deadLetter) return deadLetter.queue;
      if (deadLetter && 'topic' in deadLetter) return deadLetter.topic;
      // KAFKA_DEAD_LETTER_TOPIC is a Kafka topic: RabbitMQ handlers keep their own <queue>.dlq
      return queue === undefined && config.kafka.deadLetterTopic ? config.kafka.deadLetterTopic : `${topic}.dlq`;
    },
  };
}

/** Stable code of a handler that consumes what another handler file already consumes in the same way. */
export const SHARED_CONSUMER = 'conveyor.handler.shared_consumer';

/**
 * Handlers of different files that would share their messages: two Kafka handlers in one consumer group on one
 * topic (an explicit `group`, or one equal to another handler's derived group) become two members of that group
 * and split the topic's partitions between them, each seeing only part of it; two RabbitMQ handlers on one queue
 * compete for its messages likewise. One error per file, naming the other files. Pure.
 */
export function sharedConsumers(specs: readonly HandlerSpec[]): HandlerDeclarationError[] {
  const byConsumer = new Map<string, { readonly topic: string; readonly specs: HandlerSpec[] }>();
  for (const spec of specs) {
    for (const topic of new Set(spec.topics)) {
      const key = spec.broker === 'rabbitmq' ? `rabbitmq\0${topic}` : `kafka\0${spec.group}\0${topic}`;
      const entry = byConsumer.get(key);
      if (entry === undefined) byConsumer.set(key, { topic, specs: [spec] });
      else entry.specs.push(spec);
    }
  }
  const problems = new Map<HandlerSpec, string[]>();
  for (const { topic, specs: same } of byConsumer.values()) {
    if (same.length < 2) continue;
    for (const spec of same) {
      const others = same.filter((o) => o !== spec).map((o) => `${o.file} (handler "${o.name}")`).join(', ');
      const problem = spec.broker === 'rabbitmq'
        ? `queue "${topic}" is also consumed by ${others}: the handlers would compete for its messages, each getting only some of them; consume the queue in one handler file`
        : `group "${spec.group}" on topic "${topic}" is also used by ${others}: the handlers would split the topic's partitions between them, each seeing only part of it; give each handler its own group (or leave group out: it defaults to one per handler name), or consume the topic in one handler file`;
      problems.set(spec, [...(problems.get(spec) ?? []), `${SHARED_CONSUMER}: ${problem}`]);
    }
  }
  return [...problems].map(([spec, lines]) => new HandlerDeclarationError(spec.file, lines, undefined, SHARED_CONSUMER));
}

export class HandlerDiscoveryError extends Error {
  readonly code = 'conveyor.handler.invalid';
  readonly failures: readonly HandlerDeclarationError[];
  constructor(failures: readonly HandlerDeclarationError[], message?: string) {
    super(message ?? `${failures.length} handler file(s) cannot be used:\n${failures.map((f) => f.message).join('\n')}`);
    this.failures = failures;
  }
}

export async function discoverHandlers(directory: string, config: ConveyorConfig): Promise<HandlerSpec[]> {
  const dir = resolve(directory);
  let entries: string[];
  try {
    entries = (await readdir(dir)).filter((f) => HANDLER_EXTENSIONS.has(extname(f)) && !f.endsWith('.d.ts') && !f.startsWith('_') && !f.startsWith('.'));
  } catch (err) {
    throw new HandlerDiscoveryError([], `handlers directory ${dir} cannot be read: ${(err as Error).message}`);
  }
  entries.sort();
  const failures: HandlerDeclarationError[] = [];
  const specs: HandlerSpec[] = [];
  for (const entry of entries) {
    const file = join(dir, entry);
    let mod: { default?: unknown };
    try {
      mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
    } catch (err) {
      failures.push(new HandlerDeclarationError(file, [`cannot be imported: ${(err as Error).message}`], err));
      continue;
    }
    const problems = declarationProblems(mod.default);
    if (problems.length > 0) failures.push(new HandlerDeclarationError(file, problems));
    else specs.push(toSpec(mod.default as Handler, file, config));
  }
  const byName = Map.groupBy(specs, (s) => s.name);
  for (const [name, same] of byName) {
    if (same.length > 1) {
      for (const s of same) failures.push(new HandlerDeclarationError(s.file, [`handler name "${name}" is also used by ${same.filter((o) => o !== s).map((o) => o.file).join(', ')}`]));
    }
  }
  failures.push(...sharedConsumers(specs));
  if (failures.length > 0) throw new HandlerDiscoveryError(failures);
  if (specs.length === 0) throw new HandlerDiscoveryError([], `no handler files (*.js, *.mjs, *.ts) in ${dir}`);
  return specs;
}

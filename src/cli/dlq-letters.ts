/**
 * Dead letters as the `conveyor dlq` commands see them: their ids, the envelope read back (src/failure/dead-letter.ts
 * wrote it), resolution records, filters, and the message a replay sends. Pure: the broker I/O is in
 * dlq-kafka.ts and dlq-rabbitmq.ts.
 *
 * Ids: a Kafka dead letter is `<dead-letter topic>:<partition>:<offset>`; a RabbitMQ one is
 * `<dead-letter queue>:<message-id>` (the runner gives every RabbitMQ dead letter a random UUID message-id).
 */
import { envelopeHeaders, kafkaHeaderObject, type DeadLetterEnvelope, type HeaderPair } from '../failure/dead-letter.ts';
import { EXCHANGE_HEADER, ROUTING_KEY_HEADER } from '../rabbitmq/retry-queues.ts';
import { UsageError } from './exit-codes.ts';
import { parseIsoTime } from './iso-time.ts';
import { formatTable } from './text-table.ts';

/** Header every replayed message carries: the id of the dead letter it came from. */
export const REPLAYED_FROM_HEADER = 'x-conveyor-replayed-from';

export type Broker = 'kafka' | 'rabbitmq';

export type LetterAddress =
  | { readonly broker: 'kafka'; readonly topic: string; readonly partition: number; readonly offset: bigint }
  | { readonly broker: 'rabbitmq'; readonly queue: string; readonly messageId: string };

export function kafkaLetterId(topic: string, partition: number, offset: bigint | number | string): string {
  return `${topic}:${partition}:${offset}`;
}

export function rabbitLetterId(queue: string, messageId: string): string {
  return `${queue}:${messageId}`;
}

const KAFKA_ID = /^(?<topic>[a-zA-Z0-9._-]{1,249}):(?<partition>\d{1,9}):(?<offset>\d{1,19})$/;
const RABBIT_ID = /^(?<queue>.+):(?<messageId>[^:]+)$/;

/** What an id points at; undefined when it is neither form. */
export function parseLetterId(id: string): LetterAddress | undefined {
  const kafka = KAFKA_ID.exec(id)?.groups;
  if (kafka) return { broker: 'kafka', topic: kafka.topic!, partition: Number(kafka.partition), offset: BigInt(kafka.offset!) };
  const rabbit = RABBIT_ID.exec(id)?.groups;
  if (rabbit) return { broker: 'rabbitmq', queue: rabbit.queue!, messageId: rabbit.messageId! };
  return undefined;
}

/** How a Kafka dead letter was settled; stored in `<dead-letter topic>.resolved`, keyed by the letter's id. */
export interface Resolution {
  readonly id: string;
  readonly resolvedAt: string;
  readonly how: 'replayed' | 'resolved';
  /** Who ran the command (the OS user), when known. */
  readonly by?: string;
  /** replayed: where the message went. */
  readonly replayedTo?: { readonly topic: string; readonly partition?: number };
}

export function resolutionTopic(deadLetterTopic: string): string {
  return `${deadLetterTopic}.resolved`;
}

export function decodeResolution(value: Buffer | null): Resolution | undefined {
  if (value === null) return undefined;
  try {
    const parsed = JSON.parse(value.toString('utf8')) as Partial<Resolution>;
    if (typeof parsed.id !== 'string' || (parsed.how !== 'replayed' && parsed.how !== 'resolved') || typeof parsed.resolvedAt !== 'string') return undefined;
    return parsed as Resolution;
  } catch {
    return undefined;
  }
}

/** A dead letter as stored, read back. */
export interface StoredLetter {
  readonly id: string;
  readonly broker: Broker;
  /** The dead-letter topic or queue it is in. */
  readonly dlq: string;
  /** Absent when the message is not a Conveyor dead letter (see `problem`). */
  readonly envelope?: DeadLetterEnvelope;
  readonly problem?: string;
  /** Kafka: the dead letter's own key (the original key, as bytes). */
  readonly key: Buffer | null;
  readonly headers: Readonly<Record<string, string>>;
  /** When the dead letter was stored (ms since the epoch), per the broker. */
  readonly storedAt: number;
  /** Kafka: set once the letter was replayed or resolved. RabbitMQ letters leave the queue instead. */
  readonly resolution?: Resolution;
}

/** The envelope in a dead letter's value, or why it is not one. */
export function parseEnvelope(value: Buffer | null): { envelope: DeadLetterEnvelope } | { problem: string } {
  if (value === null) return { problem: 'empty value (not a Conveyor dead letter)' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch {
    return { problem: 'value is not JSON (not a Conveyor dead letter)' };
  }
  const e = parsed as Partial<DeadLetterEnvelope> | null;
  const m = e?.original_message;
  if (
    typeof e !== 'object' ||
    e === null ||
    typeof e.original_topic !== 'string' ||
    typeof m !== 'object' ||
    m === null ||
    (m.value !== null && typeof m.value !== 'string') ||
    (m.value_encoding !== 'utf8' && m.value_encoding !== 'base64')
  ) {
    return { problem: 'JSON without original_topic and original_message (not a Conveyor dead letter)' };
  }
  return { envelope: e as DeadLetterEnvelope };
}

export function statusOf(letter: StoredLetter): 'unresolved' | 'replayed' | 'resolved' {
  return letter.resolution?.how ?? 'unresolved';
}

/** Envelope fields `--filter field=value` may name. */
export const FILTER_FIELDS = ['error_type', 'error_class', 'error_code', 'original_topic', 'handler', 'group', 'correlation_id', 'key'] as const;
export type FilterField = (typeof FILTER_FIELDS)[number];

export interface LetterSelection {
  /** field → accepted values: a letter must match every field, any one of its values. */
  readonly filters: ReadonlyMap<FilterField, ReadonlySet<string>>;
  /** failure_timestamp at or after this (ms). */
  readonly since?: number;
  /** Include replayed and resolved letters. */
  readonly includeResolved: boolean;
  /** At most this many (the oldest first). */
  readonly limit?: number;
}

/** `--filter error_type=Error --filter handler=orders` → the filter map; UsageError for anything else. */
export function parseFilters(args: readonly string[]): Map<FilterField, Set<string>> {
  const filters = new Map<FilterField, Set<string>>();
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const field = (eq > 0 ? arg.slice(0, eq) : arg) as FilterField;
    if (eq <= 0 || !FILTER_FIELDS.includes(field)) {
      throw new UsageError(`--filter ${JSON.stringify(arg)}: write field=value with field one of ${FILTER_FIELDS.join(', ')}`);
    }
    const values = filters.get(field) ?? new Set<string>();
    values.add(arg.slice(eq + 1));
    filters.set(field, values);
  }
  return filters;
}

export function selectionFrom(options: { filter?: readonly string[]; since?: string; all?: boolean; limit?: number }): LetterSelection {
  return {
    filters: parseFilters(options.filter ?? []),
    ...(options.since !== undefined ? { since: parseIsoTime(options.since, '--since') } : {}),
    includeResolved: options.all === true,
    ...(options.limit !== undefined ? { limit: options.limit } : {}),
  };
}

function fieldOf(envelope: DeadLetterEnvelope, field: FilterField): string | null {
  if (field === 'key') return envelope.original_message.key;
  const value = (envelope as unknown as Record<string, unknown>)[field];
  return value === undefined || value === null ? null : String(value);
}

export function matches(letter: StoredLetter, selection: LetterSelection): boolean {
  if (!selection.includeResolved && letter.resolution !== undefined) return false;
  const hasCriteria = selection.filters.size > 0 || selection.since !== undefined;
  // a message that is not a dead letter has no fields to match: shown when nothing is asked of it, never replayed
  if (letter.envelope === undefined) return !hasCriteria;
  const envelope = letter.envelope;
  for (const [field, values] of selection.filters) {
    const value = fieldOf(envelope, field);
    if (value === null || !values.has(value)) return false;
  }
  if (selection.since !== undefined) {
    const failedAt = Date.parse(envelope.failure_timestamp);
    if (Number.isNaN(failedAt) || failedAt < selection.since) return false;
  }
  return true;
}

export function selectLetters(letters: readonly StoredLetter[], selection: LetterSelection): StoredLetter[] {
  const selected = letters.filter((l) => matches(l, selection));
  return selection.limit === undefined ? selected : selected.slice(0, selection.limit);
}

/** The original value's bytes (`value_encoding` says whether the envelope holds text or base64). */
export function originalValue(envelope: DeadLetterEnvelope): Buffer | null {
  const { value, value_encoding: encoding } = envelope.original_message;
  if (value === null) return null;
  return Buffer.from(value, encoding === 'base64' ? 'base64' : 'utf8');
}

export interface KafkaReplay {
  readonly topic: string;
  readonly partition: number;
  readonly key: Buffer | string | null;
  readonly value: Buffer | null;
  /** The original headers as bytes (an array per repeated name), then `x-conveyor-replayed-from`. */
  readonly headers: Record<string, Buffer | Buffer[]>;
}

/** The original record, read back from its topic for a letter written without its value (`value_omitted`). */
export interface SourceRecord {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: readonly HeaderPair[];
}

/** The envelope left the original value out (too large for the dead-letter topic): a replay reads it from the source. */
export function needsSource(envelope: DeadLetterEnvelope): boolean {
  return envelope.original_message.value_omitted !== undefined || envelope.original_message.headers_omitted !== undefined;
}

/**
 * A Kafka letter's original message, back to the topic and partition it came from: same key (the dead letter's
 * own key holds its bytes), value and headers byte for byte, plus `x-conveyor-replayed-from: <id>`. For a letter
 * written without its value, `source` is the original record read from its topic: its value, and its headers when
 * the envelope left them out too.
 */
export function kafkaReplay(letter: StoredLetter & { envelope: DeadLetterEnvelope }, source?: SourceRecord): KafkaReplay {
  const { envelope } = letter;
  const m = envelope.original_message;
  const headers = m.headers_omitted !== undefined && source ? source.headers : envelopeHeaders(envelope);
  return {
    topic: envelope.original_topic,
    partition: m.partition,
    key: letter.key ?? m.key,
    value: m.value_omitted !== undefined && source ? source.value : originalValue(envelope),
    headers: kafkaHeaderObject([...headers, [REPLAYED_FROM_HEADER, Buffer.from(letter.id, 'utf8')]]),
  };
}

export interface RabbitReplay {
  /** The handler's queue: published through the default exchange with the queue's name as routing key. */
  readonly queue: string;
  readonly value: Buffer;
  readonly headers: Record<string, string>;
}

/**
 * A RabbitMQ letter's original message, straight back to the queue it was consumed from (not through its exchange,
 * whose other queues handled it already). The exchange and routing key it was first published with travel in the
 * headers the runner's retries use, so the handler sees the original routing key as `message.key`.
 */
export function rabbitReplay(letter: StoredLetter & { envelope: DeadLetterEnvelope }): RabbitReplay {
  const { envelope } = letter;
  const original = envelope.original_message;
  return {
    queue: envelope.original_topic,
    value: originalValue(envelope) ?? Buffer.alloc(0),
    headers: {
      ...Object.fromEntries(envelopeHeaders(envelope).map(([name, value]) => [name, value?.toString('utf8') ?? ''])),
      [REPLAYED_FROM_HEADER]: letter.id,
      [EXCHANGE_HEADER]: original.exchange ?? '',
      [ROUTING_KEY_HEADER]: original.key ?? envelope.original_topic,
    },
  };
}

/** Where the original message was: `topic[partition]@offset`, or the queue. */
export function originOf(letter: StoredLetter): string {
  const e = letter.envelope;
  if (!e) return '-';
  return letter.broker === 'kafka' ? `${e.original_topic}[${e.original_message.partition}]@${e.original_message.offset}` : e.original_topic;
}

export function letterTable(letters: readonly StoredLetter[], withStatus: boolean): string[] {
  return formatTable(letters, [
    { header: 'ID', value: (l) => l.id },
    ...(withStatus ? [{ header: 'STATUS', value: (l: StoredLetter) => statusOf(l) }] : []),
    { header: 'FAILED AT', value: (l) => l.envelope?.failure_timestamp ?? new Date(l.storedAt).toISOString() },
    { header: 'HANDLER', value: (l) => l.envelope?.handler ?? '-' },
    { header: 'ERROR', value: (l) => (l.envelope ? `${l.envelope.error_class}/${l.envelope.error_type}` : 'unreadable') },
    { header: 'ORIGIN', value: (l) => originOf(l) },
    { header: 'KEY', value: (l) => l.envelope?.original_message.key ?? '-', maxWidth: 24 },
    { header: 'REASON', value: (l) => l.envelope?.failure_reason ?? l.problem ?? '', maxWidth: 70 },
  ]);
}

/** A letter as `--json` prints it. */
export function letterJson(letter: StoredLetter): Record<string, unknown> {
  return {
    id: letter.id,
    status: statusOf(letter),
    broker: letter.broker,
    dlq: letter.dlq,
    storedAt: new Date(letter.storedAt).toISOString(),
    headers: letter.headers,
    ...(letter.resolution ? { resolution: letter.resolution } : {}),
    ...(letter.envelope ? { envelope: letter.envelope } : { problem: letter.problem }),
  };
}

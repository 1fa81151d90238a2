/**
 * A Kafka dead-letter topic for the CLI. Kafka cannot delete one record, so a letter's resolution is a record in
 * the compacted topic `<dead-letter topic>.resolved` (key: the letter's id; value: JSON {id, resolvedAt, how, by,
 * replayedTo}); a letter with such a record is resolved. Replays and resolution records are published idempotently
 * with acks=all, a resolution only after the replayed message was acknowledged.
 */
import { userInfo } from 'node:os';
import type { ConveyorConfig } from '../config/schema.ts';
import type { DeadLetterEnvelope } from '../failure/dead-letter.ts';
import { KafkaPublisher, type PublishMessage } from '../publish/kafka-publisher.ts';
import { ConveyorError } from '../failure/errors.ts';
import {
  decodeResolution,
  kafkaLetterId,
  kafkaReplay,
  needsSource,
  parseEnvelope,
  parseLetterId,
  resolutionTopic,
  type KafkaReplay,
  type Resolution,
  type SourceRecord,
  type StoredLetter,
} from './dlq-letters.ts';
import type { DeadLetterSource, ReplayOutcome } from './dlq-source.ts';
import type { CliKafka, TopicRecord } from './kafka-tools.ts';

/** Letters republished per request. */
const CHUNK = 100;

function operator(): string | undefined {
  try {
    return userInfo().username || undefined;
  } catch {
    return undefined;
  }
}

export class KafkaDeadLetterTopic implements DeadLetterSource {
  readonly broker = 'kafka' as const;
  readonly name: string;
  private readonly kafka: CliKafka;
  private readonly config: ConveyorConfig;
  private publisher: KafkaPublisher | undefined;

  constructor(kafka: CliKafka, config: ConveyorConfig, topic: string) {
    this.kafka = kafka;
    this.config = config;
    this.name = topic;
  }

  async scan(onProgress?: (done: number, total: number) => void): Promise<StoredLetter[]> {
    const topics = await this.kafka.topics();
    if (!topics.has(this.name)) return [];
    const resolutions = topics.has(resolutionTopic(this.name)) ? await this.resolutions() : new Map<string, Resolution>();
    const marks = await this.kafka.watermarks(this.name);
    const total = marks.reduce((n, m) => n + Number(m.high - m.low), 0);
    const letters: StoredLetter[] = [];
    await this.kafka.read(
      this.name,
      marks.map((m) => ({ partition: m.partition, from: m.low, to: m.high })),
      (record) => letters.push(this.letter(record, resolutions)),
      onProgress && ((done) => onProgress(done, total)),
    );
    // partitions are read interleaved: show them in order, each oldest first
    return letters.sort((a, b) => partitionOf(a) - partitionOf(b) || compareOffsets(a, b));
  }

  async find(id: string): Promise<StoredLetter | undefined> {
    const address = parseLetterId(id);
    if (address?.broker !== 'kafka' || address.topic !== this.name) return undefined;
    const topics = await this.kafka.topics();
    if (!topics.has(this.name)) return undefined;
    const mark = (await this.kafka.watermarks(this.name)).find((m) => m.partition === address.partition);
    if (!mark || address.offset < mark.low || address.offset >= mark.high) return undefined;
    const records: TopicRecord[] = [];
    await this.kafka.read(this.name, [{ partition: address.partition, from: address.offset, to: address.offset + 1n }], (r) => records.push(r));
    const record = records.find((r) => r.offset === address.offset);
    if (!record) return undefined; // deleted meanwhile
    const resolutions = topics.has(resolutionTopic(this.name)) ? await this.resolutions() : new Map<string, Resolution>();
    return this.letter(record, resolutions);
  }

  async replay(all: readonly StoredLetter[], onOutcome: (outcome: ReplayOutcome) => void): Promise<void> {
    await this.kafka.ensureCompactedTopic(resolutionTopic(this.name));
    const publisher = this.replayPublisher();
    for (const letters of chunksByTopic(all)) {
      // letters written without their value: read it from the source topic first (those it is gone from fail here)
      const chunk: StoredLetter[] = [];
      const replays: KafkaReplay[] = [];
      for (const letter of letters) {
        const envelope = letter.envelope!;
        try {
          replays.push(kafkaReplay(letter as StoredLetter & { envelope: DeadLetterEnvelope }, needsSource(envelope) ? await this.sourceRecord(letter.id, envelope) : undefined));
          chunk.push(letter);
        } catch (err) {
          onOutcome({ letter, error: err as Error });
        }
      }
      if (chunk.length === 0) continue;
      const topic = replays[0]!.topic;
      try {
        await publisher.publish(
          topic,
          replays.map((r): PublishMessage => ({ key: r.key, value: r.value, headers: r.headers, partition: r.partition })),
        );
      } catch (err) {
        for (const letter of chunk) onOutcome({ letter, error: err as Error });
        continue;
      }
      const resolutions = chunk.map((l, i) => this.resolution(l.id, 'replayed', { topic, partition: replays[i]!.partition }));
      try {
        await this.publishResolutions(resolutions);
      } catch (err) {
        const error = new Error(`republished to ${topic}, but not marked resolved (${(err as Error).message}); mark it with \`conveyor dlq resolve <id>\``);
        for (const letter of chunk) onOutcome({ letter, error });
        continue;
      }
      for (const letter of chunk) onOutcome({ letter });
    }
  }

  async resolve(letter: StoredLetter): Promise<void> {
    await this.kafka.ensureCompactedTopic(resolutionTopic(this.name));
    await this.publishResolutions([this.resolution(letter.id, 'resolved')]);
  }

  async close(): Promise<void> {
    await this.publisher?.close();
  }

  /**
   * The original record of a letter written without its value (too large for the dead-letter topic), read from
   * its topic at its partition and offset: `events.retention.exceeded` once it is no longer stored there.
   */
  private async sourceRecord(id: string, envelope: DeadLetterEnvelope): Promise<SourceRecord> {
    const { original_topic: topic, original_message: m } = envelope;
    const where = `${topic}[${m.partition}]@${m.offset}`;
    const gone = (why: string): ConveyorError =>
      new ConveyorError(
        'events.retention.exceeded',
        `${id} was dead-lettered without its value (too large for the dead-letter topic), and the original at ${where} is no longer stored: ${why}. ` +
          'It cannot be replayed; handle it by hand and mark it with `conveyor dlq resolve <id>`',
        { context: { topic, partition: m.partition, offset: m.offset } },
      );
    if (!(await this.kafka.topics()).has(topic)) throw gone(`topic ${topic} does not exist any more`);
    const offset = BigInt(m.offset);
    const mark = (await this.kafka.watermarks(topic)).find((w) => w.partition === m.partition);
    if (!mark) throw gone(`${topic} has no partition ${m.partition} any more`);
    if (offset < mark.low) throw gone(`partition ${m.partition} starts at offset ${mark.low} now (retention)`);
    if (offset >= mark.high) throw gone(`partition ${m.partition} ends before it (at ${mark.high}): the topic was recreated`);
    const records: TopicRecord[] = [];
    await this.kafka.read(topic, [{ partition: m.partition, from: offset, to: offset + 1n }], (r) => records.push(r));
    const record = records.find((r) => r.offset === offset);
    if (!record) throw gone('the record was deleted (compaction or deleteRecords)');
    if (String(record.timestamp) !== m.timestamp) {
      throw gone(`the record stored there now has timestamp ${record.timestamp}, not ${m.timestamp}: the topic was recreated`);
    }
    return { key: record.key, value: record.value, headers: record.headerList };
  }

  /** The latest resolution record of every id. */
  private async resolutions(): Promise<Map<string, Resolution>> {
    const topic = resolutionTopic(this.name);
    const marks = await this.kafka.watermarks(topic);
    const resolutions = new Map<string, Resolution>();
    await this.kafka.read(
      topic,
      marks.map((m) => ({ partition: m.partition, from: m.low, to: m.high })),
      (record) => {
        const id = record.key?.toString('utf8');
        if (id === undefined) return;
        const resolution = decodeResolution(record.value);
        if (resolution) resolutions.set(id, resolution);
        else resolutions.delete(id); // a tombstone (or garbage) undoes a resolution
      },
    );
    return resolutions;
  }

  private letter(record: TopicRecord, resolutions: ReadonlyMap<string, Resolution>): StoredLetter {
    const id = kafkaLetterId(this.name, record.partition, record.offset);
    const resolution = resolutions.get(id);
    return {
      id,
      broker: 'kafka',
      dlq: this.name,
      ...parseEnvelope(record.value),
      key: record.key,
      headers: record.headers,
      storedAt: record.timestamp,
      ...(resolution ? { resolution } : {}),
    };
  }

  private resolution(id: string, how: Resolution['how'], replayedTo?: Resolution['replayedTo']): Resolution {
    const by = operator();
    return { id, resolvedAt: new Date().toISOString(), how, ...(by ? { by } : {}), ...(replayedTo ? { replayedTo } : {}) };
  }

  private async publishResolutions(resolutions: readonly Resolution[]): Promise<void> {
    await this.replayPublisher().publish(
      resolutionTopic(this.name),
      resolutions.map((r) => ({ key: r.id, value: JSON.stringify(r) })),
    );
  }

  /** Idempotent, acks=all whatever kafka.acks says: a replay must not be lost or doubled by the producer. */
  private replayPublisher(): KafkaPublisher {
    this.publisher ??= new KafkaPublisher({ ...this.config, kafka: { ...this.config.kafka, acks: 'all', enableIdempotence: true } });
    return this.publisher;
  }
}

function partitionOf(letter: StoredLetter): number {
  return Number(letter.id.split(':').at(-2));
}

function compareOffsets(a: StoredLetter, b: StoredLetter): number {
  const x = BigInt(a.id.split(':').at(-1)!);
  const y = BigInt(b.id.split(':').at(-1)!);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Consecutive letters to the same original topic, at most CHUNK together, order kept. */
function chunksByTopic(letters: readonly StoredLetter[]): StoredLetter[][] {
  const chunks: StoredLetter[][] = [];
  for (const letter of letters) {
    const last = chunks.at(-1);
    if (last && last.length < CHUNK && last[0]!.envelope?.original_topic === letter.envelope?.original_topic) last.push(letter);
    else chunks.push([letter]);
  }
  return chunks;
}

/**
 * Issue 10 §4, "never stick on a dead letter", on a real broker through the real runner and CLI:
 * - a dead letter above librdkafka's default message.max.bytes (a 750 KB binary value, base64 in the envelope) is
 *   written whole when the dead-letter topic accepts it, without its value (value_omitted) when it does not, and
 *   the partition goes on either way; `conveyor dlq replay` reads an omitted value back from the source topic, or
 *   fails that letter with events.retention.exceeded once the source no longer holds it;
 * - a handler error with a 5 MB message: capped failure_reason, no log line above the cap;
 * - binary header values and a repeated header name survive dead-lettering and replay byte for byte, in order;
 * - the first dead-letter failure (a dead-letter topic that cannot be created) is logged within publish.timeoutMs
 *   (plus a margin), not after 30 s.
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DeadLetterEnvelope } from '../../src/failure/dead-letter.ts';
import type { IHeaders, Kafka } from '../../src/kafka/client.ts';
import { LOG_ERROR_TEXT_LIMIT } from '../../src/failure/text-limits.ts';
import { brokerConfig, runCli } from '../support/cli.ts';
import { useKafkaFixture } from '../support/fixture.ts';
import { committedOffsets, uniqueName, waitFor } from '../support/kafka.ts';
import { readRecords } from '../support/runner.ts';

interface StoredRecord {
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** As the client delivers them: an array per repeated name, values as bytes. */
  readonly headers: IHeaders;
}

interface SendMessage {
  readonly key?: string;
  readonly value: string | Buffer;
  readonly headers?: IHeaders;
}

async function send(kafka: Kafka, topic: string, messages: readonly SendMessage[]): Promise<void> {
  const producer = kafka.producer({ 'enable.idempotence': true, acks: -1 } as never);
  await producer.connect();
  try {
    await producer.send({ topic, messages: messages.map((m) => ({ key: m.key ?? null, value: m.value, ...(m.headers ? { headers: m.headers } : {}) })) });
  } finally {
    await producer.disconnect();
  }
}

/** Every record of a one-partition topic from its start, headers as stored (bytes, repeats as arrays), until `count`. */
async function readAll(kafka: Kafka, topic: string, count: number, timeoutMs = 30_000): Promise<StoredRecord[]> {
  const consumer = kafka.consumer({
    kafkaJS: { groupId: uniqueName('conveyor.test.dlq-reader'), fromBeginning: true, autoCommit: false, allowAutoTopicCreation: false },
    'fetch.message.max.bytes': 70 * 1024 * 1024,
  } as never);
  const got: StoredRecord[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic] });
    void consumer.run({
      eachMessage: async ({ message }) => {
        got.push({ offset: message.offset, key: message.key ?? null, value: message.value ?? null, headers: message.headers ?? {} });
      },
    });
    await waitFor(`${count} records on ${topic}`, () => got.length >= count, timeoutMs);
  } finally {
    await consumer.disconnect();
  }
  return got.sort((a, b) => Number(a.offset) - Number(b.offset));
}

const envelopeOf = (record: StoredRecord): DeadLetterEnvelope => JSON.parse(record.value!.toString('utf8')) as DeadLetterEnvelope;

/** A 750 KB value that is not UTF-8: 1,000,000 characters of base64 in the envelope. */
function bigBinary(): Buffer {
  const value = randomBytes(750 * 1024);
  value[0] = 0xff;
  return value;
}

describe('dead letters never stick', () => {
  const fx = useKafkaFixture({ scope: 'test' });

  async function waitCommitted(group: string, topic: string, offset: bigint, timeoutMs = 60_000): Promise<void> {
    await waitFor(`${group} committed ${topic}/0 at ${offset}`, async () => (await committedOffsets(fx.admin, group, topic)).get(0) === offset, timeoutMs);
  }

  it('a 750 KB binary value is dead-lettered whole when the dead-letter topic accepts 64 MB, and the partition goes on', async () => {
    const { topic, dlq, group } = await fx.topic('dlq-big-whole', 1);
    await fx.admin.createTopic(dlq, 1, { 'max.message.bytes': String(64 * 1024 * 1024) });
    const big = bigBinary();
    await send(fx.kafka, topic, [{ value: '{"seq":0}' }, { key: 'big', value: big }, { value: '{"seq":2}' }, { value: '{"seq":3}' }]);
    const runner = await fx.startRunner({ topic, group, env: { TEST_RETRIES: '1' } });

    await waitCommitted(group, topic, 4n);
    const [letter] = await readAll(fx.kafka, dlq, 1);
    const envelope = envelopeOf(letter!);
    expect(envelope.original_message).toMatchObject({ key: 'big', offset: '1', partition: 0, value_encoding: 'base64' });
    expect(envelope.original_message.value_omitted).toBeUndefined();
    expect(Buffer.from(envelope.original_message.value!, 'base64').equals(big)).toBe(true);
    expect(letter!.value!.length).toBeGreaterThan(1_000_000);
    expect(readRecords(runner.recordFile).map((r) => [r.offset, r.ok])).toEqual([['0', true], ['2', true], ['3', true]]);
    expect(runner.has(/^dead-letter publish failed/)).toBe(false);
    expect((await runner.stop()).code).toBe(0);
  });

  it('a letter the dead-letter topic cannot take is written without its value; replay reads it from the source, or says the source no longer has it', async () => {
    const { topic, dlq, group } = await fx.topic('dlq-big-omit', 1);
    await fx.admin.createTopic(dlq, 1, { 'max.message.bytes': String(512 * 1024) });
    const first = bigBinary();
    const second = bigBinary();
    const trace = Buffer.from('fffe8001', 'hex');
    await send(fx.kafka, topic, [
      { value: '{"seq":0}' },
      { key: 'b1', value: first },
      { value: '{"seq":2}' },
      { key: 'b3', value: second, headers: { trace: [trace, Buffer.from('second')], tenant: 'acme' } },
      { value: '{"seq":4}' },
    ]);
    const runner = await fx.startRunner({ topic, group, env: { TEST_RETRIES: '0' } });

    await waitCommitted(group, topic, 5n);
    const letters = await readAll(fx.kafka, dlq, 2);
    const envelopes = letters.map(envelopeOf);
    for (const [i, e] of envelopes.entries()) {
      expect(e.original_message).toMatchObject({ value: null, value_omitted: 'too_large', value_size: 750 * 1024, partition: 0, offset: ['1', '3'][i] });
      expect(e.error_type).toBe('DeserializationFailure');
      expect(letters[i]!.value!.length).toBeLessThan(10_000);
    }
    expect(envelopes[1]!.original_message.headers).toEqual([
      { name: 'trace', value: '//6AAQ==', encoding: 'base64' },
      { name: 'trace', value: 'second', encoding: 'utf8' },
      { name: 'tenant', value: 'acme', encoding: 'utf8' },
    ]);
    expect(letters[1]!.headers.value_omitted?.toString()).toBe('too_large');
    const logged = runner.logs.filter((l) => l.msg === 'message dead-lettered');
    expect(logged.map((l) => [l.offset, l.valueOmitted, l.valueSize])).toEqual([['1', 'too_large', 750 * 1024], ['3', 'too_large', 750 * 1024]]);
    expect(readRecords(runner.recordFile).map((r) => r.offset)).toEqual(['0', '2', '4']);
    expect((await runner.stop()).code).toBe(0);

    // retention: the source no longer holds offsets 0 and 1
    await fx.admin.deleteRecords(topic, 0, 2n);
    const replay = await runCli(['dlq', 'replay', '--topic', dlq, '--config', brokerConfig()], { TEST_TOPIC: topic, TEST_GROUP: group }, 120_000);
    expect(replay.code, replay.stderr).toBe(1);
    expect(replay.stderr).toContain(`failed ${dlq}:0:0: events.retention.exceeded: ${dlq}:0:0 was dead-lettered without its value`);
    expect(replay.stdout).toContain('replayed 1 of 2 dead letter(s)');

    const copies = (await readAll(fx.kafka, topic, 4)).filter((r) => r.offset === '5');
    expect(copies).toHaveLength(1);
    const copy = copies[0]!;
    expect(copy.key?.toString()).toBe('b3');
    expect(copy.value!.equals(second)).toBe(true);
    expect(copy.headers.trace).toEqual([trace, Buffer.from('second')]);
    expect(copy.headers.tenant).toEqual(Buffer.from('acme'));
    expect(copy.headers['x-conveyor-replayed-from']?.toString()).toBe(`${dlq}:0:1`);
  });

  it('a handler error with a 5 MB message: dead-lettered with a capped reason, no log line above the cap', async () => {
    const { topic, dlq, group } = await fx.topic('dlq-big-error', 1);
    await send(fx.kafka, topic, [{ value: JSON.stringify({ seq: 0, failChars: 5 * 1024 * 1024 }) }, { value: '{"seq":1}' }]);
    const runner = await fx.startRunner({ topic, group, handlersDir: resolve('test/fixtures/big-error') });

    await waitCommitted(group, topic, 2n);
    const [letter] = await readAll(fx.kafka, dlq, 1);
    const envelope = envelopeOf(letter!);
    expect(envelope.failure_reason.length).toBeLessThanOrEqual(8192);
    expect(envelope.failure_reason).toMatch(/^handler threw Error: x+… \[truncated: 5242901 characters in all\]$/);
    expect(envelope).toMatchObject({ retry_count: 1, error_type: 'Error', error_class: 'ReceiverError', original_message: { offset: '0' } });
    expect(letter!.value!.length).toBeLessThan(20_000);
    await runner.waitForLog('message dead-lettered');
    expect((await runner.stop()).code).toBe(0);

    const retried = runner.logs.filter((l) => /^attempt 1 failed/.test(l.msg));
    expect(retried).toHaveLength(1);
    const err = retried[0]!.err as { message: string; stack: string };
    expect(err.message.length).toBeLessThanOrEqual(LOG_ERROR_TEXT_LIMIT);
    expect(err.stack.length).toBeLessThanOrEqual(LOG_ERROR_TEXT_LIMIT);
    const longest = Math.max(...runner.logs.map((l) => JSON.stringify(l).length));
    expect(longest).toBeLessThan(4 * LOG_ERROR_TEXT_LIMIT);
  });

  it('binary header values and a repeated header name survive the dead letter and its replay byte for byte, in order', async () => {
    const { topic, dlq, group } = await fx.topic('dlq-headers', 1);
    const trace = Buffer.from('fffe8001', 'hex');
    const bin = Buffer.from([0x00, 0xff, 0xc3]);
    await send(fx.kafka, topic, [
      { key: 'h0', value: JSON.stringify({ seq: 0, fail: 'never-retry' }), headers: { trace: [trace, Buffer.from('second'), Buffer.from([0x80])], bin, tenant: 'acme' } },
      { value: '{"seq":1}' },
    ]);
    const runner = await fx.startRunner({ topic, group, env: { TEST_RETRIES: '0' } });
    await waitCommitted(group, topic, 2n);
    expect((await runner.stop()).code).toBe(0);

    const [letter] = await readAll(fx.kafka, dlq, 1);
    // the dead letter's own headers: the original ones as they were, then Conveyor's summary
    expect(Object.keys(letter!.headers).slice(0, 3)).toEqual(['trace', 'bin', 'tenant']);
    expect(letter!.headers.trace).toEqual([trace, Buffer.from('second'), Buffer.from([0x80])]);
    expect(letter!.headers.bin).toEqual(bin);
    expect(letter!.headers.tenant).toEqual(Buffer.from('acme'));
    expect(letter!.headers.original_offset?.toString()).toBe('0');
    // the envelope: an ordered list, base64 where the bytes are not UTF-8
    expect(envelopeOf(letter!).original_message.headers).toEqual([
      { name: 'trace', value: '//6AAQ==', encoding: 'base64' },
      { name: 'trace', value: 'second', encoding: 'utf8' },
      { name: 'trace', value: 'gA==', encoding: 'base64' },
      { name: 'bin', value: 'AP/D', encoding: 'base64' },
      { name: 'tenant', value: 'acme', encoding: 'utf8' },
    ]);

    const replay = await runCli(['dlq', 'replay', '--topic', dlq, '--config', brokerConfig()], { TEST_TOPIC: topic, TEST_GROUP: group }, 120_000);
    expect(replay.code, replay.stderr).toBe(0);
    const [copy] = (await readAll(fx.kafka, topic, 3)).filter((r) => r.offset === '2');
    expect(Object.keys(copy!.headers)).toEqual(['trace', 'bin', 'tenant', 'x-conveyor-replayed-from']);
    expect(copy!.headers.trace).toEqual([trace, Buffer.from('second'), Buffer.from([0x80])]);
    expect(copy!.headers.bin).toEqual(bin);
    expect(copy!.headers.tenant).toEqual(Buffer.from('acme'));
    expect(copy!.key?.toString()).toBe('h0');
  });

  it('the first dead-letter failure is logged within publish.timeoutMs, not after 30 s', async () => {
    const { topic, group } = await fx.topic('dlq-timeout', 1);
    // a dead-letter topic Kafka cannot create: its name collides with the source topic's ('.' and '_' are the same to
    // Kafka's metrics), so the producer waits for it until its message timeout
    const dlq = topic.replaceAll('.', '_');
    await send(fx.kafka, topic, [{ value: JSON.stringify({ seq: 0, fail: 'never-retry' }) }]);
    const runner = await fx.startRunner({ topic, group, env: { TEST_RETRIES: '0', TEST_DLQ: dlq, KAFKA_PUBLISH_TIMEOUT_MS: '5000' } });

    await waitFor('the handler failed', () => readRecords(runner.recordFile).length > 0, 30_000);
    const failedAt = readRecords(runner.recordFile)[0]!.ended;
    await runner.waitForLog(/^dead-letter publish failed/, 45_000);
    const first = runner.logs.find((l) => /^dead-letter publish failed/.test(l.msg))!;
    const after = (first.time as number) - failedAt;
    expect(after).toBeGreaterThanOrEqual(4_000);
    expect(after).toBeLessThan(5_000 + 4_000);
    expect(first).toMatchObject({ level: 50, offset: '0', deadLetterTopic: dlq, err: { code: 'events.broker.unavailable' } });
    expect((await committedOffsets(fx.admin, group, topic)).get(0) ?? -1n).toBeLessThan(1n);
  });
});

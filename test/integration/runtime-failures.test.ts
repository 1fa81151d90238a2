/**
 * Invariants 1, 2 and 5 on a real broker through the real runner: a failing message is retried in its lane,
 * then dead-lettered with seed 001's envelope; only the broker's confirmation of the dead letter acknowledges
 * it, so while the dead-letter topic refuses it the partition holds (nothing after it is handled or committed).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { DeadLetterEnvelope } from '../../src/failure/dead-letter.ts';
import { useKafkaFixture } from '../support/fixture.ts';
import { committedOffsets, produce, readTopic, waitFor } from '../support/kafka.ts';
import { readRecords, type Recorded } from '../support/runner.ts';

const ENVELOPE_FIELDS = [
  'correlation_id',
  'error_class',
  'error_code',
  'error_type',
  'failure_reason',
  'failure_timestamp',
  'group',
  'handler',
  'original_message',
  'original_topic',
  'retry_count',
];
const ORIGINAL_MESSAGE_FIELDS = ['headers', 'key', 'offset', 'partition', 'timestamp', 'value', 'value_encoding'];
const DLQ_HEADERS = [
  'correlation_id',
  'error_class',
  'error_type',
  'failure_reason',
  'failure_timestamp',
  'original_offset',
  'original_partition',
  'original_topic',
  'retry_count',
];
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('runtime: retry, dead letters and their failures', () => {
  const fx = useKafkaFixture({ scope: 'test' });

  /** Messages stored on a topic (sum of high watermarks; our producers are idempotent, not transactional). */
  async function storedCount(topic: string): Promise<number> {
    const offsets = await fx.admin.topicOffsets(topic);
    return offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  }

  /** Reads the single dead letter of `dlq` and checks it is the only one. */
  async function onlyDeadLetter(dlq: string, timeoutMs = 30_000): Promise<{ envelope: DeadLetterEnvelope; key: string | null; headers: Record<string, string> }> {
    const [letter] = await readTopic(dlq, 1, timeoutMs);
    expect(await storedCount(dlq)).toBe(1);
    return { envelope: JSON.parse(letter!.value) as DeadLetterEnvelope, key: letter!.key, headers: letter!.headers };
  }

  async function waitCommitted(group: string, topic: string, partition: number, offset: bigint, timeoutMs = 30_000): Promise<void> {
    await waitFor(`${group} committed ${topic}/${partition} at ${offset}`, async () => (await committedOffsets(fx.admin, group, topic)).get(partition) === offset, timeoutMs);
  }

  const attemptsOf = (records: readonly Recorded[], offset: string): Recorded[] => records.filter((r) => r.offset === offset).sort((a, b) => a.attempt - b.attempt);

  it('retries a failing message, dead-letters it with the seed-001 envelope and headers, then goes on in order', async () => {
    const { topic, dlq, group } = await fx.topic('fail', 1);
    const correlationId = randomUUID();
    const failing = { seq: 1, fail: 'always' };
    const producedAt = Date.now();
    await produce(fx.kafka, topic, [
      { key: 'k0', value: { seq: 0 } },
      { key: 'k1', value: failing, headers: { 'x-correlation-id': correlationId, tenant: 'acme' } },
      { key: 'k2', value: { seq: 2 } },
      { key: 'k3', value: { seq: 3 } },
    ]);
    const runner = await fx.startRunner({ topic, group, env: { TEST_RETRIES: '2' } });

    await waitCommitted(group, topic, 0, 4n);
    const { envelope, key, headers } = await onlyDeadLetter(dlq);

    // the recorder saw attempts 1, 2 and 3 of the failing message, each failed, and exactly one of every other
    const records = readRecords(runner.recordFile);
    const failed = attemptsOf(records, '1');
    expect(failed.map((r) => [r.attempt, r.ok])).toEqual([[1, false], [2, false], [3, false]]);
    for (const offset of ['0', '2', '3']) expect(attemptsOf(records, offset).map((r) => [r.attempt, r.ok]), `offset ${offset}`).toEqual([[1, true]]);

    // order: nothing behind it started before its last attempt ended and its dead letter was written
    const lastAttemptEnded = failed[2]!.ended;
    const deadLetteredAt = Date.parse(envelope.failure_timestamp);
    for (const offset of ['2', '3']) {
      const [after] = attemptsOf(records, offset);
      expect(after!.started, `offset ${offset} started`).toBeGreaterThanOrEqual(lastAttemptEnded);
      expect(after!.started, `offset ${offset} started`).toBeGreaterThanOrEqual(deadLetteredAt);
    }

    // the envelope: exactly seed 001's fields as dead-letter.ts builds them
    expect(Object.keys(envelope).sort()).toEqual(ENVELOPE_FIELDS);
    expect(Object.keys(envelope.original_message).sort()).toEqual(ORIGINAL_MESSAGE_FIELDS);
    expect(envelope).toMatchObject({
      original_topic: topic,
      original_message: {
        key: 'k1',
        value: JSON.stringify(failing),
        value_encoding: 'utf8',
        offset: '1',
        partition: 0,
        headers: [
          { name: 'x-correlation-id', value: correlationId, encoding: 'utf8' },
          { name: 'tenant', value: 'acme', encoding: 'utf8' },
        ],
      },
      failure_reason: 'handler threw Error: instructed failure of seq 1',
      correlation_id: correlationId,
      retry_count: 2,
      error_type: 'Error',
      error_class: 'ReceiverError',
      error_code: 'conveyor.handler.failed',
      handler: 'recorder',
      group,
    });
    expect(envelope.original_message.timestamp).toMatch(/^\d+$/);
    expect(Number(envelope.original_message.timestamp)).toBeGreaterThanOrEqual(producedAt - 1000);
    expect(Number(envelope.original_message.timestamp)).toBeLessThanOrEqual(failed[0]!.started);
    expect(envelope.failure_timestamp).toMatch(ISO_UTC);
    expect(deadLetteredAt).toBeGreaterThanOrEqual(lastAttemptEnded);
    expect(deadLetteredAt).toBeLessThanOrEqual(Date.now());

    // the dead letter keeps the original key and headers, and carries the essentials as headers
    expect(key).toBe('k1');
    expect(Object.keys(headers).sort()).toEqual([...DLQ_HEADERS, 'tenant', 'x-correlation-id'].sort());
    expect(headers).toEqual({
      'x-correlation-id': correlationId,
      tenant: 'acme',
      original_topic: topic,
      original_partition: '0',
      original_offset: '1',
      failure_reason: envelope.failure_reason,
      failure_timestamp: envelope.failure_timestamp,
      correlation_id: correlationId,
      retry_count: '2',
      error_type: 'Error',
      error_class: 'ReceiverError',
    });

    // what an operator sees: two retries logged, then the dead letter, with its class and place
    const retries = runner.logs.filter((l) => /^attempt \d failed, retrying/.test(l.msg) && l.offset === '1');
    expect(retries.map((l) => l.attempt)).toEqual([1, 2]);
    const logged = runner.logs.filter((l) => l.msg === 'message dead-lettered');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ topic, partition: 0, offset: '1', deadLetterTopic: dlq, retryCount: 2, errorClass: 'ReceiverError', errorType: 'Error', correlationId });

    const { code } = await runner.stop('SIGTERM');
    expect(code).toBe(0);
  });

  it('dead-letters a NonRetryableError after one attempt', async () => {
    const { topic, dlq, group } = await fx.topic('nonretry', 1);
    const failing = { seq: 0, fail: 'never-retry' };
    await produce(fx.kafka, topic, [{ key: 'n0', value: failing }, { value: { seq: 1 } }]);
    const runner = await fx.startRunner({ topic, group, env: { TEST_RETRIES: '3' } });

    await waitCommitted(group, topic, 0, 2n);
    const { envelope, headers } = await onlyDeadLetter(dlq);
    const records = readRecords(runner.recordFile);
    expect(attemptsOf(records, '0').map((r) => [r.attempt, r.ok])).toEqual([[1, false]]);
    expect(attemptsOf(records, '1').map((r) => [r.attempt, r.ok])).toEqual([[1, true]]);
    expect(envelope).toMatchObject({
      original_topic: topic,
      original_message: { key: 'n0', value: JSON.stringify(failing), offset: '0', partition: 0 },
      failure_reason: 'handler threw NonRetryableError: seq 0 can never succeed',
      retry_count: 0,
      error_type: 'NonRetryableError',
      error_class: 'ReceiverError',
      error_code: 'conveyor.handler.failed',
    });
    // no correlation header on the message: the runtime made one up, and uses it in both places
    expect(envelope.correlation_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(headers).toMatchObject({ retry_count: '0', error_type: 'NonRetryableError', error_class: 'ReceiverError', correlation_id: envelope.correlation_id });
    expect(runner.has(/retrying/)).toBe(false);
  });

  it('dead-letters a value that is not JSON without calling the handler, keeping the value as it was', async () => {
    const { topic, dlq, group } = await fx.topic('badjson', 1);
    const raw = '{not json';
    await produce(fx.kafka, topic, [{ value: { seq: 0 } }, { key: 'b1', value: raw }, { value: { seq: 2 } }]);
    const runner = await fx.startRunner({ topic, group, env: { TEST_RETRIES: '3' } });

    await waitCommitted(group, topic, 0, 3n);
    const { envelope, headers } = await onlyDeadLetter(dlq);
    const records = readRecords(runner.recordFile);
    // the handler never saw the undecodable message: no attempt of offset 1, and the others handled once each
    expect(records.map((r) => [r.offset, r.attempt, r.ok])).toEqual([['0', 1, true], ['2', 1, true]]);
    expect(envelope).toMatchObject({
      original_topic: topic,
      original_message: { key: 'b1', value: raw, value_encoding: 'utf8', offset: '1', partition: 0 },
      retry_count: 0,
      error_type: 'DeserializationFailure',
      error_class: 'RuntimeFailure',
      error_code: 'conveyor.message.undecodable',
    });
    expect(envelope.failure_reason).toMatch(/^message could not be deserialized: value is not JSON/);
    expect(headers).toMatchObject({ original_offset: '1', retry_count: '0', error_type: 'DeserializationFailure', error_class: 'RuntimeFailure' });
    expect(runner.has(/retrying/)).toBe(false);
  });

  it('holds the partition while the dead-letter topic refuses the letter, and goes on once it accepts', async () => {
    const { topic, dlq, group } = await fx.topic('dlqdown', 1);
    // the broker refuses every record batch above 200 bytes on this dead-letter topic: every envelope is larger
    const refusing = await fx.admin.createTopic(dlq, 1, { 'max.message.bytes': '200' });
    expect(refusing).toBe(true);
    await produce(fx.kafka, topic, [{ value: { seq: 0 } }, { key: 'f1', value: { seq: 1, fail: 'always' } }, { value: { seq: 2 } }, { value: { seq: 3 } }]);
    const runner = await fx.startRunner({ topic, group, env: { TEST_RETRIES: '1' } });
    const publishFailures = (): number => runner.logs.filter((l) => /^dead-letter publish failed/.test(l.msg)).length;

    await waitFor('three refused dead-letter publishes', () => publishFailures() >= 3, 30_000);
    await waitCommitted(group, topic, 0, 1n);
    const failure = runner.logs.find((l) => /^dead-letter publish failed/.test(l.msg))!;
    expect(failure).toMatchObject({ level: 50, topic, partition: 0, offset: '1', deadLetterTopic: dlq });

    // for several seconds: still refusing, the watermark stays exactly at the failed message, nothing after it runs
    const holdUntil = Date.now() + 4000;
    while (Date.now() < holdUntil) {
      expect((await committedOffsets(fx.admin, group, topic)).get(0)).toBe(1n);
      expect(readRecords(runner.recordFile).filter((r) => r.offset === '2' || r.offset === '3')).toEqual([]);
      await new Promise((r) => setTimeout(r, 250));
    }
    const failuresWhileHeld = publishFailures();
    expect(failuresWhileHeld).toBeGreaterThan(3);
    expect(await storedCount(dlq)).toBe(0);
    expect(runner.has('message dead-lettered')).toBe(false);

    // not a broker outage: the letter is too large for this topic even without the original value and headers
    expect(failure).toMatchObject({ err: { code: 'conveyor.dead_letter.too_large' } });

    // the operator fixes the dead-letter topic: delete it and create it with the broker's normal limits
    await fx.admin.deleteTopics([dlq]);
    const fixedAt = Date.now();
    await waitFor('dead-letter topic recreated', async () => {
      try {
        // false: it exists already (the runner's producer may have auto-created it meanwhile, with normal limits)
        await fx.admin.createTopic(dlq, 1);
        return true;
      } catch {
        return false; // still being deleted
      }
    });

    // the lane's next publish attempt comes after its backoff (full jitter, at most 30 s)
    const { envelope } = await onlyDeadLetter(dlq, 45_000);
    expect(envelope).toMatchObject({ original_topic: topic, original_message: { key: 'f1', offset: '1', partition: 0 }, retry_count: 1, error_class: 'ReceiverError' });
    await waitCommitted(group, topic, 0, 4n);
    const records = readRecords(runner.recordFile);
    const failed = attemptsOf(records, '1');
    expect(failed.map((r) => r.attempt)).toEqual([1, 2]);
    for (const offset of ['2', '3']) {
      const done = attemptsOf(records, offset);
      expect(done.map((r) => [r.attempt, r.ok]), `offset ${offset}`).toEqual([[1, true]]);
      expect(done[0]!.started, `offset ${offset} started after the fix`).toBeGreaterThanOrEqual(fixedAt);
    }
    expect(runner.logs.filter((l) => l.msg === 'message dead-lettered')).toHaveLength(1);

    const { code } = await runner.stop('SIGTERM');
    expect(code).toBe(0);
  });
});

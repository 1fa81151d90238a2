import { describe, expect, it } from 'vitest';
import { classifyFailure } from '../../src/failure/classify.ts';
import {
  buildDeadLetter,
  DeadLetterPublisher,
  deadLetterForms,
  deadLetterSize,
  DEFAULT_DEAD_LETTER_LIMIT,
  envelopeHeaders,
  headerPairs,
  kafkaHeaders,
  withoutOriginal,
} from '../../src/failure/dead-letter.ts';
import type { Kafka } from '../../src/kafka/client.ts';
import { capStrings, capText, FAILURE_REASON_LIMIT } from '../../src/failure/text-limits.ts';
import { DeserializationFailure, HandlerTimeout, ReceiverError, RuntimeFailure, WorkerCrashed } from '../../src/failure/errors.ts';

const context = { topic: 'orders', partition: 2, offset: '41', handler: 'orders', file: '/h/orders.ts', group: 'g' };

describe('failure classification', () => {
  it('wraps handler errors in ReceiverError, keeping the original as the cause', () => {
    const e = classifyFailure({ kind: 'receiver', name: 'TypeError', message: 'x is undefined', stack: 'TypeError: x is undefined\n  at handle' }, context);
    expect(e).toBeInstanceOf(ReceiverError);
    expect(e).not.toBeInstanceOf(RuntimeFailure);
    expect(e.errorClass).toBe('ReceiverError');
    expect(e.retriable).toBe(true);
    expect((e.cause as Error).name).toBe('TypeError');
    expect(e.context).toEqual(context);
  });

  it('NonRetryableError is a receiver failure that is not retried', () => {
    const e = classifyFailure({ kind: 'non-retryable', name: 'NonRetryableError', message: 'no' }, context);
    expect(e).toBeInstanceOf(ReceiverError);
    expect(e.retriable).toBe(false);
  });

  it('everything else is a RuntimeFailure subclass; deserialization is never retried', () => {
    const d = classifyFailure({ kind: 'deserialization', name: 'Error', message: 'value is not JSON' }, context);
    expect(d).toBeInstanceOf(DeserializationFailure);
    expect(d.errorClass).toBe('RuntimeFailure');
    expect(d.retriable).toBe(false);
    expect(classifyFailure({ kind: 'timeout', name: 'Error', message: 't' }, context)).toBeInstanceOf(HandlerTimeout);
    expect(classifyFailure({ kind: 'terminated-after-timeout', name: 'HandlerTimeout', message: 't' }, context)).toBeInstanceOf(HandlerTimeout);
    const c = classifyFailure({ kind: 'crash', name: 'WorkerCrashed', message: 'exit 3' }, context);
    expect(c).toBeInstanceOf(WorkerCrashed);
    expect(c.retriable).toBe(true);
  });
});

describe('dead-letter envelope (seed 001 format)', () => {
  const record = {
    offset: 41n,
    key: Buffer.from('user-123'),
    value: Buffer.from('{"user_id":"123"}'),
    headers: { 'x-correlation-id': Buffer.from('corr-9'), source: 'web' },
    timestamp: '1700000000000',
    size: 0,
  };

  it('carries the original coordinates, the failure, retries and both error type and class', () => {
    const error = classifyFailure({ kind: 'receiver', name: 'ValidationError', message: 'email missing' }, context);
    const letter = buildDeadLetter({
      deadLetterTopic: 'orders.dlq', topic: 'orders', partition: 2, record, error, retryCount: 3, handler: 'orders', group: 'g',
      now: new Date('2025-01-15T10:30:00.000Z'),
    });
    expect(letter.topic).toBe('orders.dlq');
    expect(letter.key?.toString()).toBe('user-123');
    expect(JSON.parse(letter.value)).toEqual({
      original_topic: 'orders',
      original_message: {
        key: 'user-123', value: '{"user_id":"123"}', value_encoding: 'utf8', offset: '41', partition: 2,
        timestamp: '1700000000000',
        headers: [{ name: 'x-correlation-id', value: 'corr-9', encoding: 'utf8' }, { name: 'source', value: 'web', encoding: 'utf8' }],
      },
      failure_reason: 'handler threw ValidationError: email missing',
      failure_timestamp: '2025-01-15T10:30:00.000Z',
      correlation_id: 'corr-9',
      retry_count: 3,
      error_type: 'ValidationError',
      error_class: 'ReceiverError',
      error_code: 'conveyor.handler.failed',
      handler: 'orders',
      group: 'g',
    });
    expect(letter.headers).toEqual({
      original_topic: 'orders', original_partition: '2', original_offset: '41',
      failure_reason: 'handler threw ValidationError: email missing', failure_timestamp: '2025-01-15T10:30:00.000Z',
      correlation_id: 'corr-9', retry_count: '3', error_type: 'ValidationError', error_class: 'ReceiverError',
    });
  });

  it('base64-encodes a value that is not UTF-8 and invents a correlation id when none came', () => {
    const error = classifyFailure({ kind: 'deserialization', name: 'Error', message: 'not JSON' }, context);
    const letter = buildDeadLetter({
      deadLetterTopic: 'd', topic: 'orders', partition: 0, record: { ...record, value: Buffer.from([0xff, 0xfe, 0x00]), headers: {} },
      error, retryCount: 0, handler: 'h', group: 'g',
    });
    expect(letter.envelope.original_message).toMatchObject({ value: '//4A', value_encoding: 'base64' });
    expect(letter.envelope.correlation_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(letter.envelope.error_type).toBe('DeserializationFailure');
    expect(letter.envelope.error_class).toBe('RuntimeFailure');
  });
});

describe('dead-letter headers, byte for byte', () => {
  const error = classifyFailure({ kind: 'receiver', name: 'Error', message: 'boom' }, context);
  const binary = Buffer.from('fffe8001', 'hex');
  const record = {
    offset: 7n,
    key: Buffer.from('k'),
    value: Buffer.from('{}'),
    // as the Kafka client delivers them: an array per repeated name, in the order of first appearance
    headers: { trace: [binary, Buffer.from('second')], 'x-correlation-id': Buffer.from('c-1'), empty: Buffer.alloc(0) },
    timestamp: '1700000000000',
    size: 0,
  };
  const letter = buildDeadLetter({ deadLetterTopic: 'd', topic: 't', partition: 0, record, error, retryCount: 0, handler: 'h', group: 'g' });

  it('keeps every header in the envelope in order, repeats included, non-UTF-8 values in base64', () => {
    expect(letter.envelope.original_message.headers).toEqual([
      { name: 'trace', value: '//6AAQ==', encoding: 'base64' },
      { name: 'trace', value: 'second', encoding: 'utf8' },
      { name: 'x-correlation-id', value: 'c-1', encoding: 'utf8' },
      { name: 'empty', value: '', encoding: 'utf8' },
    ]);
    const decoded = envelopeHeaders(JSON.parse(letter.value));
    expect(decoded).toEqual([['trace', binary], ['trace', Buffer.from('second')], ['x-correlation-id', Buffer.from('c-1')], ['empty', Buffer.alloc(0)]]);
    expect(decoded[0]![1]!.toString('hex')).toBe('fffe8001');
    expect(letter.envelope.correlation_id).toBe('c-1');
  });

  it('the dead letter record carries the original headers as they were, then the summary headers', () => {
    const headers = kafkaHeaders(letter);
    expect(Object.keys(headers).slice(0, 3)).toEqual(['trace', 'x-correlation-id', 'empty']);
    expect(headers.trace).toEqual([binary, Buffer.from('second')]);
    expect(headers.original_offset).toEqual(Buffer.from('7'));
    // a summary header the original also had: both, the original's first
    const clash = buildDeadLetter({ deadLetterTopic: 'd', topic: 't', partition: 0, record: { ...record, headers: { retry_count: Buffer.from('x') } }, error, retryCount: 2, handler: 'h', group: 'g' });
    expect(kafkaHeaders(clash).retry_count).toEqual([Buffer.from('x'), Buffer.from('2')]);
  });

  it('RabbitMQ text headers and string values become UTF-8 pairs; the older object format is read too', () => {
    expect(headerPairs({ a: 'x', b: ['1', Buffer.from([0xc3])] })).toEqual([['a', Buffer.from('x')], ['b', Buffer.from('1')], ['b', Buffer.from([0xc3])]]);
    const old = { ...letter.envelope, original_message: { ...letter.envelope.original_message, headers: { tenant: 'acme' } } };
    expect(envelopeHeaders(old)).toEqual([['tenant', Buffer.from('acme')]]);
  });
});

describe('text caps', () => {
  it('capText keeps short texts and cuts long ones to the limit, saying how long they were', () => {
    expect(capText('short', 10)).toBe('short');
    const capped = capText('x'.repeat(100_000), 1000);
    expect(capped).toHaveLength(1000);
    expect(capped).toMatch(/… \[truncated: 100000 characters in all\]$/);
    expect(capText(`${'a'.repeat(9)}😀${'b'.repeat(100)}`, 60).includes('\ud83d…')).toBe(false);
    expect(capStrings({ message: 'y'.repeat(50), nested: { stack: 'z'.repeat(50) }, n: 3 }, 40)).toMatchObject({ n: 3 });
  });

  it('failure_reason is capped in the envelope (and shorter in the header)', () => {
    const huge = classifyFailure({ kind: 'receiver', name: 'Error', message: 'm'.repeat(5 * 1024 * 1024) }, context);
    const letter = buildDeadLetter({ deadLetterTopic: 'd', topic: 't', partition: 0, record: { offset: 1n, key: null, value: null, headers: {}, timestamp: '0', size: 0 }, error: huge, retryCount: 0, handler: 'h', group: 'g' });
    expect(letter.envelope.failure_reason).toHaveLength(FAILURE_REASON_LIMIT);
    expect(letter.envelope.failure_reason).toMatch(/^handler threw Error: mmm.*truncated: 5242901 characters in all\]$/);
    expect(letter.headers.failure_reason!.length).toBeLessThanOrEqual(1024);
    expect(Buffer.byteLength(letter.value)).toBeLessThan(10_000);
  });
});

describe('dead letters that do not fit', () => {
  const error = classifyFailure({ kind: 'deserialization', name: 'Error', message: 'not JSON' }, context);
  const value = Buffer.alloc(750 * 1024, 0xff);
  const record = { offset: 9n, key: Buffer.from('big'), value, headers: { h: Buffer.from([0x80]) }, timestamp: '1700000000000', size: 0 };
  const letter = buildDeadLetter({ deadLetterTopic: 'd', topic: 't', partition: 3, record, error, retryCount: 0, handler: 'h', group: 'g' });

  it('a 750 KB binary value exceeds the default limit once in base64; without it the letter is small and says so', () => {
    expect(deadLetterSize(letter)).toBeGreaterThan(DEFAULT_DEAD_LETTER_LIMIT);
    const [, noValue, noHeaders] = deadLetterForms(letter);
    expect(deadLetterSize(noValue!)).toBeLessThan(2000);
    expect(noValue!.envelope.original_message).toMatchObject({ value: null, value_omitted: 'too_large', value_size: 750 * 1024, offset: '9', partition: 3, value_encoding: 'base64' });
    expect(noValue!.envelope.original_message.headers).toEqual([{ name: 'h', value: 'gA==', encoding: 'base64' }]);
    expect(noValue!.headers).toMatchObject({ value_omitted: 'too_large', original_offset: '9', original_partition: '3' });
    expect(noHeaders!.envelope.original_message).toMatchObject({ value: null, value_omitted: 'too_large', headers: [], headers_omitted: 'too_large', headers_size: 2 });
    expect(noHeaders!.originalHeaders).toEqual([]);
    expect(JSON.parse(noValue!.value)).toEqual(noValue!.envelope);
    expect(withoutOriginal(letter, 'value').envelope).toEqual(noValue!.envelope);
  });

  /** A stand-in for the client's producer: records what was sent, refuses what `refuse` says. */
  function fakeKafka(refuse: (size: number) => unknown = () => undefined): { kafka: Kafka; sent: Array<{ value: string; headers: unknown }> } {
    const sent: Array<{ value: string; headers: unknown }> = [];
    const producer = {
      connect: async () => {},
      disconnect: async () => {},
      send: async ({ messages }: { messages: Array<{ value: string; headers: unknown }> }) => {
        const refusal = refuse(Buffer.byteLength(messages[0]!.value));
        if (refusal) throw refusal;
        sent.push(messages[0]!);
        return [];
      },
    };
    return { kafka: { producer: () => producer } as unknown as Kafka, sent };
  }

  it('the publisher writes the whole letter when the topic takes it, the value-less form when it does not', async () => {
    const roomy = fakeKafka();
    const big = new DeadLetterPublisher(roomy.kafka, { timeoutMs: 1000, topicLimit: async () => 64 * 1024 * 1024 });
    expect((await big.publish(letter)).envelope.original_message.value_omitted).toBeUndefined();
    const small = fakeKafka();
    const unknown = new DeadLetterPublisher(small.kafka, { timeoutMs: 1000, topicLimit: async () => undefined });
    expect((await unknown.publish(letter)).envelope.original_message.value_omitted).toBe('too_large');
    expect(JSON.parse(small.sent[0]!.value).original_message.value).toBeNull();
  });

  it('a broker refusal for size steps down to the smaller form; a letter that never fits is too_large, not a broker outage', async () => {
    const refusing = fakeKafka((size) => (size > 1000 ? Object.assign(new Error('Broker: Message size too large'), { code: 10 }) : undefined));
    const publisher = new DeadLetterPublisher(refusing.kafka, { timeoutMs: 1000, topicLimit: async () => 64 * 1024 * 1024 });
    expect((await publisher.publish(letter)).envelope.original_message.value_omitted).toBe('too_large');

    let reads = 0;
    const tiny = new DeadLetterPublisher(fakeKafka().kafka, { timeoutMs: 1000, topicLimit: async () => (reads++, 200) });
    const failure = await tiny.publish(letter).then(() => undefined, (err: unknown) => err);
    expect(failure).toMatchObject({ code: 'conveyor.dead_letter.too_large', retriable: true, errorClass: 'RuntimeFailure' });
    expect((failure as Error).message).toMatch(/accepts 200 bytes/);
    await tiny.publish(letter).catch(() => {});
    expect(reads).toBe(2); // read again after a letter did not fit: the operator may have raised the limit

    const down = new DeadLetterPublisher(fakeKafka(() => Object.assign(new Error('Local: Message timed out'), { code: -192 })).kafka, { timeoutMs: 1000, topicLimit: async () => undefined });
    await expect(down.publish(letter)).rejects.toMatchObject({ code: 'events.broker.unavailable' });
  });

  it('reads a topic\'s limit once', async () => {
    let reads = 0;
    const publisher = new DeadLetterPublisher(fakeKafka().kafka, { timeoutMs: 1000, topicLimit: async () => (reads++, 5_000_000) });
    await publisher.publish(letter);
    await publisher.publish(letter);
    expect(reads).toBe(1);
    expect(await publisher.limitFor('d')).toBe(5_000_000);
  });
});

import { describe, expect, it } from 'vitest';
import { classifyFailure } from '../../src/failure/classify.ts';
import { buildDeadLetter } from '../../src/failure/dead-letter.ts';
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
        timestamp: '1700000000000', headers: { 'x-correlation-id': 'corr-9', source: 'web' },
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

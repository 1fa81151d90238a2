import { describe, expect, it } from 'vitest';
import { buildDeadLetter } from '../../src/failure/dead-letter.ts';
import { DeserializationFailure, ReceiverError } from '../../src/failure/errors.ts';
import {
  decodeResolution,
  kafkaLetterId,
  kafkaReplay,
  letterTable,
  needsSource,
  matches,
  parseEnvelope,
  parseFilters,
  parseLetterId,
  rabbitLetterId,
  rabbitReplay,
  selectionFrom,
  selectLetters,
  type StoredLetter,
} from '../../src/cli/dlq-letters.ts';
import type { DeadLetterEnvelope } from '../../src/failure/dead-letter.ts';

/** A dead letter as the runner builds it, read back as the CLI stores it. */
function stored(options: { id?: string; key?: string | null; value?: Buffer | null; headers?: Record<string, string>; error?: ReceiverError | DeserializationFailure; at?: string; exchange?: string; topic?: string } = {}): StoredLetter & { envelope: DeadLetterEnvelope } {
  const key = options.key === undefined ? 'order-17' : options.key;
  const letter = buildDeadLetter({
    deadLetterTopic: 'orders.dlq',
    topic: options.topic ?? 'orders',
    partition: 2,
    record: {
      offset: 4711n,
      key: key === null ? null : Buffer.from(key),
      value: options.value === undefined ? Buffer.from('{"amount":-5}') : options.value,
      headers: options.headers ?? { tenant: 'acme' },
      timestamp: '1763850000000',
      size: 10,
      attempt: 1,
      ...(options.exchange !== undefined ? { exchange: options.exchange } : {}),
    } as never,
    error: options.error ?? new ReceiverError('handler threw Error: boom', { cause: new Error('boom') }),
    retryCount: 3,
    handler: 'orders',
    group: 'prod.orders',
    now: new Date(options.at ?? '2026-03-01T12:00:00.000Z'),
  });
  const parsed = parseEnvelope(Buffer.from(letter.value));
  if (!('envelope' in parsed)) throw new Error(parsed.problem);
  return { id: options.id ?? 'orders.dlq:0:5', broker: 'kafka', dlq: 'orders.dlq', envelope: parsed.envelope, key: letter.key, headers: letter.headers, storedAt: 0 };
}

describe('dead-letter ids', () => {
  it('a Kafka id is <topic>:<partition>:<offset>; a RabbitMQ id is <queue>:<message-id>', () => {
    expect(kafkaLetterId('orders.dlq', 3, 120n)).toBe('orders.dlq:3:120');
    expect(parseLetterId('orders.dlq:3:120')).toEqual({ broker: 'kafka', topic: 'orders.dlq', partition: 3, offset: 120n });
    const id = rabbitLetterId('receipts.dlq', '550e8400-e29b-41d4-a716-446655440000');
    expect(parseLetterId(id)).toEqual({ broker: 'rabbitmq', queue: 'receipts.dlq', messageId: '550e8400-e29b-41d4-a716-446655440000' });
    // queue names may hold ':' themselves; the message id is what follows the last one
    expect(parseLetterId('vhost:receipts.dlq:abc-1')).toEqual({ broker: 'rabbitmq', queue: 'vhost:receipts.dlq', messageId: 'abc-1' });
  });

  it('anything else is not an id', () => {
    for (const id of ['orders.dlq', '', ':5', 'orders.dlq:']) expect(parseLetterId(id), id).toBeUndefined();
  });
});

describe('envelopes read back', () => {
  it('reads what buildDeadLetter wrote', () => {
    const letter = stored();
    expect(letter.envelope).toMatchObject({ original_topic: 'orders', error_type: 'Error', error_class: 'ReceiverError', retry_count: 3 });
  });

  it('names what is not a Conveyor dead letter', () => {
    expect(parseEnvelope(null)).toEqual({ problem: 'empty value (not a Conveyor dead letter)' });
    expect(parseEnvelope(Buffer.from('hello'))).toEqual({ problem: 'value is not JSON (not a Conveyor dead letter)' });
    expect(parseEnvelope(Buffer.from('{"a":1}'))).toHaveProperty('problem');
  });

  it('resolution records: the latest valid JSON, anything else ignored', () => {
    const r = { id: 'orders.dlq:0:5', resolvedAt: '2026-03-01T12:00:00.000Z', how: 'replayed' as const, by: 'ops' };
    expect(decodeResolution(Buffer.from(JSON.stringify(r)))).toEqual(r);
    expect(decodeResolution(Buffer.from('{"id":"x","how":"deleted","resolvedAt":"now"}'))).toBeUndefined();
    expect(decodeResolution(Buffer.from('nope'))).toBeUndefined();
    expect(decodeResolution(null)).toBeUndefined();
  });
});

describe('selecting letters', () => {
  const boom = stored({ id: 'orders.dlq:0:1', at: '2026-03-01T10:00:00.000Z' });
  const timeout = stored({ id: 'orders.dlq:0:2', error: new ReceiverError('handler threw TypeError: x', { cause: new TypeError('x') }), at: '2026-03-01T11:00:00.000Z' });
  const undecodable = stored({ id: 'orders.dlq:1:1', value: Buffer.from([0xff, 0xfe]), error: new DeserializationFailure('message could not be deserialized'), at: '2026-03-01T12:00:00.000Z' });
  const resolved: StoredLetter = { ...stored({ id: 'orders.dlq:1:2' }), resolution: { id: 'orders.dlq:1:2', resolvedAt: '2026-03-02T00:00:00Z', how: 'resolved' } };
  const garbage: StoredLetter = { id: 'orders.dlq:1:3', broker: 'kafka', dlq: 'orders.dlq', problem: 'value is not JSON', key: null, headers: {}, storedAt: 0 };
  const all = [boom, timeout, undecodable, resolved, garbage];

  it('unresolved ones by default; --all adds the resolved', () => {
    expect(selectLetters(all, selectionFrom({})).map((l) => l.id)).toEqual(['orders.dlq:0:1', 'orders.dlq:0:2', 'orders.dlq:1:1', 'orders.dlq:1:3']);
    expect(selectLetters(all, selectionFrom({ all: true }))).toHaveLength(5);
  });

  it('every filtered field must match, any of its values; messages that are not dead letters match no filter', () => {
    expect(selectLetters(all, selectionFrom({ filter: ['error_type=Error'] })).map((l) => l.id)).toEqual(['orders.dlq:0:1']);
    expect(selectLetters(all, selectionFrom({ filter: ['error_type=Error', 'error_type=DeserializationFailure'] })).map((l) => l.id)).toEqual(['orders.dlq:0:1', 'orders.dlq:1:1']);
    expect(selectLetters(all, selectionFrom({ filter: ['error_class=RuntimeFailure', 'handler=orders'] })).map((l) => l.id)).toEqual(['orders.dlq:1:1']);
    expect(selectLetters(all, selectionFrom({ filter: ['error_class=RuntimeFailure', 'handler=payments'] }))).toEqual([]);
    expect(selectLetters(all, selectionFrom({ filter: ['key=order-17', 'original_topic=orders'] })).map((l) => l.id)).toEqual(['orders.dlq:0:1', 'orders.dlq:0:2', 'orders.dlq:1:1']);
  });

  it('--since compares failure times; --limit keeps the oldest', () => {
    expect(selectLetters(all, selectionFrom({ since: '2026-03-01T11:00:00Z' })).map((l) => l.id)).toEqual(['orders.dlq:0:2', 'orders.dlq:1:1']);
    expect(selectLetters(all, selectionFrom({ since: '2026-03-01T13:00:00+02:00', limit: 1 })).map((l) => l.id)).toEqual(['orders.dlq:0:2']);
    expect(selectLetters(all, selectionFrom({ limit: 2 })).map((l) => l.id)).toEqual(['orders.dlq:0:1', 'orders.dlq:0:2']);
  });

  it('a filter that names no envelope field, or has no value, is a usage error', () => {
    expect(() => parseFilters(['colour=red'])).toThrow(/--filter "colour=red": write field=value with field one of error_type, error_class/);
    expect(() => parseFilters(['error_type'])).toThrow(/conveyor|field=value/);
    expect(() => selectionFrom({ since: 'last tuesday' })).toThrow(/--since/);
    expect(matches(boom, selectionFrom({ filter: ['error_type='] }))).toBe(false);
  });

  it('the table shows id, failure time, handler, class/type, origin, key and reason', () => {
    const [header, row] = letterTable([boom], false);
    expect(header).toMatch(/^ID\s+FAILED AT\s+HANDLER\s+ERROR\s+ORIGIN\s+KEY\s+REASON$/);
    expect(row!.split(/\s{2,}/)).toEqual(['orders.dlq:0:1', '2026-03-01T10:00:00.000Z', 'orders', 'ReceiverError/Error', 'orders[2]@4711', 'order-17', 'handler threw Error: boom']);
    expect(letterTable([resolved], true)[1]).toMatch(/^orders\.dlq:1:2\s+resolved\s+/);
  });
});

describe('what a replay sends', () => {
  it('Kafka: the original key bytes, value, headers and partition, plus x-conveyor-replayed-from', () => {
    const letter = stored({ id: 'orders.dlq:0:5', headers: { tenant: 'acme', 'x-correlation-id': 'c-1' } });
    expect(kafkaReplay(letter)).toEqual({
      topic: 'orders',
      partition: 2,
      key: Buffer.from('order-17'),
      value: Buffer.from('{"amount":-5}'),
      headers: { tenant: Buffer.from('acme'), 'x-correlation-id': Buffer.from('c-1'), 'x-conveyor-replayed-from': Buffer.from('orders.dlq:0:5') },
    });
  });

  it('Kafka: binary and repeated headers come back byte for byte, in order; letters of the older format still replay', () => {
    const binary = Buffer.from([0xff, 0xfe, 0x80, 0x01]);
    const letter = stored({ headers: { trace: [binary, Buffer.from('two')], tenant: 'acme' } as never });
    expect(letter.envelope.original_message.headers).toEqual([
      { name: 'trace', value: '//6AAQ==', encoding: 'base64' },
      { name: 'trace', value: 'two', encoding: 'utf8' },
      { name: 'tenant', value: 'acme', encoding: 'utf8' },
    ]);
    const replayed = kafkaReplay(letter).headers;
    expect(Object.keys(replayed)).toEqual(['trace', 'tenant', 'x-conveyor-replayed-from']);
    expect(replayed.trace).toEqual([binary, Buffer.from('two')]);
    // a letter written before the ordered list: headers were an object of texts
    const old = { ...letter, envelope: { ...letter.envelope, original_message: { ...letter.envelope.original_message, headers: { tenant: 'acme' } } } };
    expect(kafkaReplay(old).headers).toEqual({ tenant: Buffer.from('acme'), 'x-conveyor-replayed-from': Buffer.from('orders.dlq:0:5') });
  });

  it('Kafka: a letter written without its value takes value (and headers, if left out too) from the source record', () => {
    const letter = stored({ headers: { tenant: 'acme' } });
    const m = letter.envelope.original_message;
    const noValue = { ...letter, envelope: { ...letter.envelope, original_message: { ...m, value: null, value_omitted: 'too_large' as const, value_size: 3 } } };
    expect(needsSource(noValue.envelope)).toBe(true);
    expect(needsSource(letter.envelope)).toBe(false);
    const source = { key: Buffer.from('order-17'), value: Buffer.from('big'), headers: [['src', Buffer.from([0xff])] as const] };
    expect(kafkaReplay(noValue, source)).toMatchObject({ value: Buffer.from('big'), headers: { tenant: Buffer.from('acme') } });
    const neither = { ...noValue, envelope: { ...noValue.envelope, original_message: { ...noValue.envelope.original_message, headers: [], headers_omitted: 'too_large' as const } } };
    expect(kafkaReplay(neither, source).headers).toEqual({ src: Buffer.from([0xff]), 'x-conveyor-replayed-from': Buffer.from('orders.dlq:0:5') });
  });

  it('a value that was not UTF-8 comes back byte for byte; a null key and value stay null', () => {
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x80]);
    expect(kafkaReplay(stored({ value: bytes })).value).toEqual(bytes);
    const empty = stored({ key: null, value: null });
    expect(kafkaReplay(empty)).toMatchObject({ key: null, value: null });
  });

  it('RabbitMQ: to the handler\'s queue, with the exchange and routing key it was first published with', () => {
    const letter = { ...stored({ id: 'receipts.dlq:m-1', key: 'receipt.created', exchange: 'shop', topic: 'receipts' }), broker: 'rabbitmq' as const };
    expect(rabbitReplay(letter)).toEqual({
      queue: 'receipts',
      value: Buffer.from('{"amount":-5}'),
      headers: { tenant: 'acme', 'x-conveyor-replayed-from': 'receipts.dlq:m-1', 'x-conveyor-exchange': 'shop', 'x-conveyor-routing-key': 'receipt.created' },
    });
    const direct = { ...stored({ id: 'receipts.dlq:m-2', key: 'receipts', exchange: '', topic: 'receipts' }), broker: 'rabbitmq' as const };
    expect(rabbitReplay(direct).headers).toMatchObject({ 'x-conveyor-exchange': '', 'x-conveyor-routing-key': 'receipts' });
  });
});

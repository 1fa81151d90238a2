import { describe, expect, it } from 'vitest';
import { describeThrown, THROWN_JSON_LIMIT } from '../../src/failure/thrown.ts';

describe('describeThrown: what a handler threw that is not an Error', () => {
  it('keeps a plain object as its JSON, not [object Object]', () => {
    expect(describeThrown({ code: 'E_CARD', detail: { amount: 12.5 } })).toEqual({ name: 'Object', message: '{"code":"E_CARD","detail":{"amount":12.5}}' });
    expect(describeThrown(['a', 1])).toEqual({ name: 'Array', message: '["a",1]' });
    expect(describeThrown(Object.create(null))).toEqual({ name: 'Object', message: '{}' });
    class Problem {
      readonly status: number;
      constructor(status: number) {
        this.status = status;
      }
    }
    expect(describeThrown(new Problem(409))).toEqual({ name: 'Problem', message: '{"status":409}' });
  });

  it(`cuts the JSON to ${THROWN_JSON_LIMIT} characters and says how long it was`, () => {
    const { message } = describeThrown({ body: 'x'.repeat(10_000) });
    expect(message).toBe(`{"body":"${'x'.repeat(THROWN_JSON_LIMIT - 9)}… (10011 characters of JSON, first ${THROWN_JSON_LIMIT} kept)`);
  });

  it('writes what JSON cannot (a cycle, a BigInt) with util.inspect, bounded too', () => {
    const cyclic: Record<string, unknown> = { code: 'E_LOOP' };
    cyclic.self = cyclic;
    expect(describeThrown(cyclic).message).toBe("<ref *1> { code: 'E_LOOP', self: [Circular *1] }");
    expect(describeThrown({ n: 10n }).message).toBe('{ n: 10n }');
    expect(describeThrown({ n: 1n, s: 'y'.repeat(10_000) }).message.length).toBeLessThan(THROWN_JSON_LIMIT + 100);
  });

  it('names primitives by their type and keeps their text', () => {
    expect(describeThrown('declined')).toEqual({ name: 'string', message: 'declined' });
    expect(describeThrown(42)).toEqual({ name: 'number', message: '42' });
    expect(describeThrown(undefined)).toEqual({ name: 'undefined', message: 'undefined' });
    expect(describeThrown(null)).toEqual({ name: 'null', message: 'null' });
    expect(describeThrown(Symbol('s'))).toEqual({ name: 'symbol', message: 'Symbol(s)' });
    expect(describeThrown(function later() {})).toEqual({ name: 'function', message: 'function later' });
  });
});
